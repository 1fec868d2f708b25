import { Args, Flags } from '@oclif/core';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { ACCESS_ENDED_CLOSE_CODE } from '../../lib/device.js';
import { readConfig, resolveContext } from '../../lib/config.js';
import { CliError, ExitCode } from '../../lib/errors.js';

/** How often the tunnel's token is checked (and a session's refreshed) while it runs. */
const REFRESH_MS = 5 * 60_000;

export default class DevicesConnect extends DeviceCommand<typeof DevicesConnect> {
  static override summary = "Reach a device with your own adb through a local port";

  static override description = `Opens 127.0.0.1:<port> (--port, or a free one) where every connection is tunnelled \
to the device's ADB over the server's WebSocket, prints the address on standard output and the \`adb connect\` line on \
standard error, and stays in the foreground until Ctrl-C (exit 130, as for every interrupted command) or SIGTERM \
(exit 0). With --adb, also runs \`adb connect\` (and \`adb \
disconnect\` at the end) when adb is on PATH. Exits 1 when access ends (the lease, or the credential it was \
opened with). Needs a granted lease on the device.`;

  static override examples = [
    { description: 'Open a tunnel, then use adb in another terminal.', command: '<%= config.bin %> devices connect dev_01JDX6A1B2C3D4E5F6G7H8J9K0' },
    { description: 'On a fixed port, running adb connect too.', command: '<%= config.bin %> devices connect --port 5555 --adb' },
  ];

  static override args = {
    device: Args.string({ required: false, ignoreStdin: true, description: 'The device id (or --device, or CLOUDPHONE_DEVICE).' }),
  };

  static override flags = {
    device: deviceOption(),
    port: Flags.integer({ char: 'p', summary: 'The local port [default: a free one].', min: 1, max: 65_535, helpValue: '<port>' }),
    adb: Flags.boolean({ summary: 'Also run `adb connect 127.0.0.1:<port>` (and disconnect at the end).' }),
  };

  async run(): Promise<void> {
    const deviceId = this.deviceId(this.args.device);
    const client = await this.api();
    // Checks the device and the credentials first (refreshing a session's access token if needed).
    await client.request('getDevice', { path: { deviceId } });
    const [{ webSocketUrl }, { openAdbTunnel, AdbTunnelError }] = await Promise.all([
      import('@cloudphone/sdk'),
      import('../../lib/adb-tunnel.js'),
    ]);
    const url = webSocketUrl(client, 'openDeviceAdbTunnel', { path: { deviceId } });
    // Each local connection opens its own WebSocket with these headers: kept current as the session rotates.
    const headers: Record<string, string> = { 'user-agent': `cloudphone-cli/${this.config.version}`, authorization: `Bearer ${this.currentToken()}` };

    let stop: (outcome: { code: number; error?: CliError }) => void = () => undefined;
    const stopped = new Promise<{ code: number; error?: CliError }>((resolve) => (stop = resolve));
    let tunnel;
    try {
      tunnel = await openAdbTunnel({
        url,
        headers,
        ...(this.flags.port === undefined ? {} : { port: this.flags.port }),
        onError: (error) => {
          if (error instanceof AdbTunnelError && error.message.endsWith(`(${ACCESS_ENDED_CLOSE_CODE})`)) {
            const why = error.detail ?? 'lease ended';
            stop({ code: ExitCode.error, error: new CliError(`Access to ${deviceId} ended (${why}): the ADB tunnel is closed.`, 'lease_ended', ExitCode.error) });
          } else {
            this.note(`cloudphone: ${error.message}`);
          }
        },
      });
    } catch (error) {
      if (error instanceof AdbTunnelError) {
        const code = error.status === 401 ? ExitCode.unauthenticated : ExitCode.error;
        throw new CliError(error.message.replace(/^The server/, 'the server').replace(/^./, (c) => c.toUpperCase()), error.code ?? 'tunnel_refused', code);
      }
      throw error;
    }
    const address = `127.0.0.1:${tunnel.port}`;
    this.onInterrupt(() => stop({ code: ExitCode.interrupted }));
    process.once('SIGTERM', () => stop({ code: ExitCode.ok }));
    const refresh = setInterval(() => {
      void client.request('getDevice', { path: { deviceId } }).then(
        () => (headers.authorization = `Bearer ${this.currentToken()}`),
        (error: Error) => this.note(`cloudphone: ${error.message}`),
      );
    }, REFRESH_MS);
    refresh.unref();

    if (this.jsonEnabled()) this.outJson({ deviceId, address, port: tunnel.port });
    else this.out(`${address}\n`);
    this.note(`ADB tunnel to ${deviceId} listening on ${address}. Connect with:\n  adb connect ${address}\nPress Ctrl-C to stop.`);
    const adb = this.flags.adb ? await findAdb() : undefined;
    if (this.flags.adb && adb === undefined) this.note('cloudphone: adb is not on PATH: run adb connect yourself.');
    if (adb !== undefined) this.note((await runAdb(adb, ['connect', address])).trim());

    const outcome = await stopped;
    clearInterval(refresh);
    if (adb !== undefined) await runAdb(adb, ['disconnect', address]).catch(() => '');
    await tunnel.close();
    if (outcome.error) throw outcome.error;
    this.exit(outcome.code);
  }

  /** The token of the current credentials, re-read from the profile (a refresh rewrites it). */
  private currentToken(): string {
    const context = resolveContext(
      { apiUrl: this.flags['api-url'], profile: this.flags.profile },
      process.env,
      readConfig(this.configFile),
    );
    const credentials = context.credentials;
    if (credentials.kind === 'token') return credentials.token;
    if (credentials.kind === 'session') return credentials.accessToken;
    return '';
  }
}

/** The adb executable on PATH, if any. */
async function findAdb(): Promise<string | undefined> {
  const { access, constants } = await import('node:fs/promises');
  const { delimiter, join } = await import('node:path');
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, process.platform === 'win32' ? 'adb.exe' : 'adb');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Runs adb and resolves to what it printed (both streams). */
async function runAdb(adb: string, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(adb, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve(`${stdout}${stderr}` || (error ? error.message : ''));
    });
  });
}
