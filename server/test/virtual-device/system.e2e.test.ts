import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { builtInProfile, instantiate } from '../../src/virtual-device/profiles.js';
import { connectDevice, startAdbHost, type AdbHost } from '../helpers/adb-host.js';

describe('system commands driven by the real adb client', () => {
  let adb: AdbHost;
  let device: VirtualDevice;
  let serial: string;

  beforeAll(async () => {
    device = await startVirtualDevice({ profile: instantiate(builtInProfile('pixel-6a'), 0) });
    adb = await startAdbHost();
    serial = await connectDevice(adb, device.port);
  });

  afterAll(async () => {
    await adb?.stop();
    await device?.close();
  });

  it('exec-out screencap -p gives a PNG of the screen size', async () => {
    const png = await new Promise<Buffer>((resolve, reject) => {
      const child = spawn('adb', ['-P', String(adb.port), '-s', serial, 'exec-out', 'screencap', '-p'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const chunks: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      child.once('error', reject);
      child.once('close', () => resolve(Buffer.concat(chunks)));
    });
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1080, 2400]);
    expect(png.subarray(-8, -4).toString('latin1')).toBe('IEND');
  });

  it('records input, answers wm, dumpsys and settings, and shows it all in logcat -d', async () => {
    const shell = (...args: string[]) => adb.run('-s', serial, 'shell', ...args);
    expect((await shell('input', 'tap', '10', '20')).code).toBe(0);
    expect((await shell('input', 'text', 'hi there')).code).toBe(1);
    expect((await shell('input', 'text', "'hi there'")).code).toBe(0);
    expect(device.state.inputs).toEqual([
      { type: 'tap', x: 10, y: 20 },
      { type: 'text', text: 'hi there' },
    ]);
    expect((await shell('wm', 'size')).stdout).toBe('Physical size: 1080x2400\n');
    expect((await shell('dumpsys', 'battery')).stdout).toContain('  level: 64\n');
    expect((await shell('settings', 'put', 'global', 'stay_on_while_plugged_in', '3')).code).toBe(0);
    expect((await shell('settings', 'get', 'global', 'stay_on_while_plugged_in')).stdout).toBe('3\n');
    device.state.log('I', 'CloudphoneTest', 'marker');

    const logcat = await adb.run('-s', serial, 'logcat', '-d');
    expect(logcat.code).toBe(0);
    expect(logcat.stdout).toMatch(/ I ActivityManager: System now ready\n/);
    expect(logcat.stdout).toMatch(/ D InputDispatcher: Injected tap \{"x":10,"y":20\}\n/);
    expect(logcat.stdout).toMatch(/ I SettingsProvider: put global stay_on_while_plugged_in=3\n/);
    expect(logcat.stdout).toMatch(/^\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} {2}1432 {2}1432 I CloudphoneTest: marker$/m);
    expect((await adb.run('-s', serial, 'logcat', '-c')).code).toBe(0);
    expect((await adb.run('-s', serial, 'logcat', '-d')).stdout).toBe('');
  });
});
