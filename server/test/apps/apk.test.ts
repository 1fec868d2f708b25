import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectApk, InvalidApkError, type ApkInspection } from '../../src/apps/apk.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { buildZip } from './zip.js';

/** What `aapt dump badging` says, the oracle our parser must agree with. */
interface Badging {
  packageName: string;
  versionCode: number | null;
  versionName: string | null;
  minSdk: number | null;
  targetSdk: number | null;
  launchableActivity: string | null;
  permissions: string[];
  abis: string[];
  label: string | null;
  debuggable: boolean;
}

function badging(path: string): Badging {
  const out = execFileSync('aapt', ['dump', 'badging', path], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const field = (re: RegExp) => re.exec(out)?.[1];
  const int = (value: string | undefined) => (value === undefined || value === '' ? null : Number(value));
  const text = (value: string | undefined) => (value === undefined || value === '' ? null : value);
  return {
    packageName: field(/^package: name='([^']*)'/m) ?? '',
    versionCode: int(field(/^package: .*versionCode='([^']*)'/m)),
    versionName: text(field(/^package: .*versionName='([^']*)'/m)),
    minSdk: int(field(/^sdkVersion:'(\d+)'/m)),
    targetSdk: int(field(/^targetSdkVersion:'(\d+)'/m)),
    launchableActivity: text(field(/^launchable-activity: name='([^']*)'/m)),
    permissions: [...out.matchAll(/^uses-permission: name='([^']*)'/gm)].map((m) => m[1]!),
    abis: (field(/^native-code: (.*)$/m) ?? '').split(' ').filter(Boolean).map((abi) => abi.replace(/'/g, '')).sort(),
    label: text(field(/^application-label:'([^']*)'/m)),
    debuggable: /^application-debuggable$/m.test(out),
  };
}

const work = mkdtempSync(join(tmpdir(), 'cloudphone-apk-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function file(name: string, data: Buffer): string {
  const path = join(work, name);
  writeFileSync(path, data);
  return path;
}

async function reason(path: string): Promise<string> {
  const error = await inspectApk(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidApkError);
  return (error as InvalidApkError).message;
}

describe('inspectApk against aapt dump badging', () => {
  for (const [name, path] of Object.entries(APKS)) {
    it(name, async () => {
      const ours = await inspectApk(path);
      const oracle = badging(path);
      expect(ours.packageName).toBe(oracle.packageName);
      expect(ours.versionCode).toBe(oracle.versionCode);
      expect(ours.versionName).toBe(oracle.versionName);
      expect(ours.minSdk).toBe(oracle.minSdk);
      expect(ours.targetSdk).toBe(oracle.targetSdk);
      expect(ours.launchableActivity).toBe(oracle.launchableActivity);
      expect(ours.permissions).toEqual(oracle.permissions);
      expect(ours.abis).toEqual(oracle.abis);
      expect(ours.debuggable).toBe(oracle.debuggable);
      if (oracle.label !== null) expect(ours.label).toBe(oracle.label);
    });
  }

  it('finds the instrumentation of a test APK', async () => {
    const ours = await inspectApk(APKS.uiautomator2Test);
    expect(ours.instrumentation).toEqual({
      runner: 'androidx.test.runner.AndroidJUnitRunner',
      targetPackage: 'io.appium.uiautomator2.server',
    });
    expect((await inspectApk(APKS.settings)).instrumentation).toBeNull();
  });

  it('resolves the label and a PNG launcher icon through resources.arsc', async () => {
    const settings: ApkInspection = await inspectApk(APKS.settings);
    expect(settings.label).toBe('Appium Settings');
    expect(settings.icon?.subarray(1, 4).toString('latin1')).toBe('PNG');
    const unlock = await inspectApk(APKS.unlock);
    expect(unlock.label).toBe('Unlock');
    expect(unlock.icon).not.toBeNull();
    expect((await inspectApk(APKS.uiautomator2)).icon).toBeNull();
  });

  it('reads ABIs from lib/<abi>/ entries', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const path = file(
      'native.apk',
      buildZip([
        { name: 'AndroidManifest.xml', data: manifest },
        { name: 'lib/arm64-v8a/libx.so', data: Buffer.from('x') },
        { name: 'lib/x86_64/libx.so', data: Buffer.from('x') },
      ]),
    );
    const ours = await inspectApk(path);
    expect(ours.abis).toEqual(['arm64-v8a', 'x86_64']);
    expect(ours.packageName).toBe('io.appium.unlock');
    expect(ours.label).toBeNull(); // no resources.arsc
  });
});

async function zipEntry(apk: string, name: string): Promise<Buffer> {
  return execFileSync('unzip', ['-p', apk, name]);
}

describe('inspectApk rejects bad archives', () => {
  it('random bytes: not a zip', async () => {
    expect(await reason(file('random.apk', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))))).toMatch(
      /not a zip archive/,
    );
    expect(await reason(file('empty.apk', Buffer.alloc(0)))).toMatch(/not a zip archive/);
  });

  it('a truncated real APK', async () => {
    const bytes = readFileSync(APKS.unlock);
    expect(await reason(file('truncated.apk', bytes.subarray(0, bytes.length >> 1)))).toMatch(/truncated/);
  });

  it('a zip without AndroidManifest.xml', async () => {
    expect(await reason(file('nomanifest.apk', buildZip([{ name: 'classes.dex', data: Buffer.from('dex') }])))).toMatch(
      /no AndroidManifest\.xml/,
    );
  });

  it('entries escaping the folder', async () => {
    for (const name of ['../evil', 'res/../../evil', '/etc/evil', 'res\\..\\evil']) {
      const zip = buildZip([{ name: 'AndroidManifest.xml', data: Buffer.from('x') }, { name, data: Buffer.from('x') }]);
      expect(await reason(file('escape.apk', zip))).toMatch(/escapes the archive's folder/);
    }
  });

  it('a zip bomb by declared size, per entry and in total', async () => {
    const one = buildZip([
      { name: 'AndroidManifest.xml', data: Buffer.from('x') },
      { name: 'bomb', data: Buffer.alloc(1 << 20), deflate: true, declaredSize: 0xfffffff0 },
    ]);
    expect(one.length).toBeLessThan(4096);
    expect(await reason(file('bomb1.apk', one))).toMatch(/Entry 'bomb' declares 4294967280 bytes uncompressed/);
    const many = buildZip([
      { name: 'AndroidManifest.xml', data: Buffer.from('x') },
      ...Array.from({ length: 5 }, (_, i) => ({ name: `part${i}`, data: Buffer.alloc(1 << 16), deflate: true, declaredSize: 1000 * 1024 ** 2 })),
    ]);
    expect(await reason(file('bomb2.apk', many))).toMatch(/in total \(a zip bomb\?\)/);
  });

  it('too many entries, duplicate names, an unparsable manifest', async () => {
    const entries = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}` }));
    const path = file('many.apk', buildZip([{ name: 'AndroidManifest.xml', data: Buffer.from('x') }, ...entries]));
    const error = await inspectApk(path, { maxEntries: 10, maxEntryBytes: 1024, maxTotalBytes: 4096 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidApkError);
    expect((error as Error).message).toMatch(/21 entries, more than the limit of 10/);
    const dup = buildZip([{ name: 'AndroidManifest.xml', data: Buffer.from('x') }, { name: 'AndroidManifest.xml', data: Buffer.from('y') }]);
    expect(await reason(file('dup.apk', dup))).toMatch(/two entries named 'AndroidManifest\.xml'/);
    expect(await reason(file('text.apk', buildZip([{ name: 'AndroidManifest.xml', data: Buffer.from('<manifest/>') }])))).toMatch(
      /AndroidManifest\.xml cannot be parsed/,
    );
  });
});

/** Fails the test instead of waiting for the test timeout when `promise` does not settle within `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

describe('inspectApk rejects archives whose entries do not match their headers', () => {
  async function malformed(name: string, zip: Buffer): Promise<string> {
    const error = await within(inspectApk(file(name, zip)), 5000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidApkError);
    return (error as InvalidApkError).message;
  }

  it('an entry that inflates to more bytes than it declares', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const zip = buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true, declaredSize: manifest.length - 100 }]);
    expect(await malformed('more.apk', zip)).toMatch(/'AndroidManifest\.xml' inflates to more than the \d+ bytes it declares/);
  });

  it('an entry that inflates to fewer bytes than it declares', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const zip = buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true, declaredSize: manifest.length + 100 }]);
    expect(await malformed('less.apk', zip)).toMatch(
      new RegExp(`'AndroidManifest\\.xml' inflates to ${manifest.length} bytes, not the ${manifest.length + 100} it declares`),
    );
  });

  it('a stored entry whose sizes disagree', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const zip = buildZip([{ name: 'AndroidManifest.xml', data: manifest, declaredSize: manifest.length + 1 }]);
    expect(await malformed('stored.apk', zip)).toMatch(/size mismatch for stored file/);
  });

  it('corrupt deflate data, and data that inflates but fails its CRC', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const good = buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true }]);
    const dataStart = 30 + 'AndroidManifest.xml'.length;
    const garbage = Buffer.from(good);
    garbage.fill(0xff, dataStart, dataStart + 16);
    expect(await malformed('deflate.apk', garbage)).toMatch(/'AndroidManifest\.xml' has corrupt compressed data/);
    const crc = Buffer.from(good);
    crc.writeUInt32LE((crc.readUInt32LE(14) ^ 1) >>> 0, 14);
    const directory = crc.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    crc.writeUInt32LE((crc.readUInt32LE(directory + 16) ^ 1) >>> 0, directory + 16);
    expect(await malformed('crc.apk', crc)).toMatch(/'AndroidManifest\.xml' fails its CRC-32 check/);
  });

  it('a truncated central directory', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const zip = buildZip([
      { name: 'AndroidManifest.xml', data: manifest, deflate: true },
      { name: 'classes.dex', data: Buffer.from('dex') },
    ]);
    // The end record still counts two entries and the directory's full size, but the second record is gone.
    const end = zip.length - 22;
    const second = 46 + 'classes.dex'.length;
    const truncated = Buffer.concat([zip.subarray(0, end - second), zip.subarray(end)]);
    expect(await malformed('directory.apk', truncated)).toMatch(/zip archive is invalid/);
  });

  it('a local header that is not where the directory says', async () => {
    const manifest = await zipEntry(APKS.unlock, 'AndroidManifest.xml');
    const zip = buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true }]);
    zip.writeUInt32LE(0, 0);
    expect(await malformed('local.apk', zip)).toMatch(/'AndroidManifest\.xml' has no local header/);
  });

  it('a resource table that inflates to another size than it declares', async () => {
    const manifest = await zipEntry(APKS.settings, 'AndroidManifest.xml');
    const table = await zipEntry(APKS.settings, 'resources.arsc');
    const zip = buildZip([
      { name: 'AndroidManifest.xml', data: manifest, deflate: true },
      { name: 'resources.arsc', data: table, deflate: true, declaredSize: table.length - 1 },
    ]);
    expect(await malformed('arsc.apk', zip)).toMatch(/'resources\.arsc' inflates to more than/);
  });
});
