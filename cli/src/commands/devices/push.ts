import { Args, Flags } from '@oclif/core';
import type { PushResult } from '@cloudphone/sdk';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { formatBytes } from '../../lib/device-io.js';
import { clearProgress, progressCounter } from '../../lib/transfer.js';
import { UsageError } from '../../lib/errors.js';

export default class DevicesPush extends DeviceCommand<typeof DevicesPush> {
  static override summary = 'Copy a local file to a device';

  static override description = `Streams <local> (or standard input for -) to the absolute device path <remote>, \
replacing it. Shows progress on standard error when it is a terminal. The file keeps the local file's permission bits \
unless --mode says otherwise. With --json, prints the result ({path, size}). Needs a granted lease on the device.`;

  static override examples = [
    { description: 'Push an APK.', command: '<%= config.bin %> devices push dev_01JDX6A1B2C3D4E5F6G7H8J9K0 app.apk /data/local/tmp/app.apk' },
    { description: 'The device from CLOUDPHONE_DEVICE; from standard input.', command: 'echo hello | <%= config.bin %> devices push - /sdcard/hello.txt' },
  ];

  static override args = {
    device: Args.string({ required: false, ignoreStdin: true, description: 'The device id (or --device, or CLOUDPHONE_DEVICE).' }),
    local: Args.string({ required: false, ignoreStdin: true, description: 'The local file, or - for standard input.' }),
    remote: Args.string({ required: false, ignoreStdin: true, description: 'The absolute path on the device.' }),
  };

  static override flags = {
    device: deviceOption(),
    mode: Flags.string({ summary: "The device file's permission bits in octal, like 0755 [default: the local file's, else 0644].", helpValue: '<octal>' }),
  };

  async run(): Promise<void> {
    // `push <local> <remote>` or `push <device> <local> <remote>`.
    const given = [this.args.device, this.args.local, this.args.remote].filter((value): value is string => value !== undefined);
    if (given.length < 2) throw new UsageError('Give <local> and <remote> (and the device as the first argument, --device or CLOUDPHONE_DEVICE)');
    const [local, remote] = given.slice(-2) as [string, string];
    const deviceId = this.deviceId(given.length === 3 ? given[0] : undefined);
    if (this.flags.mode !== undefined && !/^[0-7]{3,4}$/.test(this.flags.mode)) throw new UsageError('--mode must be 3 or 4 octal digits, like 0644');

    const [{ createReadStream }, { stat }] = await Promise.all([
      import('node:fs'),
      import('node:fs/promises'),
    ]);
    let total: number | null = null;
    let mode = this.flags.mode;
    let source: NodeJS.ReadableStream;
    if (local === '-') source = process.stdin;
    else {
      let info;
      try {
        info = await stat(local);
      } catch (error) {
        throw new UsageError(`Cannot read ${local}: ${(error as Error).message}`);
      }
      if (!info.isFile()) throw new UsageError(`${local} is not a file`);
      total = info.size;
      mode ??= (info.mode & 0o777).toString(8).padStart(4, '0');
      source = createReadStream(local);
    }

    const progress = process.stderr.isTTY && !this.jsonEnabled();
    const counter = await progressCounter(total, progress);
    source.on('error', (error) => counter.stream.destroy(error));
    source.pipe(counter.stream);

    const client = await this.api();
    const query: { path: string; mode?: string } = { path: remote };
    if (mode !== undefined) query.mode = mode;
    let result: PushResult;
    try {
      result = await client.request('pushDeviceFile', { path: { deviceId }, query, body: counter.stream });
    } finally {
      clearProgress(progress);
    }
    if (this.jsonEnabled()) return this.outJson(result);
    this.note(`${local === '-' ? 'standard input' : local} → ${result.path}: ${formatBytes(result.size)}`);
  }
}
