import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Adb } from '@yume-chan/adb';
import { PackageManager } from '@yume-chan/android-bin';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { closeAdb } from '../../src/devices/adb/guard.js';
import { listDirectory, listPackages, pushFile, runShell } from '../../src/devices/adb/operations.js';
import { resetDevice, snapshotDevice } from '../../src/devices/adb/reset.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { connectToVirtual } from './helpers.js';

let device: VirtualDevice;
let adb: Adb;

beforeEach(async () => {
  device = await startVirtualDevice({ profile: defaultProfile(0) });
  adb = await connectToVirtual(device);
});

afterEach(async () => {
  await closeAdb(adb);
  await device.close();
});

async function install(path: string): Promise<void> {
  const bytes = await readFile(path);
  await new PackageManager(adb).installStream(
    bytes.length,
    new ReadableStream({
      start(controller) {
        controller.enqueue(new Uint8Array(bytes));
        controller.close();
      },
    }) as never,
  );
}

const push = (path: string, text: string) => pushFile(adb, path, Readable.from([Buffer.from(text)]));

function exists(path: string): boolean {
  try {
    device.state.files.stat(path);
    return true;
  } catch {
    return false;
  }
}

describe('resetDevice', () => {
  it('uninstalls packages installed after the baseline and empties /data/local/tmp', async () => {
    await install(APKS.settings);
    const baseline = await snapshotDevice(adb);
    expect(baseline.packages).toEqual(['io.appium.settings']);
    await install(APKS.uiautomator2Test);
    await push('/data/local/tmp/junk.txt', 'junk');
    await runShell(adb, 'mkdir -p /data/local/tmp/dir/inner', { timeoutMs: 5000 });
    const outcome = await resetDevice(adb, baseline);
    expect(outcome).toEqual({
      uninstalled: ['io.appium.uiautomator2.server.test'],
      clearedTmp: true,
      removed: ['/data/local/tmp/dir', '/data/local/tmp/junk.txt'],
      differences: [],
      error: null,
    });
    expect((await listPackages(adb, { thirdParty: true })).map((pkg) => pkg.packageName)).toEqual(baseline.packages);
    expect(await listDirectory(adb, '/data/local/tmp')).toEqual([]);
  });

  it('removes the files and folders created in the shared storage, keeping those of the baseline', async () => {
    await push('/sdcard/Download/kept.txt', 'there before the lease');
    await push('/sdcard/Music/album/track.mp3', 'there before the lease');
    const baseline = await snapshotDevice(adb);
    expect(baseline.storage).toMatchObject({ root: '/sdcard', truncated: false });
    expect(Object.keys(baseline.storage!.entries)).toContain('/sdcard/Download/kept.txt');

    await push('/sdcard/Download/left.txt', 'left behind');
    await push('/sdcard/Music/album/bonus.mp3', 'left behind');
    await push('/sdcard/DCIM/Camera/a.jpg', 'left behind');
    await push('/sdcard/DCIM/Camera/b.jpg', 'left behind');
    const outcome = await resetDevice(adb, baseline);
    expect(outcome.removed).toEqual(['/sdcard/DCIM', '/sdcard/Download/left.txt', '/sdcard/Music/album/bonus.mp3']);
    expect(outcome.differences).toEqual([]);
    expect(outcome.error).toBeNull();
    expect(exists('/sdcard/DCIM')).toBe(false);
    expect(exists('/sdcard/Download/left.txt')).toBe(false);
    expect(exists('/sdcard/Music/album/bonus.mp3')).toBe(false);
    expect(exists('/sdcard/Download/kept.txt')).toBe(true);
    expect(exists('/sdcard/Music/album/track.mp3')).toBe(true);
    // Nothing left to do: a second reset against the same baseline removes nothing.
    expect(await resetDevice(adb, baseline)).toMatchObject({ removed: [], differences: [], error: null });
  });

  it('reports what it cannot undo: files and packages deleted, files changed', async () => {
    await install(APKS.settings);
    await push('/sdcard/Download/changed.txt', 'before');
    await push('/sdcard/Music/album/track.mp3', 'before');
    const baseline = await snapshotDevice(adb);
    await push('/sdcard/Download/changed.txt', 'after, and longer');
    await runShell(adb, 'rm -r /sdcard/Music', { timeoutMs: 5000 });
    await runShell(adb, 'pm uninstall io.appium.settings', { timeoutMs: 5000 });
    const outcome = await resetDevice(adb, baseline);
    expect(outcome.differences).toEqual([
      '/sdcard/Download/changed.txt: changed during the lease',
      '/sdcard/Music: deleted during the lease',
      'package io.appium.settings: uninstalled during the lease',
    ]);
    expect(outcome.error).toBeNull();
  });

  it('touches nothing on a device whose serial number is not the one of the baseline', async () => {
    const baseline = await snapshotDevice(adb);
    expect(baseline.serialNo).toBe(device.serial);
    await push('/data/local/tmp/theirs.txt', 'another phone now answers at this address');
    await expect(resetDevice(adb, { ...baseline, serialNo: 'SOMEONE-ELSE' })).rejects.toThrow(/not reset/);
    expect(exists('/data/local/tmp/theirs.txt')).toBe(true);
  });

  it('without a shared-storage baseline, removes nothing there and says it did not check', async () => {
    await push('/sdcard/Download/unknown.txt', 'no baseline');
    const outcome = await resetDevice(adb, { packages: [], storage: null });
    expect(outcome.removed).toEqual([]);
    expect(outcome.differences).toEqual(['shared storage: no baseline, not checked']);
    expect(exists('/sdcard/Download/unknown.txt')).toBe(true);
  });
});
