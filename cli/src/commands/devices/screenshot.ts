import { Args, Flags } from '@oclif/core';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { defaultScreenshotName } from '../../lib/device-io.js';
import { UsageError } from '../../lib/errors.js';

export default class DevicesScreenshot extends DeviceCommand<typeof DevicesScreenshot> {
  static override summary = "Save a screenshot of a device's screen";

  static override description = `Saves the screen as PNG to --output (default: screenshot-<device>-<UTC time>.png in \
the current directory) and prints the file's path (with --json: {path, size}). --output - writes the PNG to standard \
output, which must not be a terminal. Needs a granted lease on the device.`;

  static override examples = [
    { description: 'Save a screenshot.', command: '<%= config.bin %> devices screenshot dev_01JDX6A1B2C3D4E5F6G7H8J9K0' },
    { description: 'To a given file.', command: '<%= config.bin %> devices screenshot -o home.png' },
    { description: 'Pipe it.', command: '<%= config.bin %> devices screenshot -o - | display' },
  ];

  static override args = {
    device: Args.string({ required: false, ignoreStdin: true, description: 'The device id (or --device, or CLOUDPHONE_DEVICE).' }),
  };

  static override flags = {
    device: deviceOption(),
    output: Flags.string({ char: 'o', summary: 'The PNG file to write, or - for standard output.', helpValue: '<file.png|->' }),
  };

  async run(): Promise<void> {
    const deviceId = this.deviceId(this.args.device);
    const output = this.flags.output ?? defaultScreenshotName(deviceId);
    if (output === '-') {
      if (process.stdout.isTTY) throw new UsageError('Not writing PNG bytes to a terminal: give -o <file.png> or pipe the output');
      if (this.jsonEnabled()) throw new UsageError('--json prints the result on standard output: give -o <file.png>, not -');
    }
    const client = await this.api();
    const response = await client.request('takeDeviceScreenshot', { path: { deviceId } });
    const png = Buffer.from(await response.bytes());
    if (output === '-') {
      await new Promise<void>((resolve, reject) => process.stdout.write(png, (error) => (error ? reject(error) : resolve())));
      return;
    }
    const { writeFile } = await import('node:fs/promises');
    await writeFile(output, png);
    if (this.jsonEnabled()) return this.outJson({ path: output, size: png.length });
    this.out(`${output}\n`);
  }
}
