import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { DEVICE_FEATURES, type DeviceProfile } from '../../src/virtual-device/profile.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { BUILT_IN_PROFILES } from '../../src/virtual-device/profiles.js';

const PIXEL: DeviceProfile = {
  serial: 'CPINST0001',
  ...BUILT_IN_PROFILES['pixel-8']!,
  instrumentation: {
    'io.appium.uiautomator2.server.test': [
      { class: 'io.appium.uiautomator2.ServerTest', method: 'starts', result: 'pass' },
      { class: 'io.appium.uiautomator2.ServerTest', method: 'stops', result: 'fail' },
    ],
  },
};

/**
 * adb 29 picks its install path by the device's features: streamed through `abb_exec:` when the device has `cmd` and
 * `abb_exec`, streamed through `exec:cmd package install -S` with `cmd` alone, and push + `pm install` + `rm` without
 * `cmd`.
 */
const INSTALL_PATHS = [
  { path: 'abb_exec', features: DEVICE_FEATURES, performing: 'Performing Streamed Install' },
  {
    path: 'exec:cmd',
    features: DEVICE_FEATURES.filter((feature) => feature !== 'abb_exec'),
    performing: 'Performing Streamed Install',
  },
  {
    path: 'push + pm',
    features: DEVICE_FEATURES.filter((feature) => feature !== 'abb_exec' && feature !== 'cmd'),
    performing: 'Performing Push Install',
  },
] as const;

describe('packages, activities and stdin with the real adb client', () => {
  let adb: AdbHost;
  const devices = new Map<string, VirtualDevice>();
  let oldPhone: VirtualDevice;

  const serialOf = (device: VirtualDevice) => `127.0.0.1:${device.port}`;

  async function connect(device: VirtualDevice): Promise<void> {
    expect((await adb.run('connect', serialOf(device))).stdout).toContain(`connected to ${serialOf(device)}`);
    expect((await adb.run('-s', serialOf(device), 'wait-for-device')).code).toBe(0);
  }

  beforeAll(async () => {
    for (const [index, { path, features }] of INSTALL_PATHS.entries()) {
      devices.set(path, await startVirtualDevice({ profile: { ...PIXEL, serial: `CPINST000${index + 1}`, features } }));
    }
    oldPhone = await startVirtualDevice({ profile: { ...PIXEL, serial: 'CPINST0009', release: '9', sdk: 28 } });
    adb = await startAdbHost();
    for (const device of [...devices.values(), oldPhone]) await connect(device);
  });

  afterAll(async () => {
    await adb?.stop();
    await Promise.all([...devices.values(), oldPhone].map((device) => device?.close()));
  });

  for (const { path, performing } of INSTALL_PATHS) {
    it(`installs, lists and uninstalls an APK (${path})`, async () => {
      const device = devices.get(path) as VirtualDevice;
      const serial = serialOf(device);
      const installed = await adb.run('-s', serial, 'install', '-r', APKS.settings);
      expect(installed.code, installed.stderr).toBe(0);
      expect(installed.stdout).toContain(performing);
      expect(installed.stdout).toMatch(/^Success$/m);
      expect(device.state.packages.get('io.appium.settings')).toMatchObject({ versionCode: 192, thirdParty: true });
      // The push install leaves no copy behind.
      expect((await adb.run('-s', serial, 'shell', 'ls', '/data/local/tmp')).stdout).toBe('');

      expect(await adb.run('-s', serial, 'shell', 'pm', 'list', 'packages', '-3')).toMatchObject({
        code: 0,
        stdout: 'package:io.appium.settings\n',
      });
      expect((await adb.run('-s', serial, 'shell', 'pm', 'path', 'io.appium.settings')).stdout).toBe(
        'package:/data/app/io.appium.settings-1/base.apk\n',
      );

      const removed = await adb.run('-s', serial, 'uninstall', 'io.appium.settings');
      expect(removed).toMatchObject({ code: 0, stdout: 'Success\n' });
      expect((await adb.run('-s', serial, 'shell', 'pm', 'list', 'packages', '-3')).stdout).toBe('');
    });
  }

  it('refuses an app targeting SDK 5 on SDK 34 and installs it on SDK 28', async () => {
    const refused = await adb.run('-s', serialOf(devices.get('abb_exec') as VirtualDevice), 'install', APKS.unlock);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'Failure [INSTALL_FAILED_DEPRECATED_SDK_VERSION: App package must target at least SDK version 23, but found 5]',
    );
    const pushed = await adb.run('-s', serialOf(devices.get('push + pm') as VirtualDevice), 'install', APKS.unlock);
    // With shell_v2 the push install sees pm's exit code; pm's output goes to standard output.
    expect(pushed.code).toBe(1);
    expect(pushed.stdout).toContain('Failure [INSTALL_FAILED_DEPRECATED_SDK_VERSION: ');

    const installed = await adb.run('-s', serialOf(oldPhone), 'install', APKS.unlock);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/^Success$/m);
    expect(oldPhone.state.packages.get('io.appium.unlock')?.versionName).toBe('2.0.0');
  });

  it('starts activities and runs scripted instrumentation through adb shell', async () => {
    const serial = serialOf(devices.get('abb_exec') as VirtualDevice);
    expect((await adb.run('-s', serial, 'install', '-r', APKS.settings)).code).toBe(0);
    expect(await adb.run('-s', serial, 'shell', 'am', 'start', '-n', 'io.appium.settings/.Settings')).toEqual({
      code: 0,
      stdout: 'Starting: Intent { cmp=io.appium.settings/.Settings }\n',
      stderr: '',
    });
    const missing = await adb.run('-s', serial, 'shell', 'am', 'start', '-n', 'io.appium.settings/.Nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      'Error: Activity class {io.appium.settings/io.appium.settings.Nope} does not exist.',
    );

    const runner = 'io.appium.uiautomator2.server.test/androidx.test.runner.AndroidJUnitRunner';
    const notInstalled = await adb.run('-s', serial, 'shell', 'am', 'instrument', '-r', '-w', runner);
    expect(notInstalled.stderr).toContain(`INSTRUMENTATION_FAILED: ${runner}`);
    expect((await adb.run('-s', serial, 'install', '-t', APKS.uiautomator2Test)).code).toBe(0);
    const ran = await adb.run('-s', serial, 'shell', 'am', 'instrument', '-r', '-w', '-e', 'debug', 'false', runner);
    expect(ran.code).toBe(0);
    const codes = [...ran.stdout.matchAll(/^INSTRUMENTATION_STATUS_CODE: (-?\d+)$/gm)].map((match) => match[1]);
    expect(codes).toEqual(['1', '0', '1', '-2']);
    expect(ran.stdout).toContain('FAILURES!!!\nTests run: 2,  Failures: 1\n');
    expect(ran.stdout).toMatch(/\nINSTRUMENTATION_CODE: -1\n$/);
  });

  it('pipes standard input to a shell command', async () => {
    const serial = serialOf(devices.get('abb_exec') as VirtualDevice);
    const child = spawn('adb', ['-P', String(adb.port), '-s', serial, 'shell', 'cat'], {
      env: { ...process.env, HOME: adb.home },
      timeout: 15_000,
    });
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stdin.end('piped through stdin\n');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(0);
    expect(Buffer.concat(output).toString()).toBe('piped through stdin\n');
  });

  it('streams an 18 MB APK', async () => {
    const serial = serialOf(devices.get('exec:cmd') as VirtualDevice);
    const installed = await adb.run('-s', serial, 'install', APKS.uiautomator2);
    expect(installed.code, installed.stderr).toBe(0);
    expect((await adb.run('-s', serial, 'shell', 'pm', 'list', 'packages', 'uiautomator2')).stdout).toBe(
      'package:io.appium.uiautomator2.server\n',
    );
  });
});
