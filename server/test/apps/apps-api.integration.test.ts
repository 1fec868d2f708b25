import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtInProfile, instantiate, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { allDevices, eventually, type Json } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';
import { buildArsc } from './arsc.js';
import { buildZip } from './zip.js';

const OCTETS = 'application/octet-stream';

let api: Api;
let member: Caller;
let other: Caller;
let oldPhone: VirtualDevice;
/** An SDK 34 device (in-process) and an SDK 28 one (a pixel-3 reached as an ADB-over-TCP host). */
let modern: Json;
let old: Json;

beforeAll(async () => {
  api = await startApi({ virtualDevices: 1 });
  member = await api.addCaller('member');
  other = await api.addCaller('member');
  oldPhone = await startVirtualDevice({ port: 0, profile: instantiate(builtInProfile('pixel-3'), 0) });
  const added = await api.call('createHost', {
    token: api.admin.token,
    body: { type: 'adb_device', address: `127.0.0.1:${oldPhone.port}` },
  });
  expect(added.status).toBe(201);
  [modern, old] = await eventually(async () => {
    const online = await allDevices(api, member.token, { state: 'online' });
    const sdk34 = online.find((device) => device.properties?.sdk === 34);
    const sdk28 = online.find((device) => device.properties?.sdk === 28);
    return sdk34 && sdk28 ? [sdk34, sdk28] : undefined;
  }, 30_000, 'an SDK 34 and an SDK 28 device online');
}, 60_000);

afterAll(async () => {
  await api?.close();
  await oldPhone?.close();
});

async function upload(caller: Caller, file: string, query: Record<string, string | boolean> = {}) {
  return api.call('uploadApp', { token: caller.token, rawBody: readFileSync(file), contentType: OCTETS, query });
}

function blobFiles(): string[] {
  const root = join(api.server.config.dataDir, 'blobs');
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.apk'));
}

describe('upload and store', () => {
  it('parses an upload, dedupes the same bytes per uploader and across uploaders, and keeps one blob', async () => {
    const sha256 = createHash('sha256').update(readFileSync(APKS.settings)).digest('hex');
    const first = await upload(member, APKS.settings, { fileName: 'settings.apk' });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      sha256,
      fileName: 'settings.apk',
      kind: 'app',
      shared: false,
      uploaderId: member.userId,
      metadata: {
        packageName: 'io.appium.settings',
        versionCode: 192,
        versionName: '8.0.10',
        minSdk: 26,
        targetSdk: 35,
        launchableActivity: 'io.appium.settings.Settings',
        instrumentation: null,
      },
    });

    const again = await upload(member, APKS.settings);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);

    // Another user cannot claim a private APK by its hash; sending the bytes makes their app of the same blob.
    const byHash = await api.call('createAppFromHash', { token: other.token, body: { sha256 } });
    expect(byHash.status).toBe(404);
    expect(byHash.body.code).toBe('app_blob_not_found');
    const theirs = await upload(other, APKS.settings);
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(first.body.id);
    expect(theirs.body.sha256).toBe(sha256);
    expect(blobFiles().filter((name) => name.includes(sha256))).toHaveLength(1);
    expect((await api.call('createAppFromHash', { token: other.token, body: { sha256 } })).status).toBe(200);

    const unknown = await api.call('createAppFromHash', { token: other.token, body: { sha256: 'f'.repeat(64) } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('app_blob_not_found');
  });

  it('recognises a test APK by its instrumentation', async () => {
    const test = await upload(member, APKS.uiautomator2Test);
    expect(test.status).toBe(201);
    expect(test.body.kind).toBe('test');
    expect(test.body.metadata.instrumentation).toEqual({
      runner: 'androidx.test.runner.AndroidJUnitRunner',
      targetPackage: 'io.appium.uiautomator2.server',
    });
  });

  it('refuses what is not an APK with 422 invalid_apk and records nothing', async () => {
    const before = (await api.call('listApps', { token: member.token, query: { limit: 200 } })).body.data.length;
    const files = blobFiles().length;
    const refused = await api.call('uploadApp', { token: member.token, rawBody: randomBytes(4096), contentType: OCTETS });
    expect(refused.status).toBe(422);
    expect(refused.body.code).toBe('invalid_apk');
    expect((await api.call('listApps', { token: member.token, query: { limit: 200 } })).body.data).toHaveLength(before);
    expect(blobFiles()).toHaveLength(files);
  });

  it('refuses an APK whose manifest or label holds U+0000 with 422 invalid_apk, on both engines alike', async () => {
    const manifest = execFileSync('unzip', ['-p', APKS.unlock, 'AndroidManifest.xml']);
    // The manifest's UTF-16 string pool holds the package name: io.appium<U+0000>unlock, same length.
    const at = manifest.indexOf(Buffer.from('io.appium.unlock', 'utf16le'));
    expect(at).toBeGreaterThan(0);
    const broken = Buffer.from(manifest);
    broken.writeUInt16LE(0, at + 'io.appium'.length * 2);
    // The manifest's label is @0x7f040000: entry 0 of the fourth type, `string`.
    const labelled = buildArsc({
      utf8: true,
      typeNames: ['attr', 'drawable', 'layout', 'string'],
      chunks: [{ type: 'string', entries: { 0: { string: 'Un\u0000lock' } } }],
    });
    const apks = [
      buildZip([{ name: 'AndroidManifest.xml', data: broken }]),
      buildZip([
        { name: 'AndroidManifest.xml', data: manifest },
        { name: 'resources.arsc', data: labelled },
      ]),
    ];
    const before = (await api.call('listApps', { token: member.token, query: { limit: 200 } })).body.data.length;
    const files = blobFiles().length;
    for (const apk of apks) {
      const refused = await api.call('uploadApp', { token: member.token, rawBody: apk, contentType: OCTETS });
      expect([refused.status, refused.body.code, refused.body.detail]).toEqual([422, 'invalid_apk', expect.stringContaining('U+0000')]);
    }
    expect((await api.call('listApps', { token: member.token, query: { limit: 200 } })).body.data).toHaveLength(before);
    expect(blobFiles()).toHaveLength(files);
  });

  it('keeps private apps to their uploader until shared, and serves the APK whole or by range', async () => {
    const mine = (await upload(member, APKS.unlock)).body;
    expect((await api.call('getApp', { token: other.token, path: { appId: mine.id } })).status).toBe(404);
    const shared = await api.call('updateApp', { token: member.token, path: { appId: mine.id }, body: { shared: true } });
    expect(shared.body.shared).toBe(true);
    expect((await api.call('getApp', { token: other.token, path: { appId: mine.id } })).status).toBe(200);

    const bytes = readFileSync(APKS.unlock);
    const whole = await api.call('downloadApp', { token: other.token, path: { appId: mine.id }, binary: true });
    expect(whole.status).toBe(200);
    expect(Buffer.compare(whole.body, bytes)).toBe(0);
    const part = await api.call('downloadApp', {
      token: other.token,
      path: { appId: mine.id },
      headers: { range: 'bytes=100-199' },
      binary: true,
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${bytes.length}`);
    expect(Buffer.compare(part.body, bytes.subarray(100, 200))).toBe(0);
  });

  it('deletes the blob with the last app that names it', async () => {
    const app = (await upload(member, APKS.uiautomator2)).body;
    expect(blobFiles().some((name) => name.includes(app.sha256))).toBe(true);
    expect((await api.call('deleteApp', { token: other.token, path: { appId: app.id } })).status).toBe(404);
    expect((await api.call('deleteApp', { token: member.token, path: { appId: app.id } })).status).toBe(204);
    expect(blobFiles().some((name) => name.includes(app.sha256))).toBe(false);
  });
});

describe('install', () => {
  it("installs on every device of a lease; the device that refuses the app fails with Android's reason", async () => {
    const app = (await upload(member, APKS.unlock)).body;
    const lease = await api.call('createLease', {
      token: member.token,
      body: { selector: { deviceIds: [modern.id, old.id] }, count: 2 },
    });
    expect(lease.status).toBe(201);

    const started = await api.call('installApp', {
      token: member.token,
      path: { appId: app.id },
      body: { leaseId: lease.body.id },
    });
    expect(started.status).toBe(202);
    const job = await eventually(async () => {
      const got = await api.call('getInstallJob', { token: member.token, path: { jobId: started.body.id }, query: { waitSeconds: 30 } });
      return got.body.status === 'succeeded' || got.body.status === 'failed' ? got.body : undefined;
    }, 60_000, 'the install job to finish');
    expect(job.status).toBe('failed');
    const byDevice = new Map<string, Json>(job.devices.map((device: Json) => [device.deviceId, device]));
    expect(byDevice.get(old.id)).toMatchObject({ status: 'installed', reason: null });
    expect(byDevice.get(modern.id)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^INSTALL_FAILED_DEPRECATED_SDK_VERSION/) });

    const packages = await api.call('listDevicePackages', { token: member.token, path: { deviceId: old.id }, query: { thirdParty: true } });
    expect(packages.body.data.map((p: Json) => p.packageName)).toContain('io.appium.unlock');

    // Someone without the lease may not install on its devices (the app is shared, so they can see it).
    const refused = await api.call('installApp', { token: other.token, path: { appId: app.id }, body: { deviceIds: [old.id] } });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('lease_required');

    const removed = await api.call('uninstallDevicePackage', {
      token: member.token,
      path: { deviceId: old.id, packageName: 'io.appium.unlock' },
    });
    expect(removed.status).toBe(204);
    const again = await api.call('uninstallDevicePackage', {
      token: member.token,
      path: { deviceId: old.id, packageName: 'io.appium.unlock' },
    });
    expect(again.body.code).toBe('package_not_installed');

    const events = await api.call('listEvents', { token: api.admin.token, query: { type: ['app.*'], limit: 200 } });
    const types = events.body.data.map((event: Json) => event.type);
    expect(types).toEqual(expect.arrayContaining(['app.uploaded', 'app.deleted', 'app.install.started', 'app.install.succeeded', 'app.install.failed']));

    await api.call('releaseLease', { token: member.token, path: { leaseId: lease.body.id } });
  });
});
