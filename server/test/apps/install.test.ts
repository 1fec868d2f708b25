import { createReadStream, readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { Adb } from '@yume-chan/adb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { builtInProfile, instantiate, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import {
  InstallService,
  deviceReason,
  type InstallInventory,
  type InstallLeases,
  type InstallSource,
  type InstallTargetDevice,
  type InstallableApp,
} from '../../src/apps/install.js';
import type { ByteRange } from '../../src/apps/blob-store.js';
import { CHUNK_BYTES } from '../../src/apps/shared-blob.js';
import type { DB } from '../../src/db/schema.js';
import { closeAdb } from '../../src/devices/adb/guard.js';
import { ApiError } from '../../src/http/errors.js';
import type { Principal } from '../../src/http/handler.js';
import type { Kysely } from 'kysely';
import { APKS } from '../helpers/apk-fixtures.js';
import { openTestDatabase } from '../helpers/database.js';
import { connectToVirtual, eventually } from '../devices/helpers.js';
import { insertUser } from '../helpers/users.js';

// ---------------------------------------------------------------------------------------------------------------
// Real virtual devices, connected directly; fakes only at the inventory / leases / app-store seams.

interface TestDevice {
  id: string;
  profile: string;
  virtual: VirtualDevice;
  adb: Adb;
  connected: boolean;
}

const PROFILES = ['pixel-3', 'pixel-8', 'galaxy-s21', 'pixel-6a'] as const; // SDK 28, 34, 31, 33

async function startDevice(id: string, profile: string, index: number): Promise<TestDevice> {
  const virtual = await startVirtualDevice({ profile: instantiate(builtInProfile(profile), index), onError: () => undefined });
  const adb = await connectToVirtual(virtual);
  return { id, profile, virtual, adb, connected: true };
}

class FakeInventory implements InstallInventory {
  readonly devices = new Map<string, TestDevice>();

  async get(id: string): Promise<InstallTargetDevice> {
    const device = this.devices.get(id);
    if (device === undefined) throw new ApiError('device_not_found', `No device ${id}.`);
    const profile = device.virtual.state.packages.profile;
    return {
      id,
      serial: device.virtual.serial,
      connected: device.connected,
      properties: { sdk: profile.sdk, abis: [...profile.abis] },
    };
  }

  adbFor(id: string): Adb {
    const device = this.devices.get(id);
    if (device === undefined) throw new ApiError('device_not_found', `No device ${id}.`);
    if (!device.connected) throw new ApiError('device_offline', `Device ${id} is not connected.`);
    return device.adb;
  }
}

class FakeLeases implements InstallLeases {
  /** deviceId → userId of the holder. */
  readonly holders = new Map<string, string>();
  readonly leases = new Map<string, { id: string; userId: string; status: string; devices: { id: string }[] }>();

  async assertCanOperate(principal: Principal, deviceId: string): Promise<void> {
    if (principal.role === 'admin' || this.holders.get(deviceId) === principal.userId) return;
    throw new ApiError('lease_required', `Operating device ${deviceId} needs a granted lease containing it.`);
  }

  async baselineTaken(): Promise<void> {}

  async get(principal: Principal, leaseId: string) {
    const lease = this.leases.get(leaseId);
    if (lease === undefined || (lease.userId !== principal.userId && principal.role !== 'admin')) {
      throw new ApiError('lease_not_found', `No lease ${leaseId}.`);
    }
    return lease;
  }

  grant(userId: string, leaseId: string, deviceIds: string[]): void {
    for (const id of deviceIds) this.holders.set(id, userId);
    this.leases.set(leaseId, { id: leaseId, userId, status: 'granted', devices: deviceIds.map((id) => ({ id })) });
  }
}

/** The bytes `start`..`end` of `path`, then nothing: the stream never ends by itself. */
function endlessStream(path: string, start: number, end: number): Readable {
  const data = readFileSync(path).subarray(start, end + 1);
  let offset = 0;
  return new Readable({
    read() {
      if (offset < data.length) this.push(data.subarray(offset, (offset += 64 * 1024)));
    },
  });
}

/** The store, reading the real fixture APKs; counts the range reads and the bytes they cover. */
class FakeSource implements InstallSource {
  readonly apps = new Map<string, { path: string; metadata: InstallableApp['metadata'] }>();
  /** Range streams open now, opened so far, and bytes asked for so far. */
  open = 0;
  opened = 0;
  bytesRead = 0;
  onOpen: ((range: ByteRange) => void) | undefined;
  /** Streams that deliver their range but never signal their end, as a file still being read would not yet. */
  endless = false;

  add(appId: string, path: string, metadata: InstallableApp['metadata']): void {
    this.apps.set(appId, { path, metadata });
  }

  async getForInstall(_principal: Principal, appId: string): Promise<InstallableApp> {
    const app = this.apps.get(appId);
    if (app === undefined) throw new ApiError('not_found', `No app ${appId}.`);
    return { app: { id: appId }, sha256: appId, size: statSync(app.path).size, metadata: app.metadata };
  }

  openBlob(sha256: string, { range, chunkBytes }: { range: ByteRange; chunkBytes: number }): Readable {
    const { path } = this.apps.get(sha256)!;
    const stream = this.endless
      ? endlessStream(path, range.start, range.end)
      : createReadStream(path, { start: range.start, end: range.end, highWaterMark: chunkBytes });
    this.open++;
    this.opened++;
    this.bytesRead += range.end - range.start + 1;
    stream.once('close', () => this.open--);
    this.onOpen?.(range);
    return stream;
  }
}

// ---------------------------------------------------------------------------------------------------------------

const silent = { warn: () => undefined, error: () => undefined };
const UNLOCK = { packageName: 'io.appium.unlock', minSdk: 5, abis: [] };
const SETTINGS = { packageName: 'io.appium.settings', minSdk: 26, abis: [] };

let devices: TestDevice[] = [];

beforeAll(async () => {
  devices = await Promise.all(PROFILES.map((profile, index) => startDevice(`dev_${index}`, profile, index)));
});

afterAll(async () => {
  await Promise.all(devices.map(async (device) => {
    await closeAdb(device.adb);
    await device.virtual.close();
  }));
});

interface Fixture {
  db: Kysely<DB>;
  service: InstallService;
  inventory: FakeInventory;
  leases: FakeLeases;
  source: FakeSource;
  alice: Principal;
  bob: Principal;
  admin: Principal;
  makeService(concurrency: number): InstallService;
}

let fixture: Fixture;
const cleanups: (() => Promise<void>)[] = [];

function user(db: Kysely<DB>, username: string, role: Principal['role']): Promise<Principal> {
  return insertUser(db, username, role, new Date().toISOString());
}

beforeEach(async () => {
  const database = await openTestDatabase();
  const { db } = database;
  const inventory = new FakeInventory();
  for (const device of devices) inventory.devices.set(device.id, device);
  const leases = new FakeLeases();
  const source = new FakeSource();
  source.add('app_unlock', APKS.unlock, UNLOCK);
  source.add('app_settings', APKS.settings, SETTINGS);
  const services: InstallService[] = [];
  // Every reading of the clock is a millisecond later than the one before: device start and finish times order
  // exactly, so overlaps can be counted from them.
  let tick = Date.now();
  const makeService = (concurrency: number) => {
    const clock = () => new Date(tick++);
    const created = new InstallService({ db, clock, log: silent, apps: source, inventory, leases, concurrency });
    services.push(created);
    return created;
  };
  const service = makeService(8);
  fixture = {
    db,
    service,
    inventory,
    leases,
    source,
    alice: await user(db, 'alice', 'member'),
    bob: await user(db, 'bob', 'member'),
    admin: await user(db, 'root', 'admin'),
    makeService,
  };
  cleanups.push(async () => {
    for (const created of services) await created.close();
    await database.close();
  });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  // Leave the devices clean for the next test.
  for (const device of devices) {
    device.connected = true;
    for (const name of ['io.appium.unlock', 'io.appium.settings', 'io.appium.uiautomator2.server']) {
      device.virtual.state.packages.uninstall(name);
    }
  }
});

async function events(db: Kysely<DB>) {
  const rows = await db.selectFrom('events').selectAll().where('type', 'like', 'app.install.%').orderBy('seq').execute();
  return rows.map((row) => ({ type: row.type, subject: row.subject_id, actor: row.actor_id, data: JSON.parse(row.data) as Record<string, unknown> }));
}

async function expectProblem(promise: Promise<unknown>, code: string): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  expect((error as ApiError).code).toBe(code);
  return error as ApiError;
}

const allIds = () => devices.map((device) => device.id);

describe('InstallService.install', () => {
  it('fans out to four devices; the SDK 34 one refuses an app targeting SDK 5, the others install it', async () => {
    const { service, leases, alice, db } = fixture;
    leases.grant(alice.userId, 'lse_1', allIds());
    const job = await service.install(alice, 'app_unlock', { leaseId: 'lse_1' }, 'req_1');
    expect(job).toMatchObject({
      appId: 'app_unlock',
      packageName: 'io.appium.unlock',
      userId: alice.userId,
      status: 'pending',
      options: { replace: true, downgrade: false, grantPermissions: false },
      finishedAt: null,
    });
    expect(job.id).toMatch(/^ijb_[0-9A-Z]{26}$/);
    expect(job.devices.map((d) => [d.deviceId, d.status])).toEqual(allIds().map((id) => [id, 'pending']));

    const done = await service.get(alice, job.id, { waitSeconds: 30 });
    expect(done.status).toBe('failed');
    expect(done.finishedAt).not.toBeNull();
    const byId = Object.fromEntries(done.devices.map((d) => [d.deviceId, d]));
    for (const id of ['dev_0', 'dev_2', 'dev_3']) {
      expect(byId[id]).toMatchObject({ status: 'installed', reason: null });
      expect(byId[id]!.startedAt).not.toBeNull();
      expect(byId[id]!.finishedAt).not.toBeNull();
    }
    expect(byId.dev_1!.status).toBe('failed');
    expect(byId.dev_1!.reason).toBe(
      'INSTALL_FAILED_DEPRECATED_SDK_VERSION: App package must target at least SDK version 23, but found 5',
    );
    expect(byId.dev_0!.serial).toBe(devices[0]!.virtual.serial);
    expect(devices[0]!.virtual.state.packages.get('io.appium.unlock')).toBeDefined();
    expect(devices[1]!.virtual.state.packages.get('io.appium.unlock')).toBeUndefined();

    const log = await events(db);
    expect(log[0]).toEqual({
      type: 'app.install.started',
      subject: job.id,
      actor: alice.userId,
      data: { jobId: job.id, appId: 'app_unlock', deviceIds: allIds() },
    });
    expect(log.filter((e) => e.type === 'app.install.succeeded').map((e) => e.data.deviceId).sort()).toEqual([
      'dev_0',
      'dev_2',
      'dev_3',
    ]);
    const failed = log.filter((e) => e.type === 'app.install.failed');
    expect(failed).toEqual([
      {
        type: 'app.install.failed',
        subject: job.id,
        actor: alice.userId,
        data: { jobId: job.id, appId: 'app_unlock', deviceId: 'dev_1', reason: byId.dev_1!.reason },
      },
    ]);
    expect(service.runningJobs()).toEqual([]);
  });

  it('succeeds when every device installs, with the options passed through', async () => {
    const { service, admin } = fixture;
    const job = await service.install(admin, 'app_settings', { deviceIds: ['dev_0', 'dev_1'], grantPermissions: true }, null);
    const done = await service.get(admin, job.id, { waitSeconds: 30 });
    expect(done.status).toBe('succeeded');
    expect(done.options).toEqual({ replace: true, downgrade: false, grantPermissions: true });
    expect(done.devices.every((d) => d.status === 'installed')).toBe(true);
    // Installing again replaces (the default).
    const again = await service.get(admin, (await service.install(admin, 'app_settings', { deviceIds: ['dev_0'] }, null)).id, {
      waitSeconds: 30,
    });
    expect(again.status).toBe('succeeded');
  });

  it('checks everything before any transfer and writes nothing when a check fails', async () => {
    const { service, leases, alice, bob, db, source, inventory } = fixture;
    leases.grant(alice.userId, 'lse_a', ['dev_0', 'dev_1']);
    leases.grant(bob.userId, 'lse_b', ['dev_2']);

    await expectProblem(service.install(alice, 'app_unlock', {}, null), 'validation_failed');
    await expectProblem(service.install(alice, 'app_unlock', { deviceIds: ['dev_0'], leaseId: 'lse_a' }, null), 'validation_failed');
    await expectProblem(service.install(alice, 'app_unlock', { deviceIds: [] }, null), 'validation_failed');
    // Another user's lease is not found; a device held by someone else needs a lease.
    await expectProblem(service.install(alice, 'app_unlock', { leaseId: 'lse_b' }, null), 'lease_not_found');
    await expectProblem(service.install(alice, 'app_unlock', { deviceIds: ['dev_0', 'dev_2'] }, null), 'lease_required');
    await expectProblem(service.install(alice, 'app_unlock', { deviceIds: ['dev_0', 'dev_9'] }, null), 'device_not_found');
    // Offline.
    inventory.devices.get('dev_1')!.connected = false;
    const offline = await expectProblem(service.install(alice, 'app_unlock', { leaseId: 'lse_a' }, null), 'device_offline');
    expect(offline.errors).toEqual([{ field: 'dev_1', message: 'the device is not connected' }]);
    inventory.devices.get('dev_1')!.connected = true;
    // Incompatible: minSdk above the SDK 28 device; native code for no ABI of any device.
    source.add('app_new', APKS.unlock, { packageName: 'io.appium.unlock', minSdk: 30, abis: [] });
    const tooNew = await expectProblem(service.install(alice, 'app_new', { leaseId: 'lse_a' }, null), 'app_incompatible');
    expect(tooNew.status).toBe(422);
    expect(tooNew.errors).toEqual([{ field: 'dev_0', message: 'the app needs SDK 30 or later; the device has SDK 28' }]);
    source.add('app_x86', APKS.unlock, { packageName: 'io.appium.unlock', minSdk: null, abis: ['x86'] });
    const x86 = await expectProblem(service.install(alice, 'app_x86', { leaseId: 'lse_a' }, null), 'app_incompatible');
    expect(x86.errors?.map((e) => e.field)).toEqual(['dev_0', 'dev_1']);
    // Nothing written, nothing transferred.
    expect(await db.selectFrom('install_jobs').selectAll().execute()).toEqual([]);
    expect(await db.selectFrom('install_job_devices').selectAll().execute()).toEqual([]);
    expect(await events(db)).toEqual([]);
    expect(source.opened).toBe(0);
    // A matching ABI passes.
    source.add('app_arm', APKS.unlock, { packageName: 'io.appium.unlock', minSdk: null, abis: ['x86', 'arm64-v8a'] });
    const job = await service.install(alice, 'app_arm', { deviceIds: ['dev_0'] }, null);
    expect((await service.get(alice, job.id, { waitSeconds: 30 })).status).toBe('succeeded');
  });

  it('bounds the devices installing at once', async () => {
    const { leases, alice, db, makeService } = fixture;
    const service = makeService(2);
    leases.grant(alice.userId, 'lse_1', allIds());
    const job = await service.install(alice, 'app_settings', { leaseId: 'lse_1' }, null);
    const done = await service.get(alice, job.id, { waitSeconds: 60 });
    expect(done.status).toBe('succeeded');
    const rows = await db.selectFrom('install_job_devices').select(['started_at', 'finished_at']).execute();
    const at = (iso: string | null) => Date.parse(iso!);
    const overlapping = rows.map(({ started_at }) =>
      rows.filter((other) => at(other.started_at) <= at(started_at) && at(started_at) < at(other.finished_at)).length,
    );
    expect(rows).toHaveLength(4);
    expect(Math.max(...overlapping)).toBe(2);
  });

  it('reads the APK once for all the devices of a job, in chunks of 1 MiB', async () => {
    const { service, leases, alice, source } = fixture;
    source.add('app_ua2', APKS.uiautomator2, { packageName: 'io.appium.uiautomator2.server', minSdk: 21, abis: [] });
    const size = statSync(APKS.uiautomator2).size;
    const ranges: ByteRange[] = [];
    source.onOpen = (range) => ranges.push(range);
    leases.grant(alice.userId, 'lse_1', allIds());
    const job = await service.install(alice, 'app_ua2', { leaseId: 'lse_1' }, null);
    expect((await service.get(alice, job.id, { waitSeconds: 60 })).status).toBe('succeeded');
    // Four devices, one read of each chunk: the 18 MB file is read once, not four times.
    expect(ranges.length).toBe(Math.ceil(size / CHUNK_BYTES));
    expect(source.bytesRead).toBe(size);
    expect(ranges.every((range) => range.start % CHUNK_BYTES === 0)).toBe(true);
    expect(source.open).toBe(0);
  });

  it('ends the transfer with the APK\'s last byte, without waiting for the end of a read', async () => {
    // A device answers and closes as soon as it has every byte: waiting for a stream's end would lose that race.
    const { service, leases, alice, source } = fixture;
    source.endless = true;
    leases.grant(alice.userId, 'lse_1', ['dev_0']);
    const job = await service.install(alice, 'app_settings', { deviceIds: ['dev_0'] }, null);
    const done = await service.get(alice, job.id, { waitSeconds: 60 });
    expect(done.devices).toMatchObject([{ deviceId: 'dev_0', status: 'installed', reason: null }]);
    expect(source.open).toBe(0);
  });

  it('fails only the device that goes offline mid-install', async () => {
    const { leases, alice, source, db, makeService } = fixture;
    const service = makeService(1);
    // A device of its own, killed while the 18 MB APK streams to it.
    const victim = await startDevice('dev_victim', 'pixel-6a', 7);
    fixture.inventory.devices.set(victim.id, victim);
    cleanups.push(async () => {
      await closeAdb(victim.adb);
      await victim.virtual.close();
    });
    source.add('app_ua2', APKS.uiautomator2, { packageName: 'io.appium.uiautomator2.server', minSdk: 21, abis: [] });
    // The victim installs first (one device at a time): it dies when the third MiB is read for it.
    source.onOpen = (range) => {
      if (range.start === 2 * CHUNK_BYTES) void victim.virtual.close();
    };
    leases.grant(alice.userId, 'lse_1', ['dev_victim', 'dev_0', 'dev_3']);
    const job = await service.install(alice, 'app_ua2', { leaseId: 'lse_1' }, null);
    const done = await service.get(alice, job.id, { waitSeconds: 60 });
    expect(done.status).toBe('failed');
    expect(done.devices).toMatchObject([
      { deviceId: 'dev_victim', status: 'failed', reason: 'device went offline' },
      { deviceId: 'dev_0', status: 'installed', reason: null },
      { deviceId: 'dev_3', status: 'installed', reason: null },
    ]);
    expect(source.open).toBe(0);
    const failed = (await events(db)).filter((e) => e.type === 'app.install.failed');
    expect(failed.map((e) => e.data)).toEqual([
      { jobId: job.id, appId: 'app_ua2', deviceId: 'dev_victim', reason: 'device went offline' },
    ]);
  }, 60_000);
});

describe('InstallService.list', () => {
  it('lists the caller\'s jobs with their devices, filtered and paged; admins see everyone\'s', async () => {
    const { service, leases, alice, bob, admin } = fixture;
    leases.grant(alice.userId, 'lse_a', ['dev_0', 'dev_1']);
    leases.grant(bob.userId, 'lse_b', ['dev_2']);
    const wait = (id: string, who: Principal) => service.get(who, id, { waitSeconds: 60 });
    const first = await service.install(alice, 'app_settings', { leaseId: 'lse_a' }, null);
    await wait(first.id, alice);
    // The unlock APK targets SDK 5: Android 14 (dev_1) refuses it.
    const second = await service.install(alice, 'app_unlock', { deviceIds: ['dev_0', 'dev_1'] }, null);
    await wait(second.id, alice);
    const bobs = await service.install(bob, 'app_settings', { deviceIds: ['dev_2'] }, null);
    await wait(bobs.id, bob);

    const mine = await service.list(alice, { limit: 50 });
    expect(mine.data.map((job) => job.id)).toEqual([first.id, second.id]);
    expect(mine.nextCursor).toBeNull();
    expect(mine.data[1]).toMatchObject({
      appId: 'app_unlock',
      status: 'failed',
      devices: [
        { deviceId: 'dev_0', status: 'installed' },
        { deviceId: 'dev_1', status: 'failed', reason: expect.stringContaining('INSTALL_FAILED_DEPRECATED_SDK_VERSION') },
      ],
    });
    expect((await service.list(alice, { limit: 50, status: 'failed' })).data.map((job) => job.id)).toEqual([second.id]);
    expect((await service.list(alice, { limit: 50, appId: 'app_settings' })).data.map((job) => job.id)).toEqual([first.id]);
    // Another user's id as a filter changes nothing for a member: they only ever see their own.
    expect((await service.list(alice, { limit: 50, userId: bob.userId })).data.map((job) => job.id)).toEqual([first.id, second.id]);

    const page1 = await service.list(admin, { limit: 2 });
    expect(page1.data.map((job) => job.id)).toEqual([first.id, second.id]);
    const page2 = await service.list(admin, { limit: 2, cursor: page1.nextCursor! });
    expect(page2.data.map((job) => job.id)).toEqual([bobs.id]);
    expect(page2.data[0]?.devices).toHaveLength(1);
    expect(page2.nextCursor).toBeNull();
    expect((await service.list(admin, { limit: 50, userId: bob.userId })).data.map((job) => job.id)).toEqual([bobs.id]);
  });

  it('lists a job\'s devices in the order of the request, not in id order', async () => {
    const { service, leases, alice } = fixture;
    const order = ['dev_3', 'dev_0', 'dev_2'];
    leases.grant(alice.userId, 'lse_1', order);
    const job = await service.install(alice, 'app_settings', { deviceIds: order }, null);
    expect(job.devices.map((d) => d.deviceId)).toEqual(order);
    const done = await service.get(alice, job.id, { waitSeconds: 60 });
    expect(done.devices.map((d) => [d.deviceId, d.status])).toEqual(order.map((id) => [id, 'installed']));
    const [listed] = (await service.list(alice, { limit: 50 })).data;
    expect(listed?.devices.map((d) => d.deviceId)).toEqual(order);
  });
});

describe('InstallService.get', () => {
  it('long-polls until the job finishes, and hides others’ jobs except from admins', async () => {
    const { service, leases, alice, bob, admin } = fixture;
    leases.grant(alice.userId, 'lse_1', ['dev_0', 'dev_2']);
    const job = await service.install(alice, 'app_settings', { leaseId: 'lse_1' }, null);
    const started = Date.now();
    const done = await service.get(alice, job.id, { waitSeconds: 60 });
    expect(done.status).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(30_000);
    // A finished job returns at once, not after the 60 s wait.
    const again = Date.now();
    expect((await service.get(alice, job.id, { waitSeconds: 60 })).status).toBe('succeeded');
    expect(Date.now() - again).toBeLessThan(10_000);
    await expectProblem(service.get(bob, job.id), 'install_job_not_found');
    await expectProblem(service.get(alice, 'ijb_01JDX9B3C4D5E6F7G8H9J0K1M2'), 'install_job_not_found');
    expect((await service.get(admin, job.id)).id).toBe(job.id);
  });

  it('does not start on a device whose lease ended since the job started; abortOn cuts a running one short', async () => {
    const { leases, alice, source, db, makeService } = fixture;
    const service = makeService(1);
    leases.grant(alice.userId, 'lse_1', ['dev_0', 'dev_2']);
    // The transfer never completes by itself: only cutting it short ends dev_0's install.
    source.endless = true;
    let aborted: Promise<string | undefined> | undefined;
    // While dev_0's install runs, the lease ends (as far as the service can tell) and the reset cuts it short.
    source.onOpen = () => {
      if (aborted !== undefined) return;
      leases.holders.clear();
      aborted = service.abortOn(['dev_0', 'dev_2']).then(async () => {
        const row = await db
          .selectFrom('install_job_devices')
          .select('status')
          .where('device_id', '=', 'dev_0')
          .executeTakeFirst();
        return row?.status;
      });
    };
    const job = await service.install(alice, 'app_settings', { leaseId: 'lse_1' }, null);
    const done = await service.get(alice, job.id, { waitSeconds: 10 });
    // abortOn resolved only once the cut-short install had been recorded.
    expect(await aborted).toBe('failed');
    expect(done.devices).toMatchObject([
      { deviceId: 'dev_0', status: 'failed', reason: 'the lease on the device ended during the install' },
      { deviceId: 'dev_2', status: 'failed', reason: 'the lease on the device ended before the install started' },
    ]);
    expect(devices[0]!.virtual.state.packages.get('io.appium.settings')).toBeUndefined();
    expect(devices[2]!.virtual.state.packages.get('io.appium.settings')).toBeUndefined();
    // The device is usable at once: a new install on it runs to the end.
    source.endless = false;
    leases.grant(alice.userId, 'lse_2', ['dev_0']);
    const again = await service.install(alice, 'app_settings', { leaseId: 'lse_2' }, null);
    expect((await service.get(alice, again.id, { waitSeconds: 30 })).devices).toMatchObject([{ status: 'installed' }]);
  });

  it('close() lets running installs finish and fails the devices not started yet', async () => {
    const { leases, alice, source, makeService } = fixture;
    const service = makeService(1);
    leases.grant(alice.userId, 'lse_1', ['dev_0', 'dev_2']);
    let closed: Promise<void> | undefined;
    source.onOpen = () => {
      closed ??= service.close();
    };
    const job = await service.install(alice, 'app_settings', { leaseId: 'lse_1' }, null);
    await eventually(() => closed !== undefined, 10_000, 'the first install starting');
    await closed;
    expect(service.runningJobs()).toEqual([]);
    const done = await service.get(alice, job.id);
    expect(done.status).toBe('failed');
    expect(done.devices).toMatchObject([
      { deviceId: 'dev_0', status: 'installed', reason: null },
      { deviceId: 'dev_2', status: 'failed', reason: 'the server shut down before the install started' },
    ]);
    await expectProblem(service.install(alice, 'app_settings', { leaseId: 'lse_1' }, null), 'service_unavailable');
  });
});

describe('InstallService.recoverOrphans', () => {
  it('fails the unfinished jobs of nodes that stopped (and of none recorded), leaving live nodes\' jobs running', async () => {
    const { service, db, alice } = fixture;
    const at = new Date().toISOString();
    for (const [id, node] of [['ijb_a', 'node-a'], ['ijb_b', 'node-b'], ['ijb_none', null]] as const) {
      await db
        .insertInto('install_jobs')
        .values({
          id,
          app_id: 'app_unlock',
          user_id: alice.userId,
          status: 'running',
          options: '{}',
          created_at: at,
          finished_at: null,
          node,
        })
        .execute();
      await db
        .insertInto('install_job_devices')
        .values({ job_id: id, device_id: 'dev_0', serial: 'serial', status: 'installing', reason: null, position: 0 })
        .execute();
    }
    await service.recoverOrphans(new Set(['node-b']));
    const jobs = await db.selectFrom('install_jobs').select(['id', 'status']).orderBy('id').execute();
    expect(jobs).toEqual([
      { id: 'ijb_a', status: 'failed' },
      { id: 'ijb_b', status: 'running' },
      { id: 'ijb_none', status: 'failed' },
    ]);
    const reasons = await db.selectFrom('install_job_devices').select(['job_id', 'reason']).orderBy('job_id').execute();
    expect(reasons[0]).toEqual({ job_id: 'ijb_a', reason: 'the server node running the install stopped' });
  });
});

describe('InstallService.uninstall', () => {
  it('uninstalls an installed package; a missing one is package_not_installed', async () => {
    const { service, leases, alice, bob } = fixture;
    leases.grant(alice.userId, 'lse_1', ['dev_0']);
    const job = await service.install(alice, 'app_unlock', { leaseId: 'lse_1' }, null);
    expect((await service.get(alice, job.id, { waitSeconds: 30 })).status).toBe('succeeded');
    expect(devices[0]!.virtual.state.packages.get('io.appium.unlock')).toBeDefined();

    await expectProblem(service.uninstall(bob, 'dev_0', 'io.appium.unlock'), 'lease_required');
    await service.uninstall(alice, 'dev_0', 'io.appium.unlock');
    expect(devices[0]!.virtual.state.packages.get('io.appium.unlock')).toBeUndefined();
    const missing = await expectProblem(service.uninstall(alice, 'dev_0', 'io.appium.unlock'), 'package_not_installed');
    expect(missing.status).toBe(404);
    for (const bad of ['unlock', '1com.example', 'com..example', 'com.example;rm -rf /', 'com.ex ample']) {
      await expectProblem(service.uninstall(alice, 'dev_0', bad), 'validation_failed');
    }
    await expectProblem(service.uninstall(alice, 'dev_9', 'io.appium.unlock'), 'device_not_found');
  });
});

describe('deviceReason', () => {
  it('keeps what the device said without the noise', () => {
    expect(deviceReason('Performing Streamed Install\nFailure [INSTALL_FAILED_OLDER_SDK: Requires newer sdk version #30]\n')).toBe(
      'INSTALL_FAILED_OLDER_SDK: Requires newer sdk version #30',
    );
    expect(deviceReason('Error: Unknown option: -R\n')).toBe('Error: Unknown option: -R');
    expect(deviceReason('')).toBe('the install failed with no message');
  });
});
