import type { Adb } from '@yume-chan/adb';
import { describe, expect, it } from 'vitest';
import { DeviceOfflineError, DeviceTimeoutError } from '../../src/devices/adb/errors.js';
import { DeviceInventory, parseLabelFilters } from '../../src/devices/inventory.js';
import { ApiError } from '../../src/http/errors.js';
import { info, inventoryFixture, silent, update, type InventoryFixture } from './inventory-fixture.js';

async function apiError(run: () => unknown): Promise<ApiError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected an ApiError');
}

const ids = (page: { data: { id: string }[] }) => page.data.map((d) => d.id);

describe('DeviceInventory: live updates', () => {
  it('gives a device a stable id across offline and online, and records each transition', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    expect(id).toMatch(/^dev_[0-9A-Z]{26}$/);
    f.clock.advance(10);
    expect(await f.report(update('hst_a', 'SER1', 'offline'))).toBe(id);
    f.clock.advance(10);
    expect(await f.report(update('hst_a', 'SER1', 'unauthorized'))).toBe(id);
    f.clock.advance(10);
    expect(await f.report(update('hst_a', 'SER1', 'online'))).toBe(id);
    f.clock.advance(10);
    expect(await f.report(update('hst_a', 'SER1', 'unauthorized'))).toBe(id);

    const events = await f.events();
    expect(events.map((e) => [e.type, e.data.from, e.data.to])).toEqual([
      ['device.connected', undefined, undefined],
      ['device.disconnected', undefined, undefined],
      ['device.state_changed', 'offline', 'unauthorized'],
      ['device.connected', undefined, undefined],
      ['device.state_changed', 'online', 'unauthorized'],
    ]);
    expect(events.every((e) => e.subjectId === id && e.actorType === 'system')).toBe(true);
    expect(events[0]!.data.device).toEqual({
      id,
      serial: 'SER1',
      hostId: 'hst_a',
      kind: 'physical',
      state: 'online',
      model: 'Pixel 7',
    });
    expect(events[1]!.data.device.state).toBe('offline');

    const device = await f.inventory.get(id);
    expect(device).toMatchObject({
      id,
      serial: 'SER1',
      hostId: 'hst_a',
      hostName: 'hst_a',
      state: 'unauthorized',
      connected: false,
      available: false,
      firstSeenAt: '2026-11-20T09:00:00.000Z',
      lastSeenAt: '2026-11-20T09:00:40.000Z',
      properties: info().properties,
      battery: info().battery,
      labels: {},
      lease: null,
      resetting: false,
    });
  });

  it('markHostsOffline records the connected devices of those hosts offline, with their events, and no others', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    await f.host('hst_b');
    const a1 = await f.report(update('hst_a', 'SER1', 'online'));
    const a2 = await f.report(update('hst_a', 'SER2', 'offline'));
    const b1 = await f.report(update('hst_b', 'SER3', 'online'));
    const before = (await f.events()).length;
    await f.inventory.markHostsOffline(['hst_a']);
    const state = async (id: string) => (await f.inventory.get(id)).state;
    expect([await state(a1), await state(a2), await state(b1)]).toEqual(['offline', 'offline', 'online']);
    const added = (await f.events()).slice(before);
    expect(added.map((e) => [e.type, e.subjectId])).toEqual([['device.disconnected', a1]]);
    // Again: nothing left to change.
    await f.inventory.markHostsOffline(['hst_a']);
    expect((await f.events()).length).toBe(before + 1);
  });

  it('records no event when nothing changed, but still updates lastSeenAt while connected', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    f.clock.advance(5);
    await f.report(update('hst_a', 'SER1', 'online', { info: null }));
    expect((await f.events()).map((e) => e.type)).toEqual(['device.connected']);
    expect((await f.inventory.get(id)).lastSeenAt).toBe('2026-11-20T09:00:05.000Z');
    // The properties read at the first connection are kept when an update carries no info.
    expect((await f.inventory.get(id)).properties?.model).toBe('Pixel 7');

    await f.report(update('hst_a', 'SER1', 'offline'));
    f.clock.advance(5);
    await f.report(update('hst_a', 'SER1', 'offline'));
    expect((await f.events()).map((e) => e.type)).toEqual(['device.connected', 'device.disconnected']);
    expect((await f.inventory.get(id)).lastSeenAt).toBe('2026-11-20T09:00:05.000Z');
  });

  it('stores new properties when a device comes back with different info', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    await f.report(update('hst_a', 'SER1', 'offline'));
    await f.report(update('hst_a', 'SER1', 'online', { info: info({ sdk: 35, abis: ['x86_64'] }) }));
    const device = await f.inventory.get(id);
    expect(device.properties).toMatchObject({ sdk: 35, abis: ['x86_64'] });
    const row = await f.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect([row.sdk, row.abis, row.model]).toEqual([35, '["x86_64"]', 'Pixel 7']);
  });

  it('inserts a device first seen offline without an event, and ignores updates of unknown hosts', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'offline'));
    expect(id).not.toBe('');
    expect(await f.events()).toEqual([]);
    expect(await f.report(update('hst_gone', 'SER2', 'online'))).toBe('');
  });

  it('marks every device offline at start, without events', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    const again = new DeviceInventory({ db: f.db, clock: f.clock.now, live: new (f.live.constructor as any)(), log: silent });
    await again.start();
    expect((await again.get(id)).state).toBe('offline');
    expect((await f.events()).map((e) => e.type)).toEqual(['device.connected']);
    await again.close();
  });

  it('writes updates one at a time and in order, and a failing write does not stop the next ones', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    for (let i = 0; i < 5; i++) {
      f.live.emit(update('hst_a', 'SER1', 'online'));
      f.live.emit(update('hst_a', 'SER1', 'offline'));
    }
    // An update whose write fails (kind breaks the CHECK constraint) is logged, not thrown.
    f.live.emit({ ...update('hst_a', 'SER2', 'online'), kind: 'bogus' as never });
    f.live.emit(update('hst_a', 'SER3', 'online'));
    await f.inventory.idle();
    expect((await f.events()).map((e) => `${e.type} ${e.data.device.serial}`)).toEqual([
      ...Array.from({ length: 5 }, () => ['device.connected SER1', 'device.disconnected SER1']).flat(),
      'device.connected SER3',
    ]);
  });

  it('fires availability changes when a device comes online', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    let fired = 0;
    f.inventory.onAvailabilityChange(() => {
      fired += 1;
      throw new Error('listener failures are logged');
    });
    await f.report(update('hst_a', 'SER1', 'online'));
    expect(fired).toBe(1);
    await f.report(update('hst_a', 'SER1', 'online', { info: null }));
    await f.report(update('hst_a', 'SER1', 'offline'));
    expect(fired).toBe(1);
  });

  it('answers adbFor and assertKnown from the live layer', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const adb = { tag: 'first' } as unknown as Adb;
    const id = await f.report(update('hst_a', 'SER1', 'online'), adb);
    expect(f.inventory.adbFor(id)).toBe(adb);
    f.inventory.assertKnown(id);
    await f.report(update('hst_a', 'SER1', 'offline'));
    expect((await apiError(() => f.inventory.adbFor(id))).code).toBe('device_offline');
    expect((await apiError(() => f.inventory.adbFor('dev_01JDX5Z9Y8X7W6V5T4S3R2Q1P0'))).code).toBe('device_not_found');
    expect((await apiError(() => f.inventory.assertKnown('dev_nope'))).status).toBe(404);
    expect((await apiError(() => f.inventory.get('dev_nope'))).code).toBe('device_not_found');
  });

  it('waits for a device to reconnect over a new connection', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const first = { tag: 'first' } as unknown as Adb;
    const id = await f.report(update('hst_a', 'SER1', 'online'), first);
    let done = false;
    const back = f.inventory.waitForReconnect(id, first, 5_000).then(() => (done = true));
    await f.report(update('hst_a', 'SER1', 'online', { info: null }), first);
    await f.report(update('hst_a', 'SER1', 'offline'));
    expect(done).toBe(false);
    await f.report(update('hst_a', 'SER1', 'online'), { tag: 'second' } as unknown as Adb);
    await back;
    expect(done).toBe(true);

    await expect(f.inventory.waitForReconnect(id, first, 20)).rejects.toBeInstanceOf(DeviceTimeoutError);
    const gone = f.inventory.waitForReconnect(id, first, 5_000);
    f.inventory.forgetHost('hst_a');
    await expect(gone).rejects.toBeInstanceOf(DeviceOfflineError);
  });
});

describe('DeviceInventory: update', () => {
  it('sets and removes labels', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    const device = await f.inventory.update(f.admin, id, { labels: { team: 'qa', 'example.com/rack': 'r1' } }, 'req_1');
    expect(device.labels).toEqual({ 'example.com/rack': 'r1', team: 'qa' });
    expect((await f.inventory.update(f.admin, id, { labels: { team: null, gone: null } }, 'req_2')).labels).toEqual({
      'example.com/rack': 'r1',
    });
    expect((await f.events()).map((e) => e.type)).toEqual(['device.connected']);

    expect((await apiError(() => f.inventory.update(f.admin, 'dev_nope', { labels: {} }, null))).code).toBe(
      'device_not_found',
    );
  });

  it('flips maintenance with a state_changed event, and reports availability when it ends', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    let fired = 0;
    f.inventory.onAvailabilityChange(() => (fired += 1));

    const on = await f.inventory.update(f.admin, id, { maintenance: true }, 'req_1');
    expect(on).toMatchObject({ state: 'maintenance', connected: true, available: false });
    expect(fired).toBe(0);
    await f.inventory.update(f.admin, id, { maintenance: true }, 'req_2'); // no change, no event

    // While in maintenance, live changes keep their connected/disconnected events with the maintenance state.
    await f.report(update('hst_a', 'SER1', 'offline'));
    await f.report(update('hst_a', 'SER1', 'unauthorized'));
    await f.report(update('hst_a', 'SER1', 'online'));
    expect(fired).toBe(0);

    const off = await f.inventory.update(f.admin, id, { maintenance: false }, 'req_3');
    expect(off).toMatchObject({ state: 'online', available: true });
    expect(fired).toBe(1);

    const events = await f.events();
    expect(events.map((e) => [e.type, e.actorType, e.data.from, e.data.to, e.data.device.state])).toEqual([
      ['device.connected', 'system', undefined, undefined, 'online'],
      ['device.state_changed', 'user', 'online', 'maintenance', 'maintenance'],
      ['device.disconnected', 'system', undefined, undefined, 'maintenance'],
      ['device.connected', 'system', undefined, undefined, 'maintenance'],
      ['device.state_changed', 'user', 'maintenance', 'online', 'online'],
    ]);
  });

  it('sets resetting and reports availability when it is cleared', async () => {
    const f = await inventoryFixture();
    await f.host('hst_a');
    const id = await f.report(update('hst_a', 'SER1', 'online'));
    let fired = 0;
    f.inventory.onAvailabilityChange(() => (fired += 1));
    await f.inventory.setResetting(id, true);
    expect(await f.inventory.get(id)).toMatchObject({ resetting: true, available: false });
    expect(fired).toBe(0);
    await f.inventory.setResetting(id, false);
    expect(await f.inventory.get(id)).toMatchObject({ resetting: false, available: true });
    expect(fired).toBe(1);
  });
});

type Farm = Record<'pixel' | 'old' | 'emu' | 'offline' | 'unauth' | 'drained' | 'leased' | 'maint', string>;

describe('DeviceInventory: list', () => {
  async function farm(): Promise<InventoryFixture & { d: Farm }> {
    const f = await inventoryFixture();
    await f.host('hst_a', { name: 'Lab A' });
    await f.host('hst_b', { draining: true });
    const pixel = await f.report(update('hst_a', 'P1', 'online', { info: info({ model: 'Pixel 7', sdk: 34 }) }));
    const old = await f.report(
      update('hst_a', 'O1', 'online', { info: info({ model: 'Galaxy S9', sdk: 28, abis: ['armeabi-v7a', 'arm64-v8a'] }) }),
    );
    const emu = await f.report(
      update('hst_a', 'emulator-5554', 'online', { kind: 'emulator', info: info({ model: 'sdk_gphone64', sdk: 33, abis: ['x86_64'] }) }),
    );
    const offline = await f.report(update('hst_a', 'F1', 'offline'));
    const unauth = await f.report(update('hst_a', 'U1', 'unauthorized'));
    const drained = await f.report(update('hst_b', 'B1', 'online', { kind: 'network', info: info({ sdk: 30 }) }));
    const leased = await f.report(update('hst_a', 'L1', 'online', { info: info({ sdk: 31 }) }));
    const maint = await f.report(update('hst_a', 'M1', 'online', { info: info({ sdk: 32 }) }));
    const d: Farm = { pixel, old, emu, offline, unauth, drained, leased, maint };
    await f.lease(d.leased);
    await f.lease(d.pixel, { released: true });
    await f.inventory.update(f.admin, d.maint, { maintenance: true }, null);
    await f.inventory.update(f.admin, d.pixel, { labels: { team: 'qa', rack: 'r1' } }, null);
    await f.inventory.update(f.admin, d.old, { labels: { team: 'qa', rack: 'r2' } }, null);
    return { ...f, d };
  }

  const all = { limit: 100 };

  it('filters by state (maintenance overrides), kind and host', async () => {
    const { inventory, d } = await farm();
    expect(ids(await inventory.list({ ...all, state: 'online' }))).toEqual([
      d.pixel, d.old, d.emu, d.drained, d.leased,
    ]);
    expect(ids(await inventory.list({ ...all, state: 'maintenance' }))).toEqual([d.maint]);
    expect(ids(await inventory.list({ ...all, state: 'offline' }))).toEqual([d.offline]);
    expect(ids(await inventory.list({ ...all, state: 'unauthorized' }))).toEqual([d.unauth]);
    expect(ids(await inventory.list({ ...all, kind: 'emulator' }))).toEqual([d.emu]);
    expect(ids(await inventory.list({ ...all, hostId: 'hst_b' }))).toEqual([d.drained]);
  });

  it('filters by sdk range, abi and model', async () => {
    const { inventory, d } = await farm();
    expect(ids(await inventory.list({ ...all, sdkMin: 31, sdkMax: 33 }))).toEqual([d.emu, d.leased, d.maint]);
    expect(ids(await inventory.list({ ...all, sdkMin: 34 }))).toEqual([d.pixel]);
    expect(ids(await inventory.list({ ...all, sdkMax: 28 }))).toEqual([d.old]);
    expect(ids(await inventory.list({ ...all, abi: 'armeabi-v7a' }))).toEqual([d.old]);
    expect(ids(await inventory.list({ ...all, abi: 'x86_64' }))).toEqual([d.emu]);
    expect(ids(await inventory.list({ ...all, abi: 'arm64' }))).toEqual([]);
    expect(ids(await inventory.list({ ...all, model: 'galaxy s9' }))).toEqual([d.old]);
    expect(ids(await inventory.list({ ...all, model: 'galaxy' }))).toEqual([]);
  });

  it('filters by labels, ANDed, splitting a filter at its first =', async () => {
    const { inventory, admin, d } = await farm();
    expect(ids(await inventory.list({ ...all, label: ['team=qa'] }))).toEqual([d.pixel, d.old]);
    expect(ids(await inventory.list(admin, { ...all, label: ['team=qa', 'rack=r2'] }))).toEqual([d.old]);
    expect(ids(await inventory.list({ ...all, label: ['team=dev'] }))).toEqual([]);
    expect(parseLabelFilters(['team=a=b', 'rack='])).toEqual([
      { key: 'team', value: 'a=b' },
      { key: 'rack', value: '' },
    ]);
  });

  it('filters by availability and shows the lease', async () => {
    const { inventory, d } = await farm();
    expect(ids(await inventory.list({ ...all, available: true }))).toEqual([d.pixel, d.old, d.emu]);
    expect(ids(await inventory.list({ ...all, available: false }))).toEqual([
      d.offline, d.unauth, d.drained, d.leased, d.maint,
    ]);
    const leased = await inventory.get(d.leased);
    expect(leased.lease).toEqual({
      id: expect.stringMatching(/^lse_/),
      userId: 'usr_admin',
      username: 'admin',
      expiresAt: '2026-11-20T09:15:00.000Z',
    });
    expect((await inventory.get(d.pixel)).lease).toBeNull();
    expect((await inventory.get(d.pixel)).hostName).toBe('Lab A');
  });

  it('pages by id', async () => {
    const { inventory } = await farm();
    const everything = ids(await inventory.list(all));
    expect(everything).toHaveLength(8);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await inventory.list({ limit: 3, ...(cursor ? { cursor } : {}) });
      seen.push(...ids(page));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(seen).toEqual(everything);
    expect((await apiError(() => inventory.list({ limit: 3, cursor: 'nope' }))).code).toBe('invalid_cursor');
  });
});
