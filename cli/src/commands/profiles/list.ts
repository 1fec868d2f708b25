import { BaseCommand } from '../../base/base-command.js';
import { profileCredentials, readConfig, DEFAULT_PROFILE } from '../../lib/config.js';
import { renderTable } from '../../lib/output.js';

export default class ProfilesList extends BaseCommand<typeof ProfilesList> {
  static override summary = 'List the saved profiles';

  static override examples = [
    { description: 'List the profiles.', command: '<%= config.bin %> profiles list' },
    { description: 'As JSON.', command: '<%= config.bin %> profiles list --json' },
  ];

  async run(): Promise<void> {
    const config = readConfig(this.configFile);
    const active = config.activeProfile ?? DEFAULT_PROFILE;
    const rows = Object.entries(config.profiles)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, profile]) => ({
        name,
        apiUrl: profile.apiUrl ?? null,
        username: profile.username ?? null,
        loggedIn: profileCredentials(profile).kind !== 'none',
        active: name === active,
      }));
    if (this.jsonEnabled()) return this.outJson(rows);
    if (rows.length === 0) {
      this.note('No profiles yet. Run `cloudphone login` to create one.');
      return;
    }
    this.out(renderTable(rows, ['name', 'apiUrl', 'username', 'loggedIn', 'active'], { color: this.color }));
  }
}
