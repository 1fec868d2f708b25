import type { Device } from '@cloudphone/sdk';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { parseLabelArgs } from '../../lib/device-io.js';

export default class DevicesLabel extends DeviceCommand<typeof DevicesLabel> {
  static override summary = "Set or remove a device's labels";

  static override usage = ['devices label [DEVICE] key=value... key-...'];

  static override description = `key=value sets a label, key- removes it (like \`kubectl label\`); other labels are \
kept. Prints the device's labels as key=value lines (with --json: the device). Admins only.`;

  static override examples = [
    { description: 'Label a device.', command: '<%= config.bin %> devices label dev_01JDX6A1B2C3D4E5F6G7H8J9K0 team=payments rack=b2' },
    { description: 'Remove a label (device from CLOUDPHONE_DEVICE).', command: '<%= config.bin %> devices label rack-' },
  ];

  static override strict = false;

  static override flags = {
    device: deviceOption(),
  };

  async run(): Promise<void> {
    const { argv } = await this.parse(DevicesLabel);
    const words = argv.map(String);
    // A first word that is neither key=value nor key- is the device.
    const device = words.length > 0 && !words[0]!.includes('=') && !words[0]!.endsWith('-') ? words.shift() : undefined;
    const deviceId = this.deviceId(device);
    const labels = parseLabelArgs(words);
    const client = await this.api();
    const updated: Device = await client.request('updateDevice', { path: { deviceId }, body: { labels } });
    if (this.jsonEnabled()) return this.outJson(updated);
    this.out(
      Object.entries(updated.labels)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, value]) => `${key}=${value}\n`)
        .join(''),
    );
  }
}
