import { Flags } from '@oclif/core';
import type { Me, User } from '@cloudphone/sdk';
import { BaseCommand } from '../base/base-command.js';
import { updateConfig, withoutCredentials, type Profile } from '../lib/config.js';
import { UsageError } from '../lib/errors.js';
import { canPrompt, promptHidden, promptText } from '../lib/prompt.js';
import { readStdin } from '../lib/request.js';

export default class Login extends BaseCommand<typeof Login> {
  static override summary = 'Log in to a cloudphone server and save the credentials in a profile';

  static override description = `With --token, checks an API token and saves it. Otherwise asks for a username and password \
(or reads the password from standard input with --password-stdin) and saves the session's tokens; they are renewed \
automatically. The profile becomes the active one; a new profile logs in to the active profile's server unless \
--api-url or CLOUDPHONE_API_URL names another. Credentials are stored in $XDG_CONFIG_HOME/cloudphone/config.json \
(default ~/.config/cloudphone/config.json), readable by you only.`;

  static override examples = [
    { description: 'Log in interactively.', command: '<%= config.bin %> login --api-url https://cloudphone.example.com' },
    {
      description: 'Log in from a script, the password on standard input.',
      command: 'printf %s "$PASSWORD" | <%= config.bin %> login --username alice --password-stdin',
    },
    {
      description: 'Use an API token in a separate profile.',
      command: '<%= config.bin %> login --profile ci --token "$CLOUDPHONE_CI_TOKEN"',
    },
  ];

  static override flags = {
    username: Flags.string({ char: 'u', summary: 'The username (asked for when not given).' }),
    'password-stdin': Flags.boolean({ summary: 'Read the password from standard input.' }),
    token: Flags.string({
      summary: 'An API token (cpt_…) to save instead of logging in.',
      helpValue: '<token>',
      exclusive: ['username', 'password-stdin'],
    }),
  };

  // The credentials given here are the ones refused: telling the user to log in would send them in a circle.
  protected override loginHint = false;

  async run(): Promise<void> {
    const { profileName, apiUrl } = this.context;
    let user: User;
    let credentials: Profile;
    if (this.flags.token) {
      const token = this.flags.token;
      const client = await this.client({ authenticated: true, credentials: { kind: 'token', token } });
      user = (await client.me.get()) as Me;
      credentials = { token };
    } else {
      const { username, password } = await this.askCredentials();
      const client = await this.client({ authenticated: false, credentials: { kind: 'none' } });
      const pair = await client.auth.login({ username, password });
      user = pair.user;
      credentials = {
        accessToken: pair.accessToken,
        refreshToken: pair.refreshToken,
        accessTokenExpiresAt: pair.accessTokenExpiresAt,
      };
    }
    updateConfig(this.configFile, (config) => {
      config.profiles[profileName] = {
        ...withoutCredentials(config.profiles[profileName] ?? {}),
        apiUrl,
        username: user.username,
        ...credentials,
      };
      config.activeProfile = profileName;
    });
    if (this.jsonEnabled()) this.outJson(user);
    else this.note(`Logged in to ${apiUrl} as ${user.username} (${user.role}), profile ${profileName}.`);
  }

  private async askCredentials(): Promise<{ username: string; password: string }> {
    const interactive = canPrompt();
    let username = this.flags.username;
    if (!username) {
      if (!interactive) throw new UsageError('Give --username (no terminal to ask on)');
      const saved = this.context.profile.username;
      username = (await promptText(saved ? `Username [${saved}]: ` : 'Username: ')) || saved;
    }
    let password: string;
    if (this.flags['password-stdin']) password = await readStdin();
    else if (interactive) password = await promptHidden('Password: ');
    else throw new UsageError('Give the password with --password-stdin or log in with --token (no terminal to ask on)');
    if (!username || !password) throw new UsageError('The username and password must not be empty');
    return { username, password };
  }
}
