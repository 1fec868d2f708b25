import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT_IN_PROFILES, startVirtualDevices, type VirtualDevice } from '../../server/src/virtual-device/index.js';
import { startServer, type RunningServer } from '../../server/src/index.js';
import { APKS } from '../../server/test/helpers/apk-fixtures.js';
import { CloudPhone, InstallJobHandle, type App } from '../src/index.js';

/*
 * cp.apps against the real server with real APKs: two in-process virtual devices (SDK 34) and a Pixel 3 (SDK 28)
 * reached as an ADB device host. The unlock APK targets SDK 5, which Android 14 refuses to install.
 */

const ADMIN_PASSWORD = 'admin-password-for-sdk-app-tests';
const PASSWORD = 'correct-horse-battery-staple';
const PIXEL3_SERIAL = 'PIXEL3SDK28';

let dataDir: string;
let server: RunningServer;
let pixel3: VirtualDevice;
let admin: CloudPhone;
let member: CloudPhone;
let other: CloudPhone;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(async () => {
  [pixel3] = (await startVirtualDevices(1, 0, { profile: { ...BUILT_IN_PROFILES['pixel-3']!, serial: PIXEL3_SERIAL } })) as [VirtualDevice];
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-apps-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    virtualDevices: 2,
    adbDevices: [`127.0.0.1:${pixel3.port}`],
    logStream: { write: () => undefined },
  });
  const pair = await new CloudPhone({ baseUrl: server.url }).auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  admin = new CloudPhone({ baseUrl: server.url, token: pair.accessToken });
  for (const username of ['app-user', 'other-user']) await admin.users.create({ username, password: PASSWORD, role: 'member' });
  member = new CloudPhone({ baseUrl: server.url, token: (await admin.auth.login({ username: 'app-user', password: PASSWORD })).accessToken });
  other = new CloudPhone({ baseUrl: server.url, token: (await admin.auth.login({ username: 'other-user', password: PASSWORD })).accessToken });
  const deadline = Date.now() + 30_000;
  while ((await admin.devices.list({ available: true, limit: 100 })).data.length < 3) {
    if (Date.now() > deadline) throw new Error('the devices did not come online');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 60_000);

afterAll(async () => {
  await server?.close();
  await pixel3?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('apps against the real server', () => {
  let settings: App;

  it('uploads an APK (streamed, with progress) and answers its metadata', async () => {
    const size = readFileSync(APKS.settings).length;
    const progress: [number, number | null][] = [];
    let matched = false;
    settings = await member.apps.upload(APKS.settings, {
      onProgress: (sent, total) => progress.push([sent, total]),
      onHashMatch: () => (matched = true),
    });
    expect(matched).toBe(false);
    expect(progress.at(-1)).toEqual([size, size]);
    expect(settings).toMatchObject({
      sha256: sha256(APKS.settings),
      size,
      fileName: 'settings_apk-debug.apk',
      kind: 'app',
      shared: false,
      metadata: { packageName: 'io.appium.settings', versionCode: 192, minSdk: 26, targetSdk: 35, launchableActivity: 'io.appium.settings.Settings' },
    });
  });

  it('a second upload of the same bytes transfers nothing (hash-first); another user sends private bytes once', async () => {
    const progress: number[] = [];
    let matched = 0;
    const again = await member.apps.upload(APKS.settings, { onProgress: (sent) => progress.push(sent), onHashMatch: () => matched++ });
    expect(again.id).toBe(settings.id);
    expect(matched).toBe(1);
    expect(progress).toEqual([]);
    // The app is private: knowing its hash is not enough, so the other user's first upload sends the bytes.
    const theirs = await other.apps.upload(readFileSync(APKS.settings), { onProgress: (sent) => progress.push(sent), onHashMatch: () => matched++ });
    expect(theirs.id).not.toBe(settings.id);
    expect(theirs.sha256).toBe(settings.sha256);
    expect(matched).toBe(1);
    expect(progress.at(-1)).toBe(settings.size);
    // From then on it is theirs too: nothing more is sent.
    progress.length = 0;
    expect((await other.apps.upload(APKS.settings, { onProgress: (sent) => progress.push(sent), onHashMatch: () => matched++ })).id).toBe(theirs.id);
    expect(matched).toBe(2);
    expect(progress).toEqual([]);
  });

  it('lists install jobs (apps.listInstallJobs)', async () => {
    const before = await member.apps.listInstallJobs();
    await member.leases.use({ count: 1, ttlSeconds: 300, selector: { kind: 'virtual' } }, async (lease) => {
      const job = await member.apps.install(settings.id, { lease });
      await job.wait({ timeoutSeconds: 120 });
      const page = await member.apps.listInstallJobs({ appId: settings.id, status: 'succeeded' });
      expect(page.data.map((listed) => listed.id)).toContain(job.id);
      expect((await member.apps.listInstallJobs()).data).toHaveLength(before.data.length + 1);
      expect((await other.apps.listInstallJobs()).data.map((listed) => listed.id)).not.toContain(job.id);
    });
  });

  it('downloads the APK byte-exact', async () => {
    const local = join(dataDir, 'settings.apk');
    expect(await member.apps.downloadTo(settings.id, local)).toBe(settings.size);
    expect(sha256(local)).toBe(settings.sha256);
  });

  it('installs on every device of a lease; the SDK 34 devices refuse the old unlock APK', async () => {
    const unlock = await member.apps.upload(APKS.unlock);
    expect(unlock.metadata.packageName).toBe('io.appium.unlock');
    await member.leases.use({ count: 3, ttlSeconds: 300 }, async (lease) => {
      const job = await member.apps.install(unlock.id, { lease });
      expect(job).toBeInstanceOf(InstallJobHandle);
      expect(job.devices).toHaveLength(3);
      let updates = 0;
      await job.wait({ timeoutSeconds: 120, pollSeconds: 1, onUpdate: () => updates++ });
      expect(updates).toBeGreaterThan(0);
      expect(job.status).toBe('failed');
      // The Pixel 3 is an ADB device host's device: its serial is its address.
      const pixel = lease.devices.find((device) => device.sdk === 28)!;
      expect(pixel).toMatchObject({ model: 'Pixel 3', serial: `127.0.0.1:${pixel3.port}` });
      expect(job.devices.find((device) => device.deviceId === pixel.id)).toMatchObject({ status: 'installed', reason: null });
      const failed = job.devices.filter((device) => device.deviceId !== pixel.id);
      expect(failed).toHaveLength(2);
      for (const device of failed) {
        expect(device.status).toBe('failed');
        expect(device.reason).toMatch(/INSTALL_FAILED_DEPRECATED_SDK_VERSION/);
      }
      expect(await pixel.packages({ thirdParty: true })).toContainEqual({ packageName: 'io.appium.unlock', versionCode: 2, versionName: '2.0.0' });

      // The settings app fits every device: installing it on the lease's devices by id succeeds everywhere.
      const ok = await member.apps.install(settings, { devices: lease.devices, grantPermissions: true });
      await ok.wait({ timeoutSeconds: 120 });
      expect(ok.status).toBe('succeeded');
      expect(ok.devices.map((device) => device.status)).toEqual(['installed', 'installed', 'installed']);
    });
  });
});
