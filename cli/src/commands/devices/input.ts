import { Flags } from '@oclif/core';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { parseInputArgs } from '../../lib/device-io.js';

const ACTIONS = new Set(['tap', 'swipe', 'text', 'key', 'keyevent']);

export default class DevicesInput extends DeviceCommand<typeof DevicesInput> {
  static override summary = 'Send a tap, swipe, text or key press to a device';

  static override usage = [
    'devices input [DEVICE] tap <x> <y>',
    'devices input [DEVICE] swipe <x1> <y1> <x2> <y2> [--duration <ms>]',
    'devices input [DEVICE] text <text...>',
    'devices input [DEVICE] key <KEYCODE>',
  ];

  static override description = `Like \`adb shell input\`. Coordinates are screen pixels. text types its words joined by \
spaces (quote the text to keep several spaces). key takes a KEYCODE name (HOME, BACK, KEYCODE_ENTER, …) or number. \
Prints nothing (with --json: the action sent). Needs a granted lease on the device.`;

  static override examples = [
    { description: 'Tap.', command: '<%= config.bin %> devices input dev_01JDX6A1B2C3D4E5F6G7H8J9K0 tap 540 1200' },
    { description: 'Swipe up in half a second.', command: '<%= config.bin %> devices input swipe 540 1800 540 400 --duration 500' },
    { description: 'Type and press Enter.', command: "<%= config.bin %> devices input text 'hello world' && <%= config.bin %> devices input key ENTER" },
  ];

  static override strict = false;

  static override flags = {
    device: deviceOption(),
    duration: Flags.integer({ summary: 'How long a swipe takes, in milliseconds.', min: 0, max: 10_000, helpValue: '<ms>' }),
  };

  async run(): Promise<void> {
    const { argv } = await this.parse(DevicesInput);
    const words = argv.map(String);
    // A first word that is not an action is the device.
    const device = words.length > 0 && !ACTIONS.has(words[0]!) ? words.shift() : undefined;
    const deviceId = this.deviceId(device);
    const action = parseInputArgs(words, this.flags.duration === undefined ? {} : { durationMs: this.flags.duration });
    const client = await this.api();
    await client.request('sendDeviceInput', { path: { deviceId }, body: action });
    if (this.jsonEnabled()) this.outJson(action);
  }
}
