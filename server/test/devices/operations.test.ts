import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Adb } from '@yume-chan/adb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import {
  DeviceFileNotFoundError,
  DeviceOfflineError,
  InvalidDevicePathError,
} from '../../src/devices/adb/errors.js';
import { closeAdb } from '../../src/devices/adb/guard.js';
import { kindOf, readDeviceInfo, readSystemProperties } from '../../src/devices/adb/info.js';
import {
  dumpLogcat,
  followLogcat,
  listDirectory,
  listPackages,
  openShellSession,
  parseVersionNames,
  pullFile,
  pushFile,
  rebootDevice,
  runShell,
  sendInput,
  takeScreenshot,
  validateDevicePath,
} from '../../src/devices/adb/operations.js';
import { connectToVirtual, eventually } from './helpers.js';

let device: VirtualDevice;
let adb: Adb;

beforeEach(async () => {
  device = await startVirtualDevice({ profile: defaultProfile(0), rebootDelayMs: 60_000 });
  adb = await connectToVirtual(device);
});

afterEach(async () => {
  await closeAdb(adb);
  await device.close();
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('device info', () => {
  it('reads properties, screen and battery; kind virtual', async () => {
    const props = await readSystemProperties(adb);
    expect(kindOf(device.serial, props, 'direct')).toBe('virtual');
    const info = await readDeviceInfo(adb, props);
    expect(info.properties).toEqual({
      manufacturer: 'cloudphone',
      model: 'Virtual Phone',
      brand: 'cloudphone',
      device: 'virtual',
      androidVersion: '14',
      sdk: 34,
      abis: ['x86_64', 'arm64-v8a'],
      screen: { width: 1080, height: 2400, density: 420 },
    });
    expect(info.battery).toEqual({ level: 85, charging: true, temperatureC: 25 });
  });

  it('kind from serial and properties', () => {
    const none = new Map<string, string>();
    expect(kindOf('emulator-5554', none, 'adb_server')).toBe('emulator');
    expect(kindOf('R58M123', new Map([['ro.kernel.qemu', '1']]), 'adb_server')).toBe('emulator');
    expect(kindOf('192.0.2.5:5555', none, 'adb_server')).toBe('network');
    expect(kindOf('adb-XYZ._adb-tls-connect._tcp', none, 'adb_server')).toBe('network');
    expect(kindOf('R58M123', none, 'adb_server')).toBe('physical');
    expect(kindOf('192.0.2.5:5555', none, 'direct')).toBe('network');
  });
});

describe('runShell', () => {
  it('returns stdout, stderr and the exit code', async () => {
    const ok = await runShell(adb, 'echo hello', { timeoutMs: 5000 });
    expect(ok).toMatchObject({ exitCode: 0, stdout: 'hello\n', stderr: '', timedOut: false, truncated: false });
    const missing = await runShell(adb, 'nosuchcmd', { timeoutMs: 5000 });
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('nosuchcmd');
    expect((await runShell(adb, 'false', { timeoutMs: 5000 })).exitCode).toBe(1);
  });

  it('quotes argv word by word', async () => {
    const result = await runShell(adb, ['echo', "it's", 'a b', '$HOME', '"q"'], { timeoutMs: 5000 });
    expect(result.stdout).toBe(`it's a b $HOME "q"\n`);
  });

  it('feeds stdin', async () => {
    const result = await runShell(adb, 'cat', { timeoutMs: 5000, stdin: Buffer.from('from stdin') });
    expect(result.stdout).toBe('from stdin');
  });

  it('times out without throwing', async () => {
    const result = await runShell(adb, 'sleep 30', { timeoutMs: 300 });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBe(-1);
  });

  it('truncates at maxOutputBytes', async () => {
    const result = await runShell(adb, ['echo', 'x'.repeat(100)], { timeoutMs: 5000, maxOutputBytes: 10 });
    expect(result.truncated).toBe(true);
    expect(result.stdout).toBe('xxxxxxxxxx');
  });

  it('a device killed mid-shell → DeviceOfflineError promptly', async () => {
    const running = runShell(adb, 'sleep 60', { timeoutMs: 60_000 });
    setTimeout(() => void device.close(), 100);
    const started = Date.now();
    await expect(running).rejects.toBeInstanceOf(DeviceOfflineError);
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(runShell(adb, 'echo', { timeoutMs: 5000 })).rejects.toBeInstanceOf(DeviceOfflineError);
  });
});

describe('files', () => {
  it('pushes 5 MB streamed and pulls it back byte-exact', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    let pulled = 0;
    async function* source() {
      for (let offset = 0; offset < data.length; offset += 100_000) {
        pulled++;
        yield data.subarray(offset, offset + 100_000);
      }
    }
    const pushed = await pushFile(adb, '/data/local/tmp/big.bin', source(), { mode: 0o600 });
    expect(pushed.size).toBe(data.length);
    expect(pulled).toBe(Math.ceil(data.length / 100_000));
    const { size, stream } = await pullFile(adb, '/data/local/tmp/big.bin');
    expect(size).toBe(data.length);
    const back = await readAll(stream);
    const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    expect(sha(back)).toBe(sha(data));
    const entries = await listDirectory(adb, '/data/local/tmp');
    expect(entries.find((entry) => entry.name === 'big.bin')).toMatchObject({ type: 'file', size: data.length });
  });

  it('pushes from a Node Readable', async () => {
    await pushFile(adb, '/data/local/tmp/small.txt', Readable.from([Buffer.from('abc'), Buffer.from('def')]));
    const { stream } = await pullFile(adb, '/data/local/tmp/small.txt');
    expect((await readAll(stream)).toString()).toBe('abcdef');
  });

  it('pull of a missing path or a directory', async () => {
    await expect(pullFile(adb, '/data/local/tmp/nope')).rejects.toBeInstanceOf(DeviceFileNotFoundError);
    await expect(pullFile(adb, '/data/local/tmp')).rejects.toBeInstanceOf(InvalidDevicePathError);
    await expect(listDirectory(adb, '/nope/dir')).rejects.toBeInstanceOf(DeviceFileNotFoundError);
  });

  it('lists a directory sorted, without . and ..', async () => {
    await runShell(adb, 'mkdir -p /data/local/tmp/d/sub', { timeoutMs: 5000 });
    await pushFile(adb, '/data/local/tmp/d/b.txt', Readable.from([Buffer.from('b')]));
    await pushFile(adb, '/data/local/tmp/d/a.txt', Readable.from([Buffer.from('aa')]));
    const entries = await listDirectory(adb, '/data/local/tmp/d/');
    expect(entries.map((entry) => [entry.name, entry.type])).toEqual([
      ['a.txt', 'file'],
      ['b.txt', 'file'],
      ['sub', 'directory'],
    ]);
    expect(entries[0]!.size).toBe(2);
    expect(Number.isNaN(Date.parse(entries[0]!.modifiedAt))).toBe(false);
  });

  it('a device killed mid-push → DeviceOfflineError promptly, and the source stops', async () => {
    let chunks = 0;
    async function* endless() {
      for (;;) {
        chunks++;
        if (chunks === 20) void device.close();
        yield Buffer.alloc(64 * 1024, 1);
      }
    }
    const started = Date.now();
    await expect(pushFile(adb, '/data/local/tmp/endless.bin', endless())).rejects.toBeInstanceOf(DeviceOfflineError);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('validateDevicePath', () => {
    expect(validateDevicePath('/sdcard/a.txt')).toBe('/sdcard/a.txt');
    expect(validateDevicePath('/data//local/tmp/')).toBe('/data/local/tmp');
    expect(validateDevicePath('/')).toBe('/');
    for (const bad of ['relative/x', '', '/a/../b', '/a/./b', '/a\0b', '/a\nb', `/${'x'.repeat(1024)}`]) {
      expect(() => validateDevicePath(bad)).toThrow(InvalidDevicePathError);
    }
  });
});

describe('screen, log, input, packages', () => {
  it('takes a PNG screenshot', async () => {
    const png = await takeScreenshot(adb);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  });

  it('dumps logcat with filters', async () => {
    device.state.log('W', 'MyTag', 'warned');
    device.state.log('I', 'MyTag', 'informed');
    device.state.log('E', 'Other', 'failed');
    const all = await dumpLogcat(adb);
    expect(all.length).toBeGreaterThanOrEqual(7);
    expect(all.at(-1)).toMatchObject({ priority: 'E', tag: 'Other', message: 'failed' });
    expect(Number.isNaN(Date.parse(all[0]!.time))).toBe(false);
    expect((await dumpLogcat(adb, { tags: ['MyTag'] })).map((entry) => entry.message)).toEqual(['warned', 'informed']);
    expect((await dumpLogcat(adb, { priority: 'W' })).map((entry) => entry.message)).toEqual(['warned', 'failed']);
    expect((await dumpLogcat(adb, { tags: ['MyTag'], tail: 1 })).map((entry) => entry.message)).toEqual(['informed']);
    expect(await dumpLogcat(adb, { tail: 2 })).toHaveLength(2);
    const pid = all.at(-1)!.pid;
    expect((await dumpLogcat(adb, { pid })).every((entry) => entry.pid === pid)).toBe(true);
    expect(await dumpLogcat(adb, { pid: 999_999 })).toEqual([]);
  });

  it('follows logcat until aborted', async () => {
    const stop = new AbortController();
    const seen: string[] = [];
    const following = (async () => {
      for await (const entry of followLogcat(adb, { tags: ['Follow'] }, stop.signal)) {
        seen.push(entry.message);
        if (seen.length === 2) stop.abort();
      }
    })();
    await eventually(async () => {
      device.state.log('I', 'Follow', `line ${seen.length}`);
      return seen.length >= 1;
    }, 10_000);
    device.state.log('I', 'Follow', 'last');
    await following;
    expect(seen).toHaveLength(2);
  });

  it('sends input that the device records', async () => {
    await sendInput(adb, { type: 'tap', x: 10, y: 20 });
    await sendInput(adb, { type: 'swipe', x1: 1, y1: 2, x2: 3, y2: 4, durationMs: 500 });
    await sendInput(adb, { type: 'text', text: "hello world it's" });
    await sendInput(adb, { type: 'keyevent', key: 'KEYCODE_HOME' });
    await sendInput(adb, { type: 'keyevent', key: 'BACK' });
    expect(device.state.inputs).toEqual([
      { type: 'tap', x: 10, y: 20 },
      { type: 'swipe', x1: 1, y1: 2, x2: 3, y2: 4, durationMs: 500 },
      { type: 'text', text: "hello world it's" },
      { type: 'keyevent', keyCode: 3 },
      { type: 'keyevent', keyCode: 4 },
    ]);
  });

  it('lists packages', async () => {
    const all = await listPackages(adb, { thirdParty: false });
    expect(all.map((pkg) => pkg.packageName)).toContain('com.android.settings');
    expect(all.find((pkg) => pkg.packageName === 'android')).toEqual({ packageName: 'android', versionCode: 34, versionName: null });
    expect(await listPackages(adb, { thirdParty: true })).toEqual([]);
  });

  it('lists packages with their version names, read from dumpsys package', async () => {
    const { APKS } = await import('../helpers/apk-fixtures.js');
    const { PackageManager } = await import('@yume-chan/android-bin');
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(APKS.settings);
    await new PackageManager(adb).installStream(bytes.length, new ReadableStream({ start(c) { c.enqueue(new Uint8Array(bytes)); c.close(); } }) as never);
    expect(await listPackages(adb, { thirdParty: true, versionNames: true })).toEqual([
      { packageName: 'io.appium.settings', versionCode: 192, versionName: '8.0.10' },
    ]);
    const all = await listPackages(adb, { thirdParty: false, versionNames: true });
    expect(all.find((pkg) => pkg.packageName === 'android')).toEqual({ packageName: 'android', versionCode: 34, versionName: '14' });
    // Without the option, no dumpsys: names only from pm list packages.
    expect((await listPackages(adb, { thirdParty: true }))[0]?.versionName).toBeNull();
  });

  it('reads version names from a dumpsys package dump, first block of each name', () => {
    const dump = [
      'Packages:',
      '  Package [com.example.app] (1a2b3c4):',
      '    userId=10153',
      '    versionCode=7 minSdk=26 targetSdk=34',
      '    versionName=2.1.0-rc1',
      '  Package [com.example.noname] (5d6e7f8):',
      '    versionCode=1 minSdk=26 targetSdk=34',
      '  Package [com.android.chrome] (9a8b7c6):',
      '    versionName=131.0.6778.200',
      '',
      'Hidden system packages:',
      '  Package [com.android.chrome] (0f0f0f0):',
      '    versionName=120.0.0.0',
    ].join('\n');
    expect([...parseVersionNames(dump)]).toEqual([
      ['com.example.app', '2.1.0-rc1'],
      ['com.android.chrome', '131.0.6778.200'],
    ]);
  });

  it('reboots: the connection drops', async () => {
    await rebootDevice(adb);
    await eventually(() => adb.disconnected.then(() => true), 5000, 'disconnect');
  });
});

describe('shell session', () => {
  it('raw session: stdin, stdout, stderr, exit code', async () => {
    const session = await openShellSession(adb, { command: 'cat', pty: false });
    await session.write(Buffer.from('ping\n'));
    const reader = session.stdout[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(Buffer.from(first.value as Uint8Array).toString()).toBe('ping\n');
    await session.closeStdin();
    expect(await session.exited).toBe(0);
    expect(session.stderr).not.toBeNull();
  });

  it('exit code of a failing command', async () => {
    const session = await openShellSession(adb, { command: 'nosuchcmd', pty: false });
    await session.closeStdin();
    const errors: Buffer[] = [];
    for await (const chunk of session.stderr!) errors.push(Buffer.from(chunk));
    expect(Buffer.concat(errors).toString()).toContain('nosuchcmd');
    expect(await session.exited).toBe(127);
  });

  it('pty session with resize and kill', async () => {
    const session = await openShellSession(adb, { command: 'cat', pty: true, rows: 40, cols: 100 });
    await session.resize(50, 120);
    await session.kill();
    expect(await session.exited).toBeNull();
  });

  it('device drop → exited rejects with DeviceOfflineError', async () => {
    const session = await openShellSession(adb, { command: 'cat', pty: false });
    void device.close();
    await expect(session.exited).rejects.toBeInstanceOf(DeviceOfflineError);
  });
});

describe('a device without shell_v2 and stat_v2', () => {
  it('runs commands over exec: (exit code 0, output mixed) and stats with lstat v1', async () => {
    const old = await startVirtualDevice({ profile: { ...defaultProfile(1), features: ['cmd'] } });
    const oldAdb = await connectToVirtual(old);
    try {
      expect(oldAdb.subprocess.shellProtocol?.isSupported ?? false).toBe(false);
      const result = await runShell(oldAdb, ['echo', 'a b'], { timeoutMs: 5000 });
      expect(result).toMatchObject({ exitCode: 0, stdout: 'a b\n', timedOut: false });
      await pushFile(oldAdb, '/data/local/tmp/v1.txt', Readable.from([Buffer.from('v1')]));
      const { size, stream } = await pullFile(oldAdb, '/data/local/tmp/v1.txt');
      expect(size).toBe(2);
      expect((await readAll(stream)).toString()).toBe('v1');
      await expect(pullFile(oldAdb, '/data/local/tmp/none')).rejects.toBeInstanceOf(DeviceFileNotFoundError);
      const session = await openShellSession(oldAdb, { command: 'echo hi', pty: false });
      const chunks: Buffer[] = [];
      for await (const chunk of session.stdout) chunks.push(Buffer.from(chunk));
      expect(Buffer.concat(chunks).toString()).toBe('hi\n');
      expect(session.stderr).toBeNull();
      expect(await session.exited).toBeNull();
    } finally {
      await closeAdb(oldAdb);
      await old.close();
    }
  });
});
