import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/http/errors.js';
import type { Principal } from '../../src/http/handler.js';
import { expectSchema } from '../helpers/contract.js';
import { leaseFixture, type LeaseFixture } from './fixture.js';

async function rejection(action: () => Promise<unknown>): Promise<ApiError> {
  const error = await action().then(
    () => new Error('expected an ApiError'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

/** The fixture's readable ids (usr_alice, dev_1) are not ULIDs: swap them for ones that are, then check the contract. */
function expectLease(lease: { userId: string; devices: { id: string }[] }): void {
  const ulidOf = (id: string) => id.slice(4).toUpperCase().replace(/[^0-9A-Z]/g, '0').padEnd(26, '0').slice(0, 26);
  expectSchema('Lease', {
    ...lease,
    userId: `usr_${ulidOf(lease.userId)}`,
    devices: lease.devices.map((d) => ({ ...d, id: `dev_${ulidOf(d.id)}` })),
  });
}

async function devices(f: LeaseFixture, n: number, prefix = 'dev_'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await f.device(`${prefix}${String(i).padStart(3, '0')}`));
  return ids;
}

async function leaseRow(f: LeaseFixture, id: string) {
  return f.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

describe('creating leases', () => {
  it('grants at once when devices are free (201), with lease.granted and a baseline snapshot', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await devices(f, 2);
    const { status, lease } = await f.leases.create(alice, { count: 1, note: 'ci run' }, 'req_1');
    expect(status).toBe(201);
    expect(lease).toMatchObject({
      status: 'granted',
      userId: alice.userId,
      username: 'alice',
      selector: {},
      count: 1,
      ttlSeconds: 900,
      note: 'ci run',
      createdAt: '2026-11-20T09:00:00.000Z',
      waitUntil: null,
      queuePosition: null,
      grantedAt: '2026-11-20T09:00:00.000Z',
      expiresAt: '2026-11-20T09:15:00.000Z',
      endedAt: null,
      endReason: null,
      devices: [{ id: 'dev_000', serial: 'serial-dev_000', model: 'Pixel 8', sdk: 34, kind: 'physical', reset: null }],
    });
    expect(lease.id).toMatch(/^lse_[0-9A-Z]{26}$/);
    expectLease(lease);
    const granted = await f.events('lease.granted');
    expect(granted).toEqual([
      {
        type: 'lease.granted',
        subjectId: lease.id,
        actorType: 'user',
        data: {
          lease: { id: lease.id, userId: alice.userId, status: 'granted', count: 1, expiresAt: lease.expiresAt },
          deviceIds: ['dev_000'],
          queued: false,
        },
      },
    ]);
    await f.leases.settled();
    expect(f.ops.calls).toEqual(['snapshot dev_000']);
    const row = await f.db.selectFrom('lease_devices').selectAll().executeTakeFirstOrThrow();
    expect(row.baseline_packages).toBe('{"packages":["com.example.base"],"storage":null}');
  });

  it('409 no_devices_available without waitSeconds, keeping no lease', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await devices(f, 2);
    await f.device('dev_off', { state: 'offline' });
    await f.leases.create(alice, { count: 2 }, null);
    const error = await rejection(() => f.leases.create(bob, { count: 1 }, null));
    expect(error.code).toBe('no_devices_available');
    expect(error.status).toBe(409);
    expect(error.message).toContain('3 match the selector, 0 are available');
    expect(await f.db.selectFrom('leases').select('id').execute()).toHaveLength(1);
    expect(await f.events('lease.queued')).toEqual([]);
  });

  it('422 selector_unsatisfiable when fewer devices match at all, whatever their state', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    await f.device('dev_a');
    await f.device('dev_b', { state: 'offline', maintenance: 1 });
    const error = await rejection(() => f.leases.create(alice, { count: 3 }, null));
    expect(error.code).toBe('selector_unsatisfiable');
    expect(error.status).toBe(422);
    expect(error.message).toContain('only 2 known devices match');
    // Two match (one offline): queued, not unsatisfiable.
    const { status } = await f.leases.create(alice, { count: 2, waitSeconds: 10 }, null);
    expect(status).toBe(202);
    expect(await f.db.selectFrom('leases').select('id').execute()).toHaveLength(1);
  });

  it('matches selectors on ids, model, kind, sdk range, abi, labels and host (ANDed)', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const other = await f.host('hst_other');
    await f.device('dev_1', { model: 'Pixel 8', sdk: 34, kind: 'physical', labels: '{"pool":"ci","gpu":"yes"}' });
    await f.device('dev_2', { model: 'Pixel 6', sdk: 31, kind: 'emulator', abis: '["x86_64","arm64-v8a"]' });
    await f.device('dev_3', { model: 'Galaxy S23', sdk: 33, kind: 'virtual', labels: '{"pool":"ci"}', hostId: other });
    await f.device('dev_4', { model: null, sdk: null, kind: 'network', abis: '[]' });
    const cases: [object, string[]][] = [
      [{ deviceIds: ['dev_2', 'dev_4'] }, ['dev_2', 'dev_4']],
      [{ model: 'pixel 8' }, ['dev_1']],
      [{ kind: 'emulator' }, ['dev_2']],
      [{ sdkMin: 33 }, ['dev_1', 'dev_3']],
      [{ sdkMin: 31, sdkMax: 33 }, ['dev_2', 'dev_3']],
      [{ abi: 'x86_64' }, ['dev_2']],
      [{ abi: 'arm64-v8a' }, ['dev_1', 'dev_2', 'dev_3']],
      [{ labels: { pool: 'ci' } }, ['dev_1', 'dev_3']],
      [{ labels: { pool: 'ci', gpu: 'yes' } }, ['dev_1']],
      [{ hostId: other }, ['dev_3']],
      [{ hostId: other, labels: { pool: 'ci' }, sdkMax: 33 }, ['dev_3']],
      [{}, ['dev_1', 'dev_2', 'dev_3', 'dev_4']],
    ];
    for (const [selector, expected] of cases) {
      const tooMany = await rejection(() =>
        f.leases.create(alice, { selector, count: expected.length + 1 }, null).then((r) => {
          throw new Error(`${JSON.stringify(selector)} granted ${r.lease.devices.map((d) => d.id).join()}`);
        }),
      );
      expect(tooMany.code, JSON.stringify(selector)).toBe('selector_unsatisfiable');
      const { status, lease } = await f.leases.create(alice, { selector, count: expected.length }, null);
      expect(status).toBe(201);
      expect(lease.devices.map((d) => d.id).sort(), JSON.stringify(selector)).toEqual(expected);
      await f.leases.release(alice, lease.id, null);
      await f.leases.settled();
    }
    const bad = await rejection(() => f.leases.create(alice, { selector: { sdkMin: 34, sdkMax: 30 } }, null));
    expect(bad.code).toBe('validation_failed');
  });

  it('does not grant devices that are offline, in maintenance, resetting, or on a draining host', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    const draining = await f.host('hst_drain', { draining: true });
    await f.device('dev_1', { state: 'offline' });
    await f.device('dev_2', { state: 'unauthorized' });
    await f.device('dev_3', { maintenance: 1 });
    await f.device('dev_4', { resetting: 1 });
    await f.device('dev_5', { hostId: draining });
    expect((await rejection(() => f.leases.create(alice, {}, null))).code).toBe('no_devices_available');
    await f.device('dev_6');
    expect((await f.leases.create(alice, {}, null)).lease.devices[0]!.id).toBe('dev_6');
  });
});

describe('fair scheduling', () => {
  it('200 concurrent requests over 10 devices: 10 granted, 190 queued 1..190, then granted strictly in order', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const users: Principal[] = [];
    for (let i = 0; i < 5; i++) users.push(await f.user(`user${i}`));
    await devices(f, 10);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => f.leases.create(users[i % 5]!, { waitSeconds: 3600 }, null)),
    );
    const granted = results.filter((r) => r.status === 201);
    const queued = results.filter((r) => r.status === 202);
    expect(granted).toHaveLength(10);
    expect(queued).toHaveLength(190);
    // Concurrent requests reach the database in no set order: each is told a distinct place in the queue.
    const positions = queued.map((r) => r.lease.queuePosition!);
    expect(positions.sort((a, b) => a - b)).toEqual(Array.from({ length: 190 }, (_, i) => i + 1));
    const queuedEvents = await f.events('lease.queued');
    expect(queuedEvents.map((e) => e.data.position)).toEqual(Array.from({ length: 190 }, (_, i) => i + 1));
    expect(new Set(granted.flatMap((r) => r.lease.devices.map((d) => d.id))).size).toBe(10);
    expect(await f.doubleBooked()).toEqual([]);

    // Queue order is creation order is id order.
    const order = [...queued].sort((a, b) => a.lease.queuePosition! - b.lease.queuePosition!).map((r) => r.lease.id);
    expect([...order].sort()).toEqual(order);

    const holders = granted.map((r) => r.lease);
    for (let i = 0; i < 190; i++) {
      const done = holders.shift()!;
      const principal = users.find((u) => u.userId === done.userId)!;
      await f.leases.release(principal, done.id, null);
      await f.leases.settled();
      const next = await leaseRow(f, order[i]!);
      expect(next.status, `lease #${i}`).toBe('granted');
      if (i + 1 < order.length) expect((await leaseRow(f, order[i + 1]!)).status).toBe('queued');
      const view = await f.leases.get(principal.role === 'admin' ? principal : users.find((u) => u.userId === next.user_id)!, next.id);
      holders.push(view);
      expect(await f.doubleBooked()).toEqual([]);
    }
    const page = await f.leases.list(users[0]!, { limit: 100, allUsers: false, status: ['queued'] });
    expect(page.data).toEqual([]);
  }, 60_000);

  it('backfills past a blocked lease for other devices, without starving a larger earlier request', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.device('dev_p1', { model: 'Pixel 8' });
    await f.device('dev_p2', { model: 'Pixel 8' });
    await f.device('dev_g1', { model: 'Galaxy' });
    await f.device('dev_g2', { model: 'Galaxy' });
    const pixel = { model: 'Pixel 8' };

    const first = await f.leases.create(alice, { selector: pixel, count: 1 }, null);
    expect(first.status).toBe(201);
    // Needs both Pixels: blocked, reserves the free one.
    const big = await f.leases.create(bob, { selector: pixel, count: 2, waitSeconds: 600 }, null);
    expect(big.status).toBe(202);
    // A later 1-Pixel request may not take the reserved Pixel…
    const small = await f.leases.create(alice, { selector: pixel, count: 1, waitSeconds: 600 }, null);
    expect(small.status).toBe(202);
    expect(small.lease.queuePosition).toBe(2);
    // …but a request for other devices proceeds past both (backfill).
    const galaxy = await f.leases.create(alice, { selector: { model: 'Galaxy' }, count: 2, waitSeconds: 600 }, null);
    expect(galaxy.status).toBe(201);

    await f.leases.release(alice, first.lease.id, null);
    await f.leases.settled();
    expect((await f.leases.get(bob, big.lease.id)).status).toBe('granted');
    expect((await f.leases.get(alice, small.lease.id)).queuePosition).toBe(1);

    // Cancelling a blocked lease lets the ones behind it through.
    const bigAgain = await f.leases.create(bob, { selector: { model: 'Galaxy' }, count: 2, waitSeconds: 600 }, null);
    expect(bigAgain.status).toBe(202);
    await f.leases.release(bob, bigAgain.lease.id, null);
    expect((await f.leases.get(bob, bigAgain.lease.id)).status).toBe('cancelled');
  });

  it('prefers the least recently leased devices', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await devices(f, 3);
    const a = await f.leases.create(alice, {}, null);
    expect(a.lease.devices[0]!.id).toBe('dev_000');
    await f.leases.release(alice, a.lease.id, null);
    await f.leases.settled();
    f.clock.advance(1);
    const b = await f.leases.create(alice, { count: 3 }, null);
    expect(b.lease.devices.map((d) => d.id)).toEqual(['dev_000', 'dev_001', 'dev_002']);
    await f.leases.release(alice, b.lease.id, null);
    await f.leases.settled();
    f.clock.advance(1);
    const c = await f.leases.create(alice, {}, null);
    expect(c.lease.devices[0]!.id).toBe('dev_000');
  });
});

describe('lease lifecycle', () => {
  it('renews a granted lease; 409 lease_not_active otherwise', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { lease } = await f.leases.create(alice, { ttlSeconds: 60 }, null);
    f.clock.advance(30);
    const renewed = await f.leases.renew(alice, lease.id, {}, 'req_r');
    expect(renewed.expiresAt).toBe('2026-11-20T09:01:30.000Z');
    const longer = await f.leases.renew(alice, lease.id, { ttlSeconds: 3600 }, null);
    expect(longer.expiresAt).toBe('2026-11-20T10:00:30.000Z');
    expect((await f.events('lease.renewed')).map((e) => e.data.lease.expiresAt)).toEqual([
      '2026-11-20T09:01:30.000Z',
      '2026-11-20T10:00:30.000Z',
    ]);
    f.clock.advance(3000);
    await f.leases.assertCanOperate(alice, 'dev_1');
    await f.leases.release(alice, lease.id, null);
    expect((await rejection(() => f.leases.renew(alice, lease.id, {}, null))).code).toBe('lease_not_active');
  });

  it('expires granted leases in the sweep, resets their devices and makes them available again', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.device('dev_1');
    const ended: [string, string[]][] = [];
    f.leases.onLeaseEnded(({ leaseId, deviceIds }) => {
      ended.push([leaseId, deviceIds]);
    });
    const { lease } = await f.leases.create(alice, { ttlSeconds: 60 }, null);
    await f.leases.settled();
    f.ops.packages.set('dev_1', ['com.example.base', 'com.evil.app']);
    const waiting = await f.leases.create(bob, { waitSeconds: 600 }, null);
    expect(waiting.status).toBe(202);

    f.clock.advance(59);
    await f.leases.sweep();
    expect((await leaseRow(f, lease.id)).status).toBe('granted');

    f.clock.advance(1);
    // Hold the reset to observe the resetting flag.
    let finishReset!: () => void;
    const gate = new Promise<void>((resolve) => (finishReset = resolve));
    const reset = f.ops.reset.bind(f.ops);
    f.ops.reset = async (id, baseline) => {
      await gate;
      return reset(id, baseline);
    };
    await f.leases.sweep();
    const row = await leaseRow(f, lease.id);
    expect(row).toMatchObject({ status: 'expired', end_reason: 'expired', ended_at: '2026-11-20T09:01:00.000Z' });
    expect((await f.db.selectFrom('devices').select('resetting').executeTakeFirstOrThrow()).resetting).toBe(1);
    expect(ended).toEqual([[lease.id, ['dev_1']]]);
    await expect(f.leases.assertCanOperate(alice, 'dev_1')).rejects.toThrow(ApiError);
    expect((await leaseRow(f, waiting.lease.id)).status).toBe('queued');

    finishReset();
    await f.leases.settled();
    expect(f.ops.calls).toContain('reset dev_1 [com.example.base]');
    const view = await f.leases.get(alice, lease.id);
    expectLease(view);
    expect(view.devices[0]!.reset).toEqual({
      status: 'succeeded',
      finishedAt: '2026-11-20T09:01:00.000Z',
      uninstalled: ['com.evil.app'],
      clearedTmp: true,
      removed: [],
      differences: [],
      error: null,
    });
    expect((await f.db.selectFrom('devices').select('resetting').executeTakeFirstOrThrow()).resetting).toBe(0);
    expect((await f.events('lease.expired')).map((e) => e.subjectId)).toEqual([lease.id]);
    const resetEvents = await f.events('device.reset');
    expect(resetEvents).toMatchObject([{ subjectId: 'dev_1', data: { deviceId: 'dev_1', leaseId: lease.id } }]);
    // Available again: the queued lease got it.
    expect((await leaseRow(f, waiting.lease.id)).status).toBe('granted');
    await f.leases.assertCanOperate(bob, 'dev_1');
  });

  it('resets the devices of an ended lease only after the work its lease-ended listeners return has settled', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    let finishWork!: () => void;
    const work = new Promise<void>((resolve) => (finishWork = resolve));
    f.leases.onLeaseEnded(() => work);
    const { lease } = await f.leases.create(alice, {}, null);
    await f.leases.settled();
    f.ops.packages.set('dev_1', ['com.example.base', 'com.example.installed.late']);
    await f.leases.release(alice, lease.id, null);
    // Let the background work run as far as it can: the reset must not have started.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(f.ops.calls.filter((call) => call.startsWith('reset '))).toEqual([]);
    expect((await f.db.selectFrom('devices').select('resetting').executeTakeFirstOrThrow()).resetting).toBe(1);
    finishWork();
    await f.leases.settled();
    expect(f.ops.calls.filter((call) => call.startsWith('reset '))).toEqual(['reset dev_1 [com.example.base]']);
    expect((await f.leases.get(alice, lease.id)).devices[0]!.reset).toMatchObject({
      status: 'succeeded',
      uninstalled: ['com.example.installed.late'],
    });
  });

  it("reuses a device's clean state after a successful reset on the same connection, and reads it again otherwise", async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    f.ops.connections.set('dev_1', {});
    const snapshots = () => f.ops.calls.filter((call) => call === 'snapshot dev_1').length;
    const cycle = async (install?: string): Promise<string> => {
      const { lease } = await f.leases.create(alice, {}, null);
      await f.leases.settled();
      if (install !== undefined) f.ops.packages.set('dev_1', ['com.example.base', install]);
      await f.leases.release(alice, lease.id, null);
      await f.leases.settled();
      return (await f.db.selectFrom('lease_devices').select('baseline_packages').where('lease_id', '=', lease.id).executeTakeFirstOrThrow())
        .baseline_packages!;
    };

    expect(await cycle('com.first.app')).toBe('{"packages":["com.example.base"],"storage":null}');
    expect(snapshots()).toBe(1);
    // Reset succeeded on the same connection: the next grant reads nothing from the device.
    expect(await cycle('com.second.app')).toBe('{"packages":["com.example.base"],"storage":null}');
    expect(snapshots()).toBe(1);
    expect(f.ops.calls).toContain('reset dev_1 [com.example.base]');
    expect(f.ops.packages.get('dev_1')).toEqual(['com.example.base']);

    // A reconnect: the device is read again.
    f.ops.connections.set('dev_1', {});
    await cycle();
    expect(snapshots()).toBe(2);

    // A failed reset: the state is unknown, so it is read again at the next grant.
    f.ops.resetError = new Error('pm crashed');
    await cycle();
    f.ops.resetError = null;
    await cycle();
    expect(snapshots()).toBe(3);
  });

  it('records a reset that leaves differences as failed, and reads the device again at the next grant', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    f.ops.connections.set('dev_1', {});
    f.ops.differences = ['/sdcard/Download: deleted during the lease'];
    const { lease } = await f.leases.create(alice, {}, null);
    await f.leases.settled();
    await f.leases.release(alice, lease.id, null);
    await f.leases.settled();
    expect((await f.leases.get(alice, lease.id)).devices[0]!.reset).toMatchObject({
      status: 'failed',
      differences: ['/sdcard/Download: deleted during the lease'],
      error: 'The device differs from its baseline in 1 way the reset could not undo.',
    });
    f.ops.differences = [];
    await f.leases.create(alice, {}, null);
    await f.leases.settled();
    expect(f.ops.calls.filter((call) => call === 'snapshot dev_1')).toHaveLength(2);
  });

  it("holds a fresh grant's device operations until its baseline is taken", async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    let finishSnapshot!: () => void;
    const held = new Promise<void>((resolve) => (finishSnapshot = resolve));
    const snapshot = f.ops.snapshot.bind(f.ops);
    f.ops.snapshot = async (id) => {
      await held;
      return snapshot(id);
    };
    await f.leases.create(alice, {}, null);
    await f.leases.assertCanOperate(alice, 'dev_1');
    let taken = false;
    const ready = f.leases.baselineTaken('dev_1').then(() => (taken = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(taken).toBe(false);
    finishSnapshot();
    await ready;
    expect(taken).toBe(true);
    await f.leases.baselineTaken('dev_2');
  });

  it('reads a baseline recorded as a list of packages', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { lease } = await f.leases.create(alice, {}, null);
    await f.leases.settled();
    await f.db.updateTable('lease_devices').set({ baseline_packages: '["com.legacy"]' }).where('lease_id', '=', lease.id).execute();
    await f.leases.release(alice, lease.id, null);
    await f.leases.settled();
    expect(f.ops.calls).toContain('reset dev_1 [com.legacy]');
  });

  it('skips the reset of a device offline at release, and resets without a baseline without uninstalling', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    await f.device('dev_2');
    f.ops.failSnapshot = true;
    const { lease } = await f.leases.create(alice, { count: 2 }, null);
    await f.leases.settled();
    f.ops.failSnapshot = false;
    await f.db.updateTable('devices').set({ state: 'offline' }).where('id', '=', 'dev_1').execute();
    f.ops.packages.set('dev_2', ['com.example.base', 'com.new']);
    await f.leases.release(alice, lease.id, null);
    await f.leases.settled();
    const view = await f.leases.get(alice, lease.id);
    expect(view.devices.map((d) => [d.id, d.reset?.status, d.reset?.uninstalled])).toEqual([
      ['dev_1', 'skipped', []],
      ['dev_2', 'succeeded', []],
    ]);
    expect(view.devices[0]!.reset!.error).toContain('offline');
    expect(f.ops.calls).toContain('reset dev_2 [com.example.base,com.new]');
    expect(f.ops.calls).toContain('resetting dev_1 false');
  });

  it('times out queued leases past waitUntil', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    await f.leases.create(alice, {}, null);
    const { status, lease } = await f.leases.create(alice, { waitSeconds: 30 }, null);
    expect(status).toBe(202);
    expect(lease.waitUntil).toBe('2026-11-20T09:00:30.000Z');
    f.clock.advance(30);
    await f.leases.sweep();
    const view = await f.leases.get(alice, lease.id);
    expect(view).toMatchObject({ status: 'timed_out', endReason: 'timed_out', queuePosition: null });
    const released = await f.events('lease.released');
    expect(released).toMatchObject([{ subjectId: lease.id, actorType: 'system', data: { reason: 'timed_out' } }]);
  });

  it("hides others' leases (404) from members; an admin force-releases them", async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const root = await f.user('root', 'admin');
    await f.device('dev_1');
    const { lease } = await f.leases.create(alice, {}, null);
    for (const action of [
      () => f.leases.get(bob, lease.id),
      () => f.leases.release(bob, lease.id, null),
      () => f.leases.renew(bob, lease.id, {}, null),
    ]) {
      const error = await rejection(action);
      expect([error.code, error.status]).toEqual(['lease_not_found', 404]);
    }
    expect((await rejection(() => f.leases.list(bob, { limit: 10, userId: alice.userId }))).code).toBe(
      'insufficient_role',
    );
    expect((await f.leases.list(root, { limit: 10, allUsers: true })).data.map((l) => l.id)).toEqual([lease.id]);
    const released = await f.leases.release(root, lease.id, 'req_admin');
    expect(released).toMatchObject({ status: 'released', endReason: 'force_released' });
    expect((await leaseRow(f, lease.id)).ended_by).toBe(root.userId);
    // Releasing again changes nothing (once the device's reset, which changes the view, is done).
    await f.leases.settled();
    const again = await f.leases.release(alice, lease.id, null);
    expect(again).toEqual(await f.leases.get(alice, lease.id));
    expect(await f.events('lease.released')).toHaveLength(1);
  });

  it('lists the caller’s active leases by default, with cursor pagination', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    await devices(f, 3);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await f.leases.create(alice, { waitSeconds: 60 }, null)).lease.id);
    await f.leases.release(alice, ids[0]!, null);
    // The released device is leased again once its reset is done.
    await f.leases.settled();
    const first = await f.leases.list(alice, { limit: 2 });
    expect(first.data.map((l) => l.id)).toEqual([ids[1], ids[2]]);
    const second = await f.leases.list(alice, { limit: 2, cursor: first.nextCursor! });
    expect(second.data.map((l) => [l.id, l.status, l.queuePosition])).toEqual([
      [ids[3], 'granted', null],
      [ids[4], 'queued', 1],
    ]);
    expect(second.nextCursor).toBeNull();
    const ended = await f.leases.list(alice, { limit: 10, status: ['released'] });
    expect(ended.data.map((l) => l.id)).toEqual([ids[0]]);
  });
});

describe('authorisation and notifications', () => {
  it('assertCanOperate: admins always, holders of a granted unexpired lease, nobody else', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const root = await f.user('root', 'admin');
    await f.device('dev_1');
    await f.device('dev_2');
    const denied = async (p: Principal, id: string) => {
      try {
        await f.leases.assertCanOperate(p, id);
        return null;
      } catch (e) {
        return (e as ApiError).code;
      }
    };
    expect(await denied(alice, 'dev_1')).toBe('lease_required');
    expect(await denied(root, 'dev_1')).toBeNull();
    const { lease } = await f.leases.create(alice, { selector: { deviceIds: ['dev_1'] }, ttlSeconds: 60 }, null);
    expect(await denied(alice, 'dev_1')).toBeNull();
    expect(await denied(alice, 'dev_2')).toBe('lease_required');
    expect(await denied(bob, 'dev_1')).toBe('lease_required');
    f.clock.advance(60);
    expect(await denied(alice, 'dev_1')).toBe('lease_required');
    f.clock.advance(-30);
    expect(await denied(alice, 'dev_1')).toBeNull();

    // The index survives a restart.
    await f.leases.close();
    const { LeaseService } = await import('../../src/leases/service.js');
    const restarted = new LeaseService({
      db: f.db,
      clock: f.clock.now,
      log: { warn: () => undefined, error: () => undefined } as never,
      devices: f.ops,
    });
    await restarted.start();
    await expect(restarted.assertCanOperate(alice, 'dev_1')).resolves.toBeUndefined();
    await restarted.release(alice, lease.id, null);
    await expect(restarted.assertCanOperate(alice, 'dev_1')).rejects.toThrow(ApiError);
    await restarted.close();
  });

  it('ending the leases of a user or of a host waits for the scheduling lock, like every other lease change', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    await f.leases.create(alice, { selector: { deviceIds: ['dev_1'] } }, null);
    const { SCHEDULING_LOCK } = await import('../../src/leases/service.js');
    const { lockForTransaction } = await import('../../src/db/dialect.js');
    for (const end of [
      (trx: never) => f.leases.endLeasesOfUser(trx, alice.userId, { actor: { type: 'system' }, requestId: null }),
      (trx: never) => f.leases.endLeasesForHost(trx, 'hst_default', { actor: { type: 'system' }, requestId: null }),
    ]) {
      let unlock!: () => void;
      const held = new Promise<void>((resolve) => (unlock = resolve));
      let locked!: () => void;
      const lockTaken = new Promise<void>((resolve) => (locked = resolve));
      const holder = f.db.transaction().execute(async (trx) => {
        await lockForTransaction(trx, SCHEDULING_LOCK);
        locked();
        await held;
      });
      await lockTaken;
      let ended = false;
      const ending = f.db.transaction().execute(async (trx) => {
        await end(trx as never);
        ended = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(ended).toBe(false);
      unlock();
      await holder;
      await ending;
      expect(ended).toBe(true);
    }
  });

  it('in a cluster, a device operation on another node waits for the baseline the granting node reads', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { LeaseService } = await import('../../src/leases/service.js');
    const { LoneNode } = await import('../../src/cluster/cluster.js');
    const { FakeDeviceOps } = await import('./fixture.js');
    // Two nodes whose messages reach each other, as over LISTEN/NOTIFY.
    const nodes: InstanceType<typeof LoneNode>[] = [];
    class Linked extends LoneNode {
      override readonly shared = true;
      readonly #listeners = new Map<string, Set<(message: never) => void>>();
      override publish(topic: string, message: unknown): void {
        for (const node of nodes) if (node !== this) (node as Linked).deliver(topic, message);
      }
      override subscribe(topic: string, listener: (message: never) => void): () => void {
        const set = this.#listeners.get(topic) ?? new Set();
        this.#listeners.set(topic, set.add(listener));
        return () => set.delete(listener);
      }
      deliver(topic: string, message: unknown): void {
        for (const listener of this.#listeners.get(topic) ?? []) listener(message as never);
      }
    }
    nodes.push(new Linked('node-a'), new Linked('node-b'));
    const silent = { warn: () => undefined, error: () => undefined } as never;
    const opsA = new FakeDeviceOps(f.db);
    let finishSnapshot!: () => void;
    const snapshotHeld = new Promise<void>((resolve) => (finishSnapshot = resolve));
    const snapshot = opsA.snapshot.bind(opsA);
    opsA.snapshot = async (deviceId) => {
      await snapshotHeld;
      return snapshot(deviceId);
    };
    const service = (cluster: InstanceType<typeof LoneNode>, ops: InstanceType<typeof FakeDeviceOps>) =>
      new LeaseService({ db: f.db, clock: f.clock.now, log: silent, devices: ops, cluster });
    const a = service(nodes[0]!, opsA);
    const b = service(nodes[1]!, new FakeDeviceOps(f.db));
    await a.create(alice, { selector: { deviceIds: ['dev_1'] } }, null);
    let taken = false;
    const waiting = b.baselineTaken('dev_1').then(() => (taken = true));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(taken).toBe(false);
    finishSnapshot();
    await waiting;
    const row = await f.db.selectFrom('lease_devices').select('baseline_packages').executeTakeFirstOrThrow();
    expect(row.baseline_packages).not.toBeNull();
    // Once recorded, nothing is waited for.
    await b.baselineTaken('dev_1');
    await a.close();
    await b.close();
  });

  it('in a cluster, the reset a stopped node left unfinished is claimed and run once by a live node', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { LeaseService } = await import('../../src/leases/service.js');
    const { LoneNode } = await import('../../src/cluster/cluster.js');
    const { FakeDeviceOps } = await import('./fixture.js');
    const silent = { warn: () => undefined, error: () => undefined } as never;
    const node = (name: string, ops: InstanceType<typeof FakeDeviceOps>) =>
      new LeaseService({
        db: f.db,
        clock: f.clock.now,
        log: silent,
        devices: ops,
        cluster: Object.assign(new LoneNode(name), { shared: true }),
      });
    // node-a's reset never finishes: the node stops during it.
    const opsA = new FakeDeviceOps(f.db);
    let finishA!: () => void;
    const stuck = new Promise<void>((resolve) => (finishA = resolve));
    opsA.reset = async () => {
      await stuck;
      throw new Error('the node stopped');
    };
    const a = node('node-a', opsA);
    const opsB = new FakeDeviceOps(f.db);
    const b = node('node-b', opsB);
    const { lease } = await a.create(alice, { selector: { deviceIds: ['dev_1'] } }, null);
    await a.release(alice, lease.id, null);
    const device = () => f.db.selectFrom('devices').select(['resetting', 'resetting_node']).executeTakeFirstOrThrow();
    expect(await device()).toEqual({ resetting: 1, resetting_node: 'node-a' });

    // node-a is alive: its reset is its own.
    await b.recoverOrphanedResets(new Set(['node-a', 'node-b']));
    await b.settled();
    expect(opsB.calls.filter((call) => call.startsWith('reset'))).toEqual([]);

    await b.recoverOrphanedResets(new Set(['node-b']));
    await b.recoverOrphanedResets(new Set(['node-b']));
    await b.settled();
    expect(opsB.calls.filter((call) => call.startsWith('reset '))).toEqual(['reset dev_1 [com.example.base]']);
    expect((await device()).resetting).toBe(0);
    expect(await f.events('device.reset')).toMatchObject([
      { subjectId: 'dev_1', data: { leaseId: lease.id, reset: { status: 'succeeded' } } },
    ]);
    finishA();
    await a.close();
    await b.close();
  });

  it('in a cluster, assertCanOperate sees leases granted, renewed and ended by another node at once', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { LeaseService } = await import('../../src/leases/service.js');
    const { LoneNode } = await import('../../src/cluster/cluster.js');
    // Another node's view: it hears nothing of this node's changes.
    const deaf = Object.assign(new LoneNode('node-b'), { shared: true });
    const other = new LeaseService({
      db: f.db,
      clock: f.clock.now,
      log: { warn: () => undefined, error: () => undefined } as never,
      devices: f.ops,
      cluster: deaf,
    });
    await other.start();
    await expect(other.assertCanOperate(alice, 'dev_1')).rejects.toThrow(ApiError);
    const { lease } = await f.leases.create(alice, { selector: { deviceIds: ['dev_1'] }, ttlSeconds: 60 }, null);
    await expect(other.assertCanOperate(alice, 'dev_1')).resolves.toBeUndefined();
    f.clock.advance(50);
    await f.leases.renew(alice, lease.id, { ttlSeconds: 60 }, null);
    f.clock.advance(20);
    await expect(other.assertCanOperate(alice, 'dev_1')).resolves.toBeUndefined();
    await f.leases.release(alice, lease.id, null);
    await expect(other.assertCanOperate(alice, 'dev_1')).rejects.toThrow(ApiError);
    await other.close();
  });

  it('getLease long-poll resolves as soon as the lease is granted', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.device('dev_1');
    const first = await f.leases.create(alice, {}, null);
    const { lease } = await f.leases.create(bob, { waitSeconds: 600 }, null);
    const started = Date.now();
    const polled = f.leases.get(bob, lease.id, { waitSeconds: 30 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await f.leases.release(alice, first.lease.id, null);
    const view = await polled;
    expect(view.status).toBe('granted');
    expect(Date.now() - started).toBeLessThan(5000);
    // A short wait on a lease that stays queued returns it queued.
    const third = await f.leases.create(alice, { waitSeconds: 600 }, null);
    const still = await f.leases.get(alice, third.lease.id, { waitSeconds: 0.05 });
    expect(still.status).toBe('queued');
  });

  it('endLeasesForHost ends leases holding the host’s devices inside the caller’s transaction', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const gone = await f.host('hst_gone');
    await f.device('dev_1', { hostId: gone });
    await f.device('dev_2');
    const ended: string[] = [];
    f.leases.onLeaseEnded(({ leaseId }) => {
      ended.push(leaseId);
    });
    const onHost = await f.leases.create(alice, { selector: { hostId: gone } }, null);
    const elsewhere = await f.leases.create(alice, { selector: { deviceIds: ['dev_2'] } }, null);
    const result = await f.db.transaction().execute(async (trx) => {
      const r = await f.leases.endLeasesForHost(trx, gone, { actor: { type: 'system' }, requestId: null });
      await trx.deleteFrom('hosts').where('id', '=', gone).execute();
      return r;
    });
    result.afterCommit();
    expect(result.leaseIds).toEqual([onHost.lease.id]);
    expect(ended).toEqual([onHost.lease.id]);
    expect(await f.leases.get(alice, onHost.lease.id)).toMatchObject({ status: 'released', endReason: 'host_removed' });
    expect((await f.leases.get(alice, elsewhere.lease.id)).status).toBe('granted');
    expect(await f.events('lease.released')).toMatchObject([{ data: { reason: 'host_removed' } }]);
  });

  it('the database refuses a second unreleased row for a device', async () => {
    const f = await leaseFixture();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { lease } = await f.leases.create(alice, {}, null);
    await expect(
      f.db
        .insertInto('lease_devices')
        .values({ lease_id: lease.id, device_id: 'dev_1', granted_at: 'x', released_at: null, baseline_packages: null, reset: null })
        .execute(),
    ).rejects.toThrow();
  });
});
