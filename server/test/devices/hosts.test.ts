import { createServer, type Server } from 'node:net';
import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { DB } from '../../src/db/schema.js';
import { HostService, probeTcp, type EndLeasesForHost, type HostConfig } from '../../src/devices/hosts.js';
import type { Cause } from '../../src/events/types.js';
import { ApiError } from '../../src/http/errors.js';
import { inventoryFixture, silent, update, type InventoryFixture } from './inventory-fixture.js';

async function apiError(run: () => unknown): Promise<ApiError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected an ApiError');
}

const noHosts: HostConfig = { adbServers: [], adbDevices: [], localAdb: 'off', virtualDevices: 0 };

interface HostFixture extends InventoryFixture {
  hosts: HostService;
  calls: { hostId: string; cause: Cause; inTransaction: boolean }[];
  afterCommits: string[];
  /** Makes the next `endLeasesForHost` call throw after writing. */
  failNext: { value: boolean };
  service(config: Partial<HostConfig>, probe?: () => Promise<boolean>): HostService;
}

async function hostFixture(config: Partial<HostConfig> = {}, probe?: () => Promise<boolean>): Promise<HostFixture> {
  const f = await inventoryFixture();
  const calls: HostFixture['calls'] = [];
  const afterCommits: string[] = [];
  const failNext = { value: false };
  const endLeasesForHost: EndLeasesForHost = async (trx: Kysely<DB>, hostId, cause) => {
    // Ends the leases on the host's devices like the lease service would, writing through the transaction.
    const held = await trx
      .selectFrom('lease_devices')
      .innerJoin('devices', 'devices.id', 'lease_devices.device_id')
      .select('lease_devices.lease_id')
      .where('devices.host_id', '=', hostId)
      .where('lease_devices.released_at', 'is', null)
      .execute();
    const at = f.clock.now().toISOString();
    for (const { lease_id } of held) {
      await trx
        .updateTable('leases')
        .set({ status: 'released', end_reason: 'host_removed', ended_at: at })
        .where('id', '=', lease_id)
        .execute();
      await trx.updateTable('lease_devices').set({ released_at: at }).where('lease_id', '=', lease_id).execute();
    }
    calls.push({ hostId, cause, inTransaction: trx.isTransaction });
    if (failNext.value) {
      failNext.value = false;
      throw new Error('lease service failed');
    }
    return { afterCommit: () => afterCommits.push(hostId) };
  };
  const service = (c: Partial<HostConfig>, p?: () => Promise<boolean>) =>
    new HostService({
      db: f.db,
      clock: f.clock.now,
      live: f.live,
      config: { ...noHosts, ...c },
      log: silent,
      inventory: f.inventory,
      endLeasesForHost,
      ...(p ? { probeLocalAdb: p } : {}),
    });
  return { ...f, hosts: service(config, probe), calls, afterCommits, failNext, service };
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('HostService.start', () => {
  it('adds the configured hosts and starts tracking every host', async () => {
    const f = await hostFixture({
      adbServers: ['192.0.2.5:5037'],
      adbDevices: ['198.51.100.20:5555'],
      localAdb: 'on',
      virtualDevices: 2,
    });
    await f.hosts.create(f.admin, { type: 'adb_device', address: '192.0.2.9:5555' }, null);
    f.live.added.length = 0;
    await f.hosts.start();
    const hosts = await f.hosts.list();
    expect(hosts.map((h) => [h.type, h.address, h.origin, h.name])).toEqual([
      ['adb_device', '192.0.2.9:5555', 'api', '192.0.2.9:5555'],
      ['adb_server', '192.0.2.5:5037', 'config', '192.0.2.5:5037'],
      ['adb_server', '127.0.0.1:5037', 'config', '127.0.0.1:5037'],
      ['adb_device', '198.51.100.20:5555', 'config', '198.51.100.20:5555'],
      ['virtual', 'in-process', 'config', 'in-process'],
    ]);
    expect(hosts.every((h) => /^hst_[0-9A-Z]{26}$/.test(h.id))).toBe(true);
    expect(f.live.added.map((s) => s.address).sort()).toEqual(
      ['192.0.2.5:5037', '192.0.2.9:5555', '127.0.0.1:5037', '198.51.100.20:5555', 'in-process'].sort(),
    );

    // A restart keeps the hosts (and their ids) that are still configured.
    const before = new Map(hosts.map((h) => [h.address, h.id]));
    await f.service({ adbServers: ['192.0.2.5:5037'], adbDevices: ['198.51.100.20:5555'], localAdb: 'on', virtualDevices: 2 }).start();
    expect(new Map((await f.hosts.list()).map((h) => [h.address, h.id]))).toEqual(before);
  });

  it('removes config hosts no longer configured, with their devices, but keeps API hosts', async () => {
    const f = await hostFixture({ adbServers: ['192.0.2.5:5037', '192.0.2.6:5037'] });
    await f.hosts.start();
    const api = await f.hosts.create(f.admin, { type: 'adb_server', address: '192.0.2.7:5037' }, null);
    const old = (await f.hosts.list()).find((h) => h.address === '192.0.2.6:5037')!;
    const deviceId = await f.report(update(old.id, 'SER1', 'online'));
    await f.lease(deviceId);

    await f.service({ adbServers: ['192.0.2.5:5037'] }).start();
    expect((await f.hosts.list()).map((h) => h.address)).toEqual(['192.0.2.5:5037', '192.0.2.7:5037']);
    expect(await f.db.selectFrom('devices').selectAll().execute()).toEqual([]);
    expect(f.calls.map((c) => [c.hostId, c.cause.actor.type])).toEqual([[old.id, 'system']]);
    expect(f.afterCommits).toEqual([old.id]);
    expect((await f.events()).map((e) => e.type)).toEqual(['device.connected', 'device.disconnected']);
    expect(() => f.inventory.assertKnown(deviceId)).toThrow(ApiError);
    expect((await f.hosts.get(api.id)).origin).toBe('api');
  });

  it('tracks the local ADB server in auto mode only when it answers', async () => {
    const absent = await hostFixture({ localAdb: 'auto' }, async () => false);
    await absent.hosts.start();
    expect(await absent.hosts.list()).toEqual([]);

    const present = await hostFixture({ localAdb: 'auto' }, async () => true);
    await present.hosts.start();
    expect((await present.hosts.list()).map((h) => h.address)).toEqual(['127.0.0.1:5037']);

    // Listed explicitly as an ADB server: not added twice.
    const both = await hostFixture({ localAdb: 'on', adbServers: ['127.0.0.1:5037'] });
    await both.hosts.start();
    expect((await both.hosts.list()).map((h) => h.address)).toEqual(['127.0.0.1:5037']);
  });

  it('probes TCP quickly', async () => {
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    expect(await probeTcp('127.0.0.1', port, 300)).toBe(true);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    expect(await probeTcp('127.0.0.1', closedPort, 300)).toBe(false);
  });
});

describe('HostService in a cluster', () => {
  it('names the in-process virtual hosts of nodes no longer alive, and never another kind', async () => {
    const f = await hostFixture({});
    const { LoneNode } = await import('../../src/cluster/cluster.js');
    const cluster = Object.assign(new LoneNode('node-a'), { shared: true });
    const hosts = new HostService({
      db: f.db,
      clock: f.clock.now,
      live: f.live,
      config: { ...noHosts },
      log: silent,
      inventory: f.inventory,
      endLeasesForHost: async () => ({ afterCommit: () => undefined }),
      cluster,
    });
    const at = f.clock.now().toISOString();
    const row = (id: string, type: 'virtual' | 'adb_server', address: string) => ({
      id,
      type,
      address,
      name: id,
      origin: 'config' as const,
      draining: 0,
      created_at: at,
      updated_at: at,
    });
    await f.db
      .insertInto('hosts')
      .values([
        row('hst_a', 'virtual', 'in-process/node-a'),
        row('hst_b', 'virtual', 'in-process/node-b'),
        row('hst_c', 'adb_server', '127.0.0.1:5037'),
      ])
      .execute();
    expect(await hosts.virtualHostsOfStoppedNodes(new Set(['node-a']))).toEqual(['hst_b']);
    expect(await hosts.virtualHostsOfStoppedNodes(new Set(['node-a', 'node-b']))).toEqual([]);
    // A lone node has no one else's hosts.
    expect(await f.hosts.virtualHostsOfStoppedNodes(new Set())).toEqual([]);
  });
});

describe('HostService CRUD', () => {
  it('creates a host, refusing a duplicate, and tracks it', async () => {
    const f = await hostFixture();
    const host = await f.hosts.create(f.admin, { type: 'adb_server', address: 'lab-1:5037', name: 'Lab 1' }, 'req_1');
    expect(host).toEqual({
      id: expect.stringMatching(/^hst_[0-9A-Z]{26}$/),
      type: 'adb_server',
      address: 'lab-1:5037',
      name: 'Lab 1',
      origin: 'api',
      draining: false,
      status: 'connecting',
      lastError: null,
      nextRetryAt: null,
      deviceCount: 0,
      onlineCount: 0,
      trackedBy: null,
      createdAt: '2026-11-20T09:00:00.000Z',
    });
    expect(f.live.added).toEqual([{ id: host.id, type: 'adb_server', address: 'lab-1:5037' }]);
    const duplicate = await apiError(() => f.hosts.create(f.admin, { type: 'adb_server', address: 'lab-1:5037' }, null));
    expect([duplicate.code, duplicate.status]).toEqual(['host_exists', 409]);
    // The same address as another type is a different host.
    const device = await f.hosts.create(f.admin, { type: 'adb_device', address: 'lab-1:5037' }, null);
    expect(device.name).toBe('lab-1:5037');
    expect((await apiError(() => f.hosts.get('hst_nope'))).code).toBe('host_not_found');
  });

  it('shows live status and device counts', async () => {
    const f = await hostFixture();
    const a = await f.hosts.create(f.admin, { type: 'adb_server', address: 'a:5037' }, null);
    const b = await f.hosts.create(f.admin, { type: 'adb_server', address: 'b:5037' }, null);
    const retry = new Date('2026-11-20T09:00:30.000Z');
    f.live.statuses.set(a.id, { status: 'connected', lastError: null, nextRetryAt: null });
    f.live.statuses.set(b.id, { status: 'unreachable', lastError: 'ECONNREFUSED', nextRetryAt: retry });
    await f.report(update(a.id, 'S1', 'online'));
    const maint = await f.report(update(a.id, 'S2', 'online'));
    await f.inventory.update(f.admin, maint, { maintenance: true }, null);
    await f.report(update(a.id, 'S3', 'offline'));
    await f.report(update(a.id, 'S4', 'unauthorized'));
    const list = await f.hosts.list();
    expect(list.map((h) => [h.status, h.lastError, h.nextRetryAt, h.deviceCount, h.onlineCount])).toEqual([
      ['connected', null, null, 4, 2],
      ['unreachable', 'ECONNREFUSED', '2026-11-20T09:00:30.000Z', 0, 0],
    ]);
    expect(await f.hosts.get(a.id)).toEqual(list[0]);
  });

  it('renames and drains a host; undraining reports an availability change', async () => {
    const f = await hostFixture();
    const host = await f.hosts.create(f.admin, { type: 'adb_server', address: 'a:5037' }, null);
    const deviceId = await f.report(update(host.id, 'S1', 'online'));
    let fired = 0;
    f.inventory.onAvailabilityChange(() => (fired += 1));
    f.clock.advance(60);

    const drained = await f.hosts.update(f.admin, host.id, { draining: true, name: 'Rack 3' }, 'req_1');
    expect(drained).toMatchObject({ draining: true, name: 'Rack 3' });
    expect((await f.inventory.get(deviceId)).available).toBe(false);
    expect(fired).toBe(0);
    await f.hosts.update(f.admin, host.id, { draining: true }, null);
    expect(fired).toBe(0);
    await f.hosts.update(f.admin, host.id, { draining: false }, null);
    expect(fired).toBe(1);
    expect((await f.inventory.get(deviceId)).available).toBe(true);
    expect((await apiError(() => f.hosts.update(f.admin, 'hst_nope', {}, null))).code).toBe('host_not_found');
  });

  it('deletes a host: its leases end in the same transaction, its devices go, tracking stops', async () => {
    const f = await hostFixture();
    const host = await f.hosts.create(f.admin, { type: 'adb_server', address: 'a:5037' }, null);
    const other = await f.hosts.create(f.admin, { type: 'adb_server', address: 'b:5037' }, null);
    const online = await f.report(update(host.id, 'S1', 'online'));
    const offline = await f.report(update(host.id, 'S2', 'offline'));
    const kept = await f.report(update(other.id, 'S1', 'online'));
    const leaseId = await f.lease(online);

    await f.hosts.delete(f.admin, host.id, 'req_del');
    expect(f.calls).toEqual([{ hostId: host.id, cause: expect.objectContaining({ requestId: 'req_del' }), inTransaction: true }]);
    expect(f.calls[0]!.cause.actor).toEqual({ type: 'user', id: 'usr_admin', username: 'admin' });
    expect(f.afterCommits).toEqual([host.id]);
    expect(f.live.removed).toEqual([host.id]);
    expect((await f.hosts.list()).map((h) => h.id)).toEqual([other.id]);
    expect((await f.db.selectFrom('devices').select('id').execute()).map((d) => d.id)).toEqual([kept]);
    const lease = await f.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirstOrThrow();
    expect(lease.end_reason).toBe('host_removed');
    expect(() => f.inventory.assertKnown(online)).toThrow(ApiError);
    expect(() => f.inventory.assertKnown(offline)).toThrow(ApiError);
    f.inventory.assertKnown(kept);
    const events = await f.events();
    expect(events.slice(-1).map((e) => [e.type, e.subjectId, e.actorType])).toEqual([
      ['device.disconnected', online, 'user'],
    ]);

    // Late updates from the removed host are ignored.
    expect(await f.report(update(host.id, 'S1', 'online'))).toBe('');
    expect((await apiError(() => f.hosts.delete(f.admin, host.id, null))).code).toBe('host_not_found');
  });

  it('rolls the whole deletion back when ending the leases fails', async () => {
    const f = await hostFixture();
    const host = await f.hosts.create(f.admin, { type: 'adb_server', address: 'a:5037' }, null);
    const deviceId = await f.report(update(host.id, 'S1', 'online'));
    const leaseId = await f.lease(deviceId);
    const eventsBefore = await f.events();
    f.failNext.value = true;

    await expect(f.hosts.delete(f.admin, host.id, null)).rejects.toThrow('lease service failed');
    expect(f.calls).toHaveLength(1);
    expect(f.afterCommits).toEqual([]);
    expect(f.live.removed).toEqual([]);
    expect((await f.hosts.get(host.id)).deviceCount).toBe(1);
    const lease = await f.db.selectFrom('leases').selectAll().where('id', '=', leaseId).executeTakeFirstOrThrow();
    expect([lease.status, lease.end_reason]).toEqual(['granted', null]);
    expect(await f.events()).toEqual(eventsBefore);
    expect((await f.inventory.get(deviceId)).lease?.id).toBe(leaseId);
    f.inventory.assertKnown(deviceId);
  });
});
