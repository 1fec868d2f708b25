import { Help } from '@oclif/core';
import { EXIT_CODE_HELP } from './lib/errors.js';

export const ENVIRONMENT_HELP: readonly (readonly [string, string])[] = [
  ['CLOUDPHONE_API_URL', 'The server URL, unless --api-url or --profile say otherwise.'],
  ['CLOUDPHONE_TOKEN', 'A token to use instead of the profile’s credentials (unless --profile names one).'],
  ['CLOUDPHONE_PROFILE', 'The profile to use instead of the active one.'],
  ['XDG_CONFIG_HOME', 'Where profiles are kept: $XDG_CONFIG_HOME/cloudphone/config.json (default ~/.config).'],
  ['NO_COLOR', 'Turns colour off; so does output that is not a terminal.'],
];

/** oclif's help, with the environment variables and exit codes at the end of the root help. */
export default class CloudPhoneHelp extends Help {
  override async showRootHelp(): Promise<void> {
    await super.showRootHelp();
    this.log(
      this.section(
        'ENVIRONMENT',
        ENVIRONMENT_HELP.map(([name, text]) => [name, text]),
      ),
    );
    this.log('');
    this.log(
      this.section(
        'EXIT CODES',
        EXIT_CODE_HELP.map(([code, text]) => [String(code), text]),
      ),
    );
    this.log('');
  }
}
