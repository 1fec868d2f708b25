import { BaseCommand } from '../base/base-command.js';
import { describeFailure } from '../lib/errors.js';
import { profileCredentials, updateConfig, withoutCredentials } from '../lib/config.js';

export default class Logout extends BaseCommand<typeof Logout> {
  static override summary = 'Log out: end the session and remove the credentials from the profile';

  static override description = `Ends a login session on the server and removes the profile's credentials; its server URL \
and username stay. An API token is only removed from the profile: revoke it with \`cloudphone tokens revoke\`.`;

  static override examples = [
    { description: 'Log out of the active profile.', command: '<%= config.bin %> logout' },
    { description: 'Log out of another profile.', command: '<%= config.bin %> logout --profile staging' },
  ];

  async run(): Promise<void> {
    const { profileName, profile, apiUrl } = this.context;
    const credentials = profileCredentials(profile);
    if (credentials.kind === 'none') {
      if (this.jsonEnabled()) this.outJson({ profile: profileName, loggedOut: false });
      else this.note(`Not logged in (profile ${profileName}).`);
      return;
    }
    if (credentials.kind === 'session') {
      const client = await this.client({ authenticated: false, credentials: { kind: 'none' } });
      try {
        await client.auth.logout({ refreshToken: credentials.refreshToken });
      } catch (error) {
        const reason = describeFailure(error).message.replace(/^Error: /, '');
        this.note(`Warning: the server did not end the session: ${reason}`);
      }
    }
    updateConfig(this.configFile, (config) => {
      const current = config.profiles[profileName];
      if (current) config.profiles[profileName] = withoutCredentials(current);
    });
    if (this.jsonEnabled()) {
      this.outJson({ profile: profileName, loggedOut: true });
      return;
    }
    this.note(`Logged out of ${apiUrl} (profile ${profileName}).`);
    if (credentials.kind === 'token') {
      this.note('The API token itself still works; revoke it with `cloudphone tokens revoke <token-id>`.');
    }
  }
}
