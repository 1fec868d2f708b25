import { Command, Flags, type Interfaces } from '@oclif/core';
import type { CloudPhone, TokenPair } from '@cloudphone/sdk';
import { configPath, readConfig, resolveContext, updateConfig, type Context, type Credentials } from '../lib/config.js';
import { describeFailure, ExitCode, NotLoggedInError } from '../lib/errors.js';
import { formatJson, useColor } from '../lib/output.js';

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<
  (typeof BaseCommand)['baseFlags'] & T['flags']
>;
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>;

/**
 * What every command shares: `--json`, `--api-url`, `--profile`, the resolved context, the API client, and
 * turning failures into a message on stderr (or `{"error": problem}` on stdout with `--json`) and an exit code.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    'api-url': Flags.string({
      summary: 'The cloudphone server URL (env: CLOUDPHONE_API_URL).',
      helpValue: '<url>',
      helpGroup: 'GLOBAL',
    }),
    profile: Flags.string({
      summary: 'The profile to use (env: CLOUDPHONE_PROFILE; default: the active profile).',
      helpValue: '<name>',
      helpGroup: 'GLOBAL',
    }),
  };

  /** Whether a 401 ends with the hint to run `cloudphone login` (not for `login` itself). */
  protected loginHint = true;

  protected flags!: BaseFlags<T>;
  protected args!: BaseArgs<T>;
  #context: Context | undefined;

  override async init(): Promise<void> {
    await super.init();
    process.once('SIGINT', () => {
      process.stderr.write('\n');
      process.exit(ExitCode.interrupted);
    });
    const { args, flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    });
    this.flags = flags as BaseFlags<T>;
    this.args = args as BaseArgs<T>;
  }

  /** The config file's path. */
  protected get configFile(): string {
    return configPath();
  }

  /** The profile, server URL and credentials this invocation uses. */
  protected get context(): Context {
    this.#context ??= resolveContext(
      { apiUrl: this.flags['api-url'], profile: this.flags.profile },
      process.env,
      readConfig(this.configFile),
    );
    return this.#context;
  }

  /**
   * An API client for the context. With `authenticated`, fails (exit 4) when there are no credentials. A login
   * session's rotated tokens are written back to its profile.
   */
  protected async client(options: { authenticated: boolean; credentials?: Credentials }): Promise<CloudPhone> {
    const { CloudPhone } = await import('@cloudphone/sdk');
    const { apiUrl, profileName } = this.context;
    const credentials = options.credentials ?? this.context.credentials;
    if (options.authenticated && credentials.kind === 'none') throw new NotLoggedInError(profileName);
    const userAgent = `cloudphone-cli/${this.config.version}`;
    switch (credentials.kind) {
      case 'none':
        return new CloudPhone({ baseUrl: apiUrl, userAgent });
      case 'token':
        return new CloudPhone({ baseUrl: apiUrl, userAgent, token: credentials.token });
      case 'session':
        return new CloudPhone({
          baseUrl: apiUrl,
          userAgent,
          token: credentials.accessToken,
          refreshToken: credentials.refreshToken,
          onTokenRefresh: (pair: TokenPair) => {
            updateConfig(this.configFile, (config) => {
              config.profiles[profileName] = {
                ...config.profiles[profileName],
                accessToken: pair.accessToken,
                refreshToken: pair.refreshToken,
                accessTokenExpiresAt: pair.accessTokenExpiresAt,
              };
            });
          },
        });
    }
  }

  /** Writes data to stdout. */
  protected out(text: string): void {
    process.stdout.write(text);
  }

  /** Writes a value to stdout as JSON. */
  protected outJson(value: unknown): void {
    this.out(formatJson(value));
  }

  /** Writes a message for people to stderr. */
  protected note(message: string): void {
    process.stderr.write(`${message}\n`);
  }

  /** Bold and such on stdout, only on a terminal without NO_COLOR. */
  protected get color(): boolean {
    return useColor(process.stdout);
  }

  protected override async catch(error: Error & { code?: string }): Promise<unknown> {
    if (error.code === 'EEXIT') throw error;
    const failure = describeFailure(error, { loginHint: this.loginHint });
    if (this.jsonEnabled()) this.outJson({ error: failure.problem });
    else process.stderr.write(`${failure.message}\n`);
    return this.exit(failure.exitCode);
  }
}
