import { Args } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { CliError, ExitCode } from '../../lib/errors.js';
import { readConfig, updateConfig } from '../../lib/config.js';

export default class ProfilesUse extends BaseCommand<typeof ProfilesUse> {
  static override summary = 'Make a profile the active one';

  static override examples = [
    { description: 'Switch to the staging profile.', command: '<%= config.bin %> profiles use staging' },
  ];

  static override args = {
    name: Args.string({ required: true, description: 'The profile name.' }),
  };

  async run(): Promise<void> {
    const { name } = this.args;
    const known = Object.keys(readConfig(this.configFile).profiles).sort();
    if (!known.includes(name)) {
      const list =
        known.length > 0 ? `Profiles: ${known.join(', ')}.` : 'There are no profiles yet: run `cloudphone login`.';
      throw new CliError(`No profile named ${name}. ${list}`, 'unknown_profile', ExitCode.error);
    }
    const config = updateConfig(this.configFile, (current) => {
      current.activeProfile = name;
    });
    const profile = config.profiles[name]!;
    if (this.jsonEnabled()) {
      this.outJson({ name, apiUrl: profile.apiUrl ?? null, username: profile.username ?? null, active: true });
      return;
    }
    this.note(`Now using profile ${name}${profile.apiUrl ? ` (${profile.apiUrl})` : ''}.`);
  }
}
