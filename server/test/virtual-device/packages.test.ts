import { readFile } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice } from '../../src/virtual-device/daemon.js';
import { Device } from '../../src/virtual-device/device.js';
import { defaultProfile, type DeviceProfile } from '../../src/virtual-device/profile.js';
import { ByteQueue, Command } from '../../src/adb-protocol/index.js';
import { ApkParseError, parseApk } from '../../src/virtual-device/userland/apk.js';
import { buildZip } from '../apps/zip.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { TestHost } from '../helpers/test-host.js';
import { runCommand as run } from './run-command.js';

/** `data` cut into chunks of the given sizes in turn, with an empty chunk now and then. */
function chunked(data: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0, index = 0; offset < data.length; index++) {
    const size = sizes[index % sizes.length] as number;
    chunks.push(data.subarray(offset, offset + size));
    if (index % 7 === 0) chunks.push(Buffer.alloc(0));
    offset += size;
  }
  return chunks;
}

function device(overrides: Partial<DeviceProfile> = {}): Device {
  return new Device({ ...defaultProfile(0), ...overrides });
}

/** The bytes of one entry of a zip (stored or deflated). */
function zipEntry(zip: Buffer, name: string): Buffer {
  let offset = 0;
  while (zip.readUInt32LE(offset) === 0x04034b50) {
    const method = zip.readUInt16LE(offset + 8);
    const size = zip.readUInt32LE(offset + 18);
    const nameLength = zip.readUInt16LE(offset + 26);
    const start = offset + 30 + nameLength + zip.readUInt16LE(offset + 28);
    if (zip.toString('utf8', offset + 30, offset + 30 + nameLength) === name) {
      const data = zip.subarray(start, start + size);
      return method === 0 ? data : inflateRawSync(data);
    }
    offset = start + size;
  }
  throw new Error(`no entry ${name}`);
}

/** A zip of stored entries. */
function storedZip(entries: Record<string, Buffer>): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(entries)) {
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt16LE(20, 6);
    header.writeUInt32LE(crc32(data), 16);
    header.writeUInt32LE(data.length, 20);
    header.writeUInt32LE(data.length, 24);
    header.writeUInt16LE(nameBytes.length, 28);
    header.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    central.push(header, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(central.length / 2, 8);
  end.writeUInt16LE(central.length / 2, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

let settings: Buffer;
let unlock: Buffer;
let uiautomator2Test: Buffer;

beforeAll(async () => {
  [settings, unlock, uiautomator2Test] = await Promise.all([
    readFile(APKS.settings),
    readFile(APKS.unlock),
    readFile(APKS.uiautomator2Test),
  ]);
});

describe('APK parsing', () => {
  it('reads the manifest of real APKs', async () => {
    expect(await parseApk(settings)).toMatchObject({
      packageName: 'io.appium.settings',
      versionCode: 192,
      versionName: '8.0.10',
      minSdk: 26,
      targetSdk: 35,
      nativeAbis: [],
      launcherActivity: 'io.appium.settings.Settings',
      instrumentation: undefined,
    });
    expect(await parseApk(unlock)).toMatchObject({
      packageName: 'io.appium.unlock',
      minSdk: 5,
      targetSdk: 5,
      launcherActivity: 'io.appium.unlock.Unlock',
    });
    expect(await parseApk(uiautomator2Test)).toMatchObject({
      packageName: 'io.appium.uiautomator2.server.test',
      versionCode: 0,
      instrumentation: {
        runner: 'androidx.test.runner.AndroidJUnitRunner',
        targetPackage: 'io.appium.uiautomator2.server',
      },
    });
  });
});

describe('APK parsing from chunks', () => {
  it('parses an APK split into many small chunks the same as one buffer', async () => {
    for (const apk of [settings, unlock, uiautomator2Test]) {
      const whole = await parseApk(apk);
      expect(await parseApk(chunked(apk, [1, 3, 7, 4096, 13]))).toEqual(whole);
      expect(await parseApk(chunked(apk, [65_536]))).toEqual(whole);
      expect(await parseApk([apk])).toEqual(whole);
    }
  });

  it('reads a stored or deflated manifest and lists the native ABIs', async () => {
    const manifest = zipEntry(settings, 'AndroidManifest.xml');
    const whole = await parseApk(settings);
    for (const deflate of [false, true]) {
      const zip = buildZip([
        { name: 'classes.dex', data: Buffer.alloc(1000, 1), deflate: true },
        { name: 'lib/x86_64/libone.so', data: Buffer.from('\x7fELF') },
        { name: 'AndroidManifest.xml', data: manifest, deflate },
        { name: 'lib/armeabi-v7a/libtwo.so', data: Buffer.from('\x7fELF'), deflate },
        { name: 'lib/x86_64/notes.txt', data: Buffer.from('not a library') },
      ]);
      const expected = { ...whole, nativeAbis: ['x86_64', 'armeabi-v7a'] };
      expect(await parseApk(zip)).toEqual(expected);
      expect(await parseApk(chunked(zip, [5, 11]))).toEqual(expected);
    }
  });

  it('throws ApkParseError for truncated, garbage or inconsistent data', async () => {
    const manifest = zipEntry(settings, 'AndroidManifest.xml');
    const bad: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from('hello'),
      Buffer.alloc(100_000, 0x50),
      settings.subarray(0, settings.length - 30),
      settings.subarray(0, settings.length >> 1),
      settings.subarray(settings.length >> 1),
      buildZip([{ name: 'classes.dex', data: Buffer.alloc(10) }]),
      buildZip([{ name: 'AndroidManifest.xml', data: Buffer.from('<manifest package="a.b"/>') }]),
      buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true, declaredSize: manifest.length + 1 }]),
      buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true, declaredSize: manifest.length - 1 }]),
      buildZip([{ name: 'AndroidManifest.xml', data: manifest, declaredSize: 64 * 1024 * 1024 }]),
    ];
    const method = buildZip([{ name: 'AndroidManifest.xml', data: manifest }]);
    method.writeUInt16LE(12, method.length - 22 - 46 - 'AndroidManifest.xml'.length + 10);
    bad.push(method);
    const farOffset = buildZip([{ name: 'AndroidManifest.xml', data: manifest }]);
    farOffset.writeUInt32LE(0xfffffff0, farOffset.length - 22 - 46 - 'AndroidManifest.xml'.length + 42);
    bad.push(farOffset);
    const farDirectory = buildZip([{ name: 'AndroidManifest.xml', data: manifest }]);
    farDirectory.writeUInt32LE(0xffffff00, farDirectory.length - 22 + 16);
    bad.push(farDirectory);
    const manyEntries = buildZip([{ name: 'AndroidManifest.xml', data: manifest }]);
    manyEntries.writeUInt16LE(0xffff, manyEntries.length - 22 + 10);
    bad.push(manyEntries);
    for (const data of bad) {
      await expect(parseApk(data)).rejects.toBeInstanceOf(ApkParseError);
      await expect(parseApk(chunked(data, [3, 1000]))).rejects.toBeInstanceOf(ApkParseError);
    }
  });

  it('never lets another error escape from a damaged zip structure', async () => {
    const zip = buildZip([
      { name: 'AndroidManifest.xml', data: zipEntry(settings, 'AndroidManifest.xml'), deflate: true },
      { name: 'lib/x86/liba.so', data: Buffer.from('\x7fELF') },
    ]);
    const structure = [...Array(30).keys(), ...Array.from({ length: 160 }, (_, index) => zip.length - 160 + index)];
    for (const offset of structure) {
      for (const value of [0x00, 0xff]) {
        const damaged = Buffer.from(zip);
        damaged[offset] = value;
        await parseApk(chunked(damaged, [17])).catch((error: unknown) => expect(error).toBeInstanceOf(ApkParseError));
      }
    }
    for (let length = 0; length < zip.length; length += 7) {
      await expect(parseApk(zip.subarray(0, length))).rejects.toBeInstanceOf(ApkParseError);
    }
  });

  it('hands a streamed install its input as the chunks that arrived, without copying them', async () => {
    const queue = new ByteQueue();
    const first = Buffer.from('abcdef');
    const second = Buffer.from('ghij');
    queue.push(first);
    queue.push(second);
    const taken = await queue.readChunks(8);
    expect(taken?.[0]).toBe(first);
    expect(taken?.[1]?.buffer).toBe(second.buffer);
    expect(Buffer.concat(taken ?? []).toString()).toBe('abcdefgh');
    expect((await queue.readChunks(100))?.map(String)).toEqual(['ij']);
    queue.end();
    expect(await queue.readChunks(1)).toBeUndefined();

    const phone = device();
    expect(await run(phone, `pm install -S ${settings.length}`, chunked(settings, [1, 999, 4096]))).toMatchObject({
      status: 0,
      stdout: 'Success\n',
    });
    const short = await run(phone, `pm install -r -S ${settings.length + 1}`, chunked(settings, [4096]));
    expect(short.stdout).toMatch(/^Failure \[INSTALL_PARSE_FAILED_NOT_APK: Failed to parse \/data\/app\/vmdl\d+\.tmp/);
    const garbage = Buffer.alloc(200_000, 0x42);
    expect((await run(phone, `pm install -r -S ${garbage.length}`, chunked(garbage, [333]))).stdout).toMatch(
      /^Failure \[INSTALL_PARSE_FAILED_NOT_APK: /,
    );
  });
});

describe('pm and cmd package', () => {
  it('dumpsys package prints a block per package with its versions and SDK levels', async () => {
    const phone = device();
    await run(phone, `pm install -S ${settings.length}`, settings);
    const one = await run(phone, 'dumpsys package io.appium.settings');
    expect(one.status).toBe(0);
    expect(one.stdout).toMatch(
      /^Packages:\n {2}Package \[io\.appium\.settings\] \([0-9a-f]{7}\):\n {4}codePath=\/data\/app\/io\.appium\.settings-1\n {4}versionCode=192 minSdk=26 targetSdk=35\n {4}versionName=8\.0\.10\n/,
    );
    const all = await run(phone, 'dumpsys package packages');
    expect(all.stdout.match(/^ {2}Package \[/gm)).toHaveLength(phone.packages.list().length);
    expect(all.stdout).toContain('  Package [android] (');
    expect((await run(phone, 'dumpsys package com.nope')).stdout).toBe('Unable to find package: com.nope\n');
  });

  it('installs from standard input with -S and lists, paths and uninstalls the package', async () => {
    const phone = device();
    expect(await run(phone, `cmd package 'install' -S ${settings.length}`, settings)).toEqual({
      status: 0,
      stdout: 'Success\n',
      stderr: '',
    });
    const installed = phone.packages.get('io.appium.settings');
    expect(installed).toMatchObject({
      versionCode: 192,
      versionName: '8.0.10',
      path: '/data/app/io.appium.settings-1/base.apk',
      thirdParty: true,
    });
    expect((await run(phone, 'pm list packages -3')).stdout).toBe('package:io.appium.settings\n');
    expect((await run(phone, 'pm list packages -3 -f')).stdout).toBe(
      'package:/data/app/io.appium.settings-1/base.apk=io.appium.settings\n',
    );
    expect((await run(phone, 'pm list packages android')).stdout).toBe(
      'package:android\npackage:com.android.providers.settings\npackage:com.android.settings\n' +
        'package:com.android.shell\npackage:com.android.systemui\n',
    );
    expect((await run(phone, 'pm path io.appium.settings')).stdout).toBe(
      'package:/data/app/io.appium.settings-1/base.apk\n',
    );
    expect((await run(phone, 'pm path com.nope')).status).toBe(1);
    expect((await run(phone, 'pm clear io.appium.settings')).stdout).toBe('Success\n');
    expect((await run(phone, 'pm clear com.nope')).stdout).toBe('Failed\n');
    expect(await run(phone, 'pm uninstall -k io.appium.settings')).toMatchObject({ status: 0, stdout: 'Success\n' });
    expect((await run(phone, 'pm list packages -3')).stdout).toBe('');
    expect(await run(phone, 'pm uninstall io.appium.settings')).toMatchObject({
      status: 1,
      stdout: 'Failure [DELETE_FAILED_INTERNAL_ERROR]\n',
    });
    expect((await run(phone, 'pm uninstall com.android.settings')).stdout).toBe(
      'Failure [DELETE_FAILED_INTERNAL_ERROR]\n',
    );
  });

  it('installs from a file on the device', async () => {
    const phone = device();
    phone.files.write('/data/local/tmp/settings.apk', settings, { permissions: 0o644 });
    expect(await run(phone, 'pm install -r -g /data/local/tmp/settings.apk')).toMatchObject({
      status: 0,
      stdout: 'Success\n',
    });
    expect(await run(phone, 'pm install /data/local/tmp/nope.apk')).toEqual({
      status: 1,
      stdout: '',
      stderr: "Error: Can't open file: /data/local/tmp/nope.apk\n",
    });
  });

  it('refuses a replacement without -r and a downgrade without -d', async () => {
    const phone = device({ sdk: 28 });
    const installFile = (flags: string) => {
      phone.files.write('/data/local/tmp/a.apk', settings, { permissions: 0o644 });
      return run(phone, `pm install ${flags} /data/local/tmp/a.apk`);
    };
    expect((await installFile('')).stdout).toBe('Success\n');
    const first = phone.packages.get('io.appium.settings')?.firstInstallTime;
    expect(await installFile('')).toMatchObject({
      status: 1,
      stdout:
        'Failure [INSTALL_FAILED_ALREADY_EXISTS: Attempt to re-install io.appium.settings without first ' +
        'uninstalling.]\n',
    });
    expect((await installFile('-r')).stdout).toBe('Success\n');
    expect(phone.packages.get('io.appium.settings')?.firstInstallTime).toBe(first);

    const installed = phone.packages.get('io.appium.settings');
    if (installed === undefined) throw new Error('not installed');
    installed.versionCode = 500;
    expect(await installFile('-r')).toMatchObject({
      status: 1,
      stdout:
        'Failure [INSTALL_FAILED_VERSION_DOWNGRADE: Downgrade detected: Update version code 192 is older than ' +
        'current 500]\n',
    });
    expect((await installFile('-r -d')).stdout).toBe('Success\n');
    expect(phone.packages.get('io.appium.settings')?.versionCode).toBe(192);
  });

  it('fails like Android on a bad or incompatible APK', async () => {
    const phone = device({ sdk: 34, abis: ['x86_64'] });
    const notApk = await run(phone, 'pm install -S 5', Buffer.from('hello'));
    expect(notApk.status).toBe(1);
    expect(notApk.stdout).toMatch(/^Failure \[INSTALL_PARSE_FAILED_NOT_APK: Failed to parse \/data\/app\/vmdl\d+\.tmp/);
    expect((await run(phone, `pm install -S ${unlock.length}`, unlock)).stdout).toBe(
      'Failure [INSTALL_FAILED_DEPRECATED_SDK_VERSION: App package must target at least SDK version 23, but found 5]\n',
    );
    const old = device({ sdk: 25 });
    expect((await run(old, `pm install -S ${settings.length}`, settings)).stdout).toMatch(
      /^Failure \[INSTALL_FAILED_OLDER_SDK: .*Requires newer sdk version #26 \(current version is #25\)\]\n$/,
    );
    expect((await run(device({ sdk: 28 }), `pm install -S ${unlock.length}`, unlock)).stdout).toBe('Success\n');
  });

  it('refuses native code for ABIs the device lacks', async () => {
    const manifest = zipEntry(settings, 'AndroidManifest.xml');
    const library = Buffer.from('\x7fELF');
    const armOnly = storedZip({ 'AndroidManifest.xml': manifest, 'lib/arm64-v8a/libnative.so': library });
    expect(await parseApk(armOnly)).toMatchObject({ packageName: 'io.appium.settings', nativeAbis: ['arm64-v8a'] });
    const x86 = device({ abis: ['x86_64'] });
    expect((await run(x86, `pm install -S ${armOnly.length}`, armOnly)).stdout).toBe(
      'Failure [INSTALL_FAILED_NO_MATCHING_ABIS: Failed to extract native libraries, res=-113]\n',
    );
    const arm = device({ abis: ['arm64-v8a', 'armeabi-v7a'] });
    expect((await run(arm, `pm install -S ${armOnly.length}`, armOnly)).stdout).toBe('Success\n');
  });

  it('explains a missing size or file and unknown commands', async () => {
    const phone = device();
    expect(await run(phone, 'pm install')).toEqual({
      status: 1,
      stdout: '',
      stderr: 'Error: must either specify a package size or an APK file\n',
    });
    expect((await run(phone, 'cmd nosuch')).status).toBe(20);
    expect((await run(phone, 'cmd nosuch')).stderr).toBe("cmd: Can't find service: nosuch\n");
  });
});

describe('the abb_exec: service', () => {
  it('streams an install through abb_exec and announces the configured features', async () => {
    const features = ['shell_v2', 'abb_exec'];
    const phone = await startVirtualDevice({ profile: { ...defaultProfile(0), features } });
    const { host, reply } = await TestHost.connect(phone.port, 64 * 1024);
    try {
      expect(reply.data.toString()).toMatch(/;features=shell_v2,abb_exec$/);
      const remote = (await host.open(1, `abb_exec:package\0install\0-r\0-S\0${settings.length}\0`)) as number;
      expect(remote).toBeDefined();
      for (let offset = 0; offset < settings.length; offset += 64 * 1024) {
        host.send(Command.WRTE, 1, remote, settings.subarray(offset, offset + 64 * 1024));
        expect(await host.next()).toMatchObject({ command: Command.OKAY });
      }
      expect(Buffer.concat(await host.readUntilClose(1, remote)).toString()).toBe('Success\n');
      expect(phone.state.packages.get('io.appium.settings')?.versionCode).toBe(192);

      const listing = (await host.open(2, 'abb_exec:package\0list\0packages\0-3')) as number;
      expect(Buffer.concat(await host.readUntilClose(2, listing)).toString()).toBe('package:io.appium.settings\n');
    } finally {
      host.close();
      await phone.close();
    }
  });
});
