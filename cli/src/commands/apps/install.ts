import { Args, Flags } from '@oclif/core';
import type { CloudPhone, InstallJobHandle } from '@cloudphone/sdk';
import { BaseCommand } from '../../base/base-command.js';
import { failedDeviceLines, installDeviceLine } from '../../lib/apps.js';
import { DEVICE_ENV } from '../../lib/device.js';
import { formatBytes } from '../../lib/device-io.js';
import { CliError, ExitCode, UsageError } from '../../lib/errors.js';

/** What an app id looks like; anything else is taken for an APK file. */
const APP_ID = /^app_[0-9A-Z]{26}$/;

/** Seconds each poll of the job waits at most: how often the device lines update. */
const POLL_SECONDS = 2;

export default class AppsInstall extends BaseCommand<typeof AppsInstall> {
  static override summary = 'Install an app on devices';

  static override description = `Installs <app> on every --device (repeatable) or on every device of --lease (default: \
the device in ${DEVICE_ENV}), and waits: standard error shows one line per device as the install goes on. Exits 1 when \
any device failed, after printing why (the device's INSTALL_FAILED_… message); with --json, prints the final install \
job either way. The server checks every device before it starts (you hold a granted lease on it, it is online, the \
app's minSdk and ABIs fit): one that does not fit fails the whole command (422 app_incompatible, per device) and \
nothing is installed. An installed app is replaced unless --no-replace. <app> may also be an APK file: it is \
uploaded first (nothing is sent when the server already has its bytes), as apps upload does.`;

  static override examples = [
    { description: 'Install on two devices.', command: '<%= config.bin %> apps install app_01JDX8A1B2C3D4E5F6G7H8J9K0 --device dev_01JDX6A1B2C3D4E5F6G7H8J9K0 --device dev_01JDX6A1B2C3D4E5F6G7H8J9K1' },
    { description: 'On every device of a lease, granting runtime permissions.', command: '<%= config.bin %> apps install app_01JDX8A1B2C3D4E5F6G7H8J9K0 --lease lse_01JDX7M3N4P5Q6R7S8T9V0W1X2 --grant-permissions' },
    { description: 'Upload a build and install it in one step.', command: '<%= config.bin %> apps install app/build/outputs/apk/debug/app-debug.apk --lease lse_01JDX7M3N4P5Q6R7S8T9V0W1X2' },
  ];

  static override args = {
    app: Args.string({ required: true, ignoreStdin: true, description: 'The app id (app_…), or an APK file to upload first.' }),
  };

  static override flags = {
    device: Flags.string({ char: 's', summary: `A device to install on (repeatable; default: ${DEVICE_ENV}).`, multiple: true, helpValue: '<id>', exclusive: ['lease'] }),
    lease: Flags.string({ char: 'l', summary: 'Install on every device of this lease.', helpValue: '<leaseId>', exclusive: ['device'] }),
    replace: Flags.boolean({ summary: 'Replace an installed version (pm install -r); --no-replace fails on an installed app.', allowNo: true, default: true }),
    downgrade: Flags.boolean({ summary: 'Allow installing a lower versionCode than the installed one (-d).' }),
    'grant-permissions': Flags.boolean({ summary: 'Grant every runtime permission the app asks for (-g).' }),
    timeout: Flags.integer({ summary: 'Stop waiting after this many seconds (exit 69; the install goes on) [default: no limit].', min: 1, helpValue: '<seconds>' }),
  };

  async run(): Promise<void> {
    const { flags } = this;
    let devices = flags.device;
    if ((devices === undefined || devices.length === 0) && flags.lease === undefined) {
      const fromEnv = process.env[DEVICE_ENV];
      if (!fromEnv) throw new UsageError(`Give --device (repeatable) or --lease, or set ${DEVICE_ENV}`);
      devices = [fromEnv];
    }
    if (devices !== undefined && new Set(devices).size !== devices.length) throw new UsageError('A --device is given twice');

    const client = await this.client({ authenticated: true });
    const appId = await this.appIdOf(client, this.args.app);
    const job = await client.apps.install(appId, {
      ...(flags.lease === undefined ? { devices: devices! } : { lease: flags.lease }),
      ...(flags.replace ? {} : { replace: false }),
      ...(flags.downgrade ? { downgrade: true } : {}),
      ...(flags['grant-permissions'] ? { grantPermissions: true } : {}),
    });

    const waitOptions = { pollSeconds: POLL_SECONDS, ...(flags.timeout === undefined ? {} : { timeoutSeconds: flags.timeout }) };
    // A terminal that reports no width (some CI pseudo-terminals) gets the plain lines: the list would wrap badly.
    const useList = process.stderr.isTTY === true && (process.stderr.columns ?? 0) >= 40 && !this.jsonEnabled();
    try {
      if (this.jsonEnabled()) await job.wait(waitOptions);
      else if (useList) await this.waitWithList(job, waitOptions);
      else await this.waitWithLines(job, waitOptions);
    } catch (error) {
      if ((error as Error).name !== 'InstallJobTimeoutError') throw error;
      if (this.jsonEnabled()) this.outJson(job);
      else this.note(`The install job ${job.id} is still ${job.status} after ${flags.timeout} s; it goes on on the server.`);
      this.exit(ExitCode.timedOut);
    }

    if (this.jsonEnabled()) this.outJson(job);
    const failed = failedDeviceLines(job);
    if (job.status === 'failed' || failed.length > 0) {
      if (!this.jsonEnabled()) {
        const installed = job.devices.length - failed.length;
        this.note(`${job.packageName} failed on ${failed.length} of ${job.devices.length} device(s)${installed > 0 ? ` (installed on ${installed})` : ''}:\n${failed.join('\n')}`);
      }
      if (this.jsonEnabled()) this.exit(ExitCode.error);
      throw new CliError(`The install job ${job.id} failed`, 'install_failed', ExitCode.error);
    }
    if (!this.jsonEnabled()) this.note(`${job.packageName} installed on ${job.devices.length} device(s) (job ${job.id}).`);
  }

  /** The app id: `app` itself, or the app of the APK file `app` names, uploaded unless the server has its bytes. */
  private async appIdOf(client: CloudPhone, app: string): Promise<string> {
    if (APP_ID.test(app)) return app;
    const { stat } = await import('node:fs/promises');
    const info = await stat(app).catch(() => undefined);
    if (info === undefined) throw new UsageError(`${app} is neither an app id (app_…) nor an APK file`);
    if (!info.isFile()) throw new UsageError(`${app} is not a file`);
    let hashMatched = false;
    const uploaded = await client.apps.upload(app, {
      onHashMatch: () => {
        hashMatched = true;
      },
    });
    if (!this.jsonEnabled()) {
      const { packageName, versionName } = uploaded.metadata;
      const what = versionName === null ? packageName : `${packageName} ${versionName}`;
      const done = hashMatched ? `The server already had ${app}` : `Uploaded ${app} (${formatBytes(info.size)})`;
      this.note(`${done}: ${uploaded.id} (${what}).`);
    }
    return uploaded.id;
  }

  /** Without a terminal: a line whenever a device's status changes. */
  private async waitWithLines(job: InstallJobHandle, options: { pollSeconds: number; timeoutSeconds?: number }): Promise<void> {
    const shown = new Map<string, string>();
    const show = (): void => {
      for (const device of job.devices) {
        if (shown.get(device.deviceId) === device.status) continue;
        shown.set(device.deviceId, device.status);
        this.note(installDeviceLine(device));
      }
    };
    this.note(`Installing ${job.packageName} on ${job.devices.length} device(s) (job ${job.id})…`);
    show();
    await job.wait({ ...options, onUpdate: show });
  }

  /** On a terminal: a listr2 list with one task per device, updated as the job goes on. */
  private async waitWithList(job: InstallJobHandle, options: { pollSeconds: number; timeoutSeconds?: number }): Promise<void> {
    const { Listr, ListrLogger, ProcessOutput } = await import('listr2');
    // Tasks start a moment after run(): each reads the job's latest state when it starts and on every update.
    const watchers = new Set<() => void>();
    let waiting = true;
    const list = new Listr(
      job.devices.map((initial) => ({
        title: installDeviceLine(initial),
        task: (_context: unknown, task: { title: string }) =>
          new Promise<void>((resolve, reject) => {
            const watch = (): void => {
              const device = job.devices.find((candidate) => candidate.deviceId === initial.deviceId) ?? initial;
              const line = installDeviceLine(device);
              if (device.status === 'failed') reject(new Error(line));
              else if (device.status === 'installed') {
                task.title = line;
                resolve();
              } else if (!waiting) reject(new Error(`${line} (no longer waiting)`));
              else task.title = line;
            };
            watchers.add(watch);
            watch();
          }),
      })),
      {
        concurrent: true,
        exitOnError: false,
        registerSignalListeners: false,
        fallbackRendererCondition: false,
        rendererOptions: {
          collapseErrors: false,
          logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }),
        },
      },
    );
    const update = (): void => {
      for (const watch of watchers) watch();
    };
    const running = list.run();
    try {
      await job.wait({ ...options, onUpdate: update });
    } finally {
      // Ends every task: the job's final state, or (the wait stopped early) "no longer waiting".
      waiting = false;
      update();
      await running.catch(() => undefined);
    }
  }
}
