import { Args } from '@oclif/core';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { formatBytes, isDeviceId, remoteBasename } from '../../lib/device-io.js';
import { saveDownload } from '../../lib/transfer.js';
import { UsageError } from '../../lib/errors.js';

export default class DevicesPull extends DeviceCommand<typeof DevicesPull> {
  static override summary = 'Copy a file from a device';

  static override description = `Streams the device file <remote> to <local> (default: its name, in the current \
directory), or to standard output with -. Shows progress on standard error when it is a terminal. Prints the local path \
(with --json: {path, size, local}). With two arguments, the first is taken as the device when it is a device id \
(dev_…), else as <remote>. Needs a granted lease on the device.`;

  static override examples = [
    { description: 'Pull a file into the current directory.', command: '<%= config.bin %> devices pull dev_01JDX6A1B2C3D4E5F6G7H8J9K0 /sdcard/log.txt' },
    { description: 'To standard output (device from CLOUDPHONE_DEVICE).', command: '<%= config.bin %> devices pull /sdcard/log.txt - | less' },
  ];

  static override args = {
    device: Args.string({ required: false, ignoreStdin: true, description: 'The device id (or --device, or CLOUDPHONE_DEVICE).' }),
    remote: Args.string({ required: false, ignoreStdin: true, description: 'The absolute path on the device.' }),
    local: Args.string({ required: false, ignoreStdin: true, description: 'The local file, or - for standard output [default: the name of <remote>].' }),
  };

  static override flags = {
    device: deviceOption(),
  };

  async run(): Promise<void> {
    const given = [this.args.device, this.args.remote, this.args.local].filter((value): value is string => value !== undefined);
    if (given.length === 0) throw new UsageError('Give the device path <remote>');
    const withDevice = given.length === 3 || (given.length === 2 && isDeviceId(given[0]));
    const deviceId = this.deviceId(withDevice ? given[0] : undefined);
    const [remote, local = remoteBasename(given[withDevice ? 1 : 0]!)] = given.slice(withDevice ? 1 : 0) as [string, string?];
    if (local === '-' && this.jsonEnabled()) throw new UsageError('--json prints the result on standard output: give a <local> file, not -');

    const client = await this.api();
    const response = await client.request('pullDeviceFile', { path: { deviceId }, query: { path: remote } });
    const progress = process.stderr.isTTY && !this.jsonEnabled() && !(local === '-' && process.stdout.isTTY);
    const done = await saveDownload(response, local, progress);
    if (local === '-') return;
    if (this.jsonEnabled()) return this.outJson({ path: remote, size: done, local });
    this.out(`${local}\n`);
    this.note(`${remote} → ${local}: ${formatBytes(done)}`);
  }
}
