import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Device } from '../../src/virtual-device/device.js';
import { builtInProfile, instantiate } from '../../src/virtual-device/profiles.js';
import { crc32 } from '../../src/virtual-device/userland/screen.js';

interface Output {
  status: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs one command line; `signal` lets a test end a command that streams (logcat follow mode). */
async function run(device: Device, line: string, signal = new AbortController().signal): Promise<Output> {
  const stdout: Buffer[] = [];
  let stderr = '';
  const status = await device.userland.run(line, {
    stdin: { read: async () => undefined, readSome: async () => undefined, readChunks: async () => undefined },
    stdout: async (data) => void stdout.push(Buffer.from(data)),
    stderr: async (data) => void (stderr += data.toString()),
    signal,
  });
  return { status, stdout: Buffer.concat(stdout), stderr };
}

const text = async (device: Device, line: string): Promise<string> => (await run(device, line)).stdout.toString();

const pixel8 = (): Device => new Device(instantiate(builtInProfile('pixel-8'), 0));

/** The chunks of a PNG, checking the signature and every CRC. */
function pngChunks(png: Buffer): { type: string; data: Buffer }[] {
  expect(png.subarray(0, 8)).toEqual(Buffer.from('89504e470d0a1a0a', 'hex'));
  const chunks: { type: string; data: Buffer }[] = [];
  for (let offset = 8; offset < png.length; ) {
    const length = png.readUInt32BE(offset);
    const typeAndData = png.subarray(offset + 4, offset + 8 + length);
    expect(png.readUInt32BE(offset + 8 + length)).toBe(crc32(typeAndData));
    chunks.push({ type: typeAndData.subarray(0, 4).toString('latin1'), data: typeAndData.subarray(4) });
    offset += 12 + length;
  }
  return chunks;
}

describe('system commands', () => {
  it('records input events and logs them', async () => {
    const device = pixel8();
    expect((await run(device, 'input touchscreen tap 540 1200')).status).toBe(0);
    expect((await run(device, 'input swipe 100 2000 100 400 250')).status).toBe(0);
    expect((await run(device, 'input swipe 1 2 3 4')).status).toBe(0);
    expect((await run(device, "input text 'hello%sworld'")).status).toBe(0);
    expect((await run(device, 'input keyevent KEYCODE_HOME BACK 66')).status).toBe(0);
    expect(device.inputs).toEqual([
      { type: 'tap', x: 540, y: 1200 },
      { type: 'swipe', x1: 100, y1: 2000, x2: 100, y2: 400, durationMs: 250 },
      { type: 'swipe', x1: 1, y1: 2, x2: 3, y2: 4, durationMs: 300 },
      { type: 'text', text: 'hello world' },
      { type: 'keyevent', keyCode: 3 },
      { type: 'keyevent', keyCode: 4 },
      { type: 'keyevent', keyCode: 66 },
    ]);
    expect(await text(device, 'logcat -d -s InputDispatcher')).toContain('Injected tap {"x":540,"y":1200}');
    const bad = await run(device, 'input tap 1');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^Error: Invalid arguments for command: tap\nUsage: input/);
    expect(await run(device, 'input keyevent KEYCODE_NOPE')).toMatchObject({
      status: 1,
      stderr: 'Error: Unknown keycode: KEYCODE_NOPE\n',
    });
    expect(device.inputs).toHaveLength(7);
  });

  it('reports the screen size and density', async () => {
    expect(await text(pixel8(), 'wm size')).toBe('Physical size: 1080x2400\n');
    const pixel3 = new Device(instantiate(builtInProfile('pixel-3'), 0));
    expect(await text(pixel3, 'wm size')).toBe('Physical size: 1080x2160\n');
    expect(await text(pixel3, 'wm density')).toBe('Physical density: 440\n');
  });

  it('captures the screen as a valid PNG of the screen size', async () => {
    const device = new Device({ ...instantiate(builtInProfile('pixel-8'), 0), screen: { width: 64, height: 48, density: 160 } });
    const { status, stdout } = await run(device, 'screencap -p');
    expect(status).toBe(0);
    const chunks = pngChunks(stdout);
    expect(chunks.map((chunk) => chunk.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    const header = chunks[0]!.data;
    expect([header.readUInt32BE(0), header.readUInt32BE(4), header[8], header[9]]).toEqual([64, 48, 8, 6]);
    const rows = inflateSync(chunks[1]!.data);
    expect(rows.length).toBe(48 * (1 + 64 * 4));
    expect(rows[0]).toBe(0);
  });

  it('captures the raw screen with its header', async () => {
    const device = pixel8();
    const { stdout } = await run(device, 'screencap');
    expect([stdout.readUInt32LE(0), stdout.readUInt32LE(4), stdout.readUInt32LE(8)]).toEqual([1080, 2400, 1]);
    expect(stdout.length).toBe(16 + 1080 * 2400 * 4);
    expect(stdout.readUInt8(16 + 3)).toBe(0xff);
  });

  it('dumps the battery in the AOSP format', async () => {
    const output = await text(pixel8(), 'dumpsys battery');
    expect(output).toMatch(/^Current Battery Service state:\n {2}AC powered: false\n {2}USB powered: true\n/);
    expect(output).toContain('  status: 2\n  health: 2\n  present: true\n  level: 78\n  scale: 100\n');
    expect(output).toContain('  temperature: 291\n  technology: Li-ion\n');
    const s21 = new Device(instantiate(builtInProfile('galaxy-s21'), 0));
    const full = await text(s21, 'dumpsys battery');
    expect(full).toContain('  AC powered: true\n');
    expect(full).toContain('  status: 5\n');
    expect(full).not.toContain('Dock powered');
    expect(await run(s21, 'dumpsys nosuch')).toMatchObject({ status: 1, stderr: "Can't find service: nosuch\n" });
  });

  it('gets, puts and deletes settings, kept for the device', async () => {
    const device = pixel8();
    expect(await text(device, 'settings get global adb_enabled')).toBe('1\n');
    expect(await text(device, 'settings get system font_scale')).toBe('null\n');
    expect((await run(device, 'settings put system font_scale 1.3')).status).toBe(0);
    expect(await text(device, 'settings get SYSTEM font_scale')).toBe('1.3\n');
    expect(await text(device, 'settings get secure font_scale')).toBe('null\n');
    expect(await text(device, 'settings delete system font_scale')).toBe('Deleted 1 rows\n');
    expect(await text(device, 'settings delete system font_scale')).toBe('Deleted 0 rows\n');
    expect(await text(device, 'settings list global')).toBe(
      'adb_enabled=1\nairplane_mode_on=0\ndevelopment_settings_enabled=1\n',
    );
    expect(await text(device, 'settings get secure android_id')).toMatch(/^[0-9a-f]{16}\n$/);
    const bad = await run(device, 'settings get vendor x');
    expect(bad.status).toBe(255);
    expect(bad.stderr).toMatch(/^Invalid namespace 'vendor'\nusage:/);
    expect((await run(device, 'settings put global x')).status).toBe(255);
    expect(await text(device, 'logcat -d -s SettingsProvider')).toMatch(/I SettingsProvider: put system font_scale=1\.3\n/);
  });

  it('dumps the log in threadtime format, with boot messages and what the device logged', async () => {
    const device = pixel8();
    device.log('W', 'PackageManager', 'installed com.example');
    const lines = (await text(device, 'logcat -d -v threadtime')).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} {5}1 {5}1 I init {4}: starting service 'adbd'\.\.\.$/);
    expect(lines.at(-1)).toMatch(/^\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} {2}1432 {2}1432 W PackageManager: installed com\.example$/);
    expect(await text(device, 'logcat -d *:W')).toMatch(/^[^\n]* W PackageManager: installed com\.example\n$/);
    expect(await text(device, 'logcat -d -t 1')).toMatch(/PackageManager/);
    expect((await run(device, 'logcat -c')).status).toBe(0);
    expect(await text(device, 'logcat -d')).toBe('');
    expect(await run(device, 'logcat -v brief -d')).toMatchObject({ status: 1 });
  });

  it('writes logger_entry v4 records with -B', async () => {
    const device = pixel8();
    device.system.logs.clear();
    const before = Math.floor(Date.now() / 1000);
    device.log('E', 'Tag', 'boom');
    const record = (await run(device, 'logcat -B -d')).stdout;
    const payload = Buffer.concat([Buffer.of(6), Buffer.from('Tag\0boom\0')]);
    expect(record.length).toBe(28 + payload.length);
    expect(record.readUInt16LE(0)).toBe(payload.length);
    expect(record.readUInt16LE(2)).toBe(28);
    expect([record.readInt32LE(4), record.readUInt32LE(8)]).toEqual([1432, 1432]);
    expect(record.readUInt32LE(12)).toBeGreaterThanOrEqual(before);
    expect(record.readUInt32LE(16)).toBeLessThan(1e9);
    expect([record.readUInt32LE(20), record.readUInt32LE(24)]).toEqual([0, 1000]);
    expect(record.subarray(28)).toEqual(payload);
  });

  it('follows the log until the stream closes', async () => {
    const device = pixel8();
    device.system.logs.clear();
    device.log('I', 'Before', 'one');
    const stop = new AbortController();
    const chunks: string[] = [];
    const seen = new Promise<void>((resolve) => {
      const finished = device.userland.run('logcat', {
        stdin: { read: async () => undefined, readSome: async () => undefined, readChunks: async () => undefined },
        stdout: async (data) => {
          chunks.push(data.toString());
          if (/After +: two/.test(chunks.join(''))) resolve();
        },
        stderr: async () => undefined,
        signal: stop.signal,
      });
      void finished.then((status) => expect(status).toBe(0));
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    device.log('I', 'After', 'two');
    await seen;
    stop.abort();
    expect(chunks.join('')).toMatch(/Before  : one\n.*After   : two\n$/s);
  });
});
