import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudPhone, type App, type InstallJob, type Lease } from '@cloudphone/sdk';
import { startServer, type RunningServer } from '@cloudphone/server';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BUILT_IN_PROFILES, startVirtualDevices, type VirtualDevice } from '../../server/src/virtual-device/index.js';
import { APKS } from '../../server/test/helpers/apk-fixtures.js';
import { assertBuilt, runCli, type Result, type RunOptions } from './fixtures/cli.js';

/*
 * The built CLI's app commands against the real server with real APKs: two in-process virtual devices (SDK 34) and
 * a Pixel 3 (SDK 28) reached as an ADB device host. Android 14 refuses the unlock APK (it targets SDK 5).
 */

const ADMIN_PASSWORD = 'admin-password-for-cli-app-tests';
const PIXEL3_SERIAL = 'PIXEL3SDK28';

let server: RunningServer;
let pixel3: VirtualDevice;
let dataDir: string;
let home: string;
let work: string;
let token: string;

function cli(args: string[], options: RunOptions = {}): Promise<Result> {
  return runCli(home, args, { ...options, env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token, ...options.env } });
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

beforeAll(async () => {
  assertBuilt();
  [pixel3] = (await startVirtualDevices(1, 0, { profile: { ...BUILT_IN_PROFILES['pixel-3']!, serial: PIXEL3_SERIAL } })) as [VirtualDevice];
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-cli-apps-data-'));
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-apps-'));
  work = mkdtempSync(join(tmpdir(), 'cloudphone-cli-apps-files-'));
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
  const admin = new CloudPhone({ baseUrl: server.url, token: pair.accessToken });
  await admin.users.create({ username: 'app-user', password: 'correct-horse-battery', role: 'member' });
  token = (await admin.auth.login({ username: 'app-user', password: 'correct-horse-battery' })).accessToken;
  const deadline = Date.now() + 30_000;
  while ((await admin.devices.list({ available: true, limit: 100 })).data.length < 3) {
    if (Date.now() > deadline) throw new Error('the devices did not come online');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 60_000);

afterAll(async () => {
  await server?.close();
  await pixel3?.close();
  for (const dir of [dataDir, home, work]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('apps commands against the real server', () => {
  let settings: App;
  let unlock: App;

  test('apps upload prints the APK metadata; --json the App', async () => {
    const json = await cli(['apps', 'upload', APKS.settings, '--json']);
    expect(json.code, json.stderr).toBe(0);
    settings = JSON.parse(json.stdout) as App;
    expect(settings).toMatchObject({
      sha256: sha256(APKS.settings),
      kind: 'app',
      metadata: { packageName: 'io.appium.settings', versionCode: 192, minSdk: 26, launchableActivity: 'io.appium.settings.Settings' },
    });

    const plain = await cli(['apps', 'upload', APKS.unlock]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^id\s+app_[0-9A-Z]{26}$/m);
    expect(plain.stdout).toMatch(/^metadata\.packageName\s+io\.appium\.unlock$/m);
    expect(plain.stderr).toMatch(/^Uploaded .* as app_/m);
    unlock = { id: /^id\s+(\S+)$/m.exec(plain.stdout)![1]! } as App;
  });

  test('a second upload of the same bytes sends nothing and says so', async () => {
    const again = await cli(['apps', 'upload', APKS.settings]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('already had these bytes');
    expect(again.stdout).toContain(settings.id);
  });

  test('apps download writes the APK byte-exact, or to standard output', async () => {
    const local = join(work, 'settings.apk');
    const result = await cli(['apps', 'download', settings.id, '-o', local]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(local);
    expect(sha256(local)).toBe(settings.sha256);
    const json = await cli(['apps', 'download', settings.id, '-o', join(work, 'again.apk'), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ appId: settings.id, size: settings.size });
  });

  test('apps download replaces an existing file only with --force (otherwise exit 2, the file untouched)', async () => {
    const local = join(work, 'existing.apk');
    writeFileSync(local, 'mine');
    const refused = await cli(['apps', 'download', settings.id, '-o', local]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`Error: ${local} already exists: pass --force to replace it, or -o to choose another file\n`);
    expect(readFileSync(local, 'utf8')).toBe('mine');

    // The same for the name the server gives the file, in the working directory.
    const dir = mkdtempSync(join(work, 'cwd-'));
    const first = await cli(['apps', 'download', settings.id], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    const name = first.stdout.trim();
    writeFileSync(join(dir, name), 'mine');
    const again = await cli(['apps', 'download', settings.id], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('--force');
    expect(readFileSync(join(dir, name), 'utf8')).toBe('mine');
    expect(readdirSync(dir)).toEqual([name]);

    const forced = await cli(['apps', 'download', settings.id, '-o', local, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(sha256(local)).toBe(settings.sha256);
  });

  test('apps install on a lease with a device that refuses the APK: per-device lines, reasons, exit 1', async () => {
    const created = await cli(['leases', 'create', '--count', '3', '--ttl', '600', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const lease = JSON.parse(created.stdout) as Lease;
    try {
      const result = await cli(['apps', 'install', unlock.id, '--lease', lease.id]);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`^127\\.0\\.0\\.1:${pixel3.port} \\(dev_[0-9A-Z]{26}\\): installed$`, 'm'));
      expect(result.stderr.match(/^\S+ \(dev_[0-9A-Z]{26}\): failed: .*INSTALL_FAILED_DEPRECATED_SDK_VERSION/gm)).toHaveLength(2);
      expect(result.stderr).toMatch(/failed on 2 of 3 device\(s\) \(installed on 1\)/);

      const json = await cli(['apps', 'install', unlock.id, '--lease', lease.id, '--json']);
      expect(json.code, json.stderr).toBe(1);
      const job = JSON.parse(json.stdout) as InstallJob;
      expect(job.status).toBe('failed');
      expect(job.devices.map((device) => [device.serial === `127.0.0.1:${pixel3.port}`, device.status]).sort()).toEqual([
        [false, 'failed'],
        [false, 'failed'],
        [true, 'installed'],
      ]);

      // The settings app fits all three: exit 0.
      const devices = lease.devices.flatMap((device) => ['--device', device.id]);
      const ok = await cli(['apps', 'install', settings.id, ...devices, '--grant-permissions']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stderr).toContain('installed on 3 device(s)');
    } finally {
      await cli(['leases', 'release', lease.id]);
    }
  });

  test('apps install takes an APK file: uploads it (or finds it by hash), then installs', async () => {
    const created = await cli(['leases', 'create', '--count', '1', '--kind', 'virtual', '--ttl', '600', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const lease = JSON.parse(created.stdout) as Lease;
    try {
      const fresh = await cli(['apps', 'install', APKS.uiautomator2Test, '--lease', lease.id]);
      expect(fresh.code, fresh.stderr).toBe(0);
      expect(fresh.stderr).toMatch(/^Uploaded .*androidTest\.apk \(192\.6 KiB\): app_[0-9A-Z]{26} \(io\.appium\.uiautomator2\.server\.test\)\.$/m);
      expect(fresh.stderr).toContain('installed on 1 device(s)');

      const known = await cli(['apps', 'install', APKS.settings, '--lease', lease.id]);
      expect(known.code, known.stderr).toBe(0);
      expect(known.stderr).toContain(`The server already had ${APKS.settings}: ${settings.id} (io.appium.settings 8.0.10).`);
      const json = await cli(['apps', 'install', APKS.settings, '--lease', lease.id, '--json']);
      expect(json.code, json.stderr).toBe(0);
      expect((JSON.parse(json.stdout) as InstallJob).appId).toBe(settings.id);

      const missing = await cli(['apps', 'install', join(work, 'nope.apk'), '--lease', lease.id]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('neither an app id (app_…) nor an APK file');
    } finally {
      await cli(['leases', 'release', lease.id]);
    }
  });

  test('apps install without devices is a usage error', async () => {
    const result = await cli(['apps', 'install', settings.id]);
    expect(result.code).toBe(2);
  });
});
