import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { allDevices, eventually, leaseDevice, type Json } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

/**
 * Hosts over real HTTP: two private adb servers (Debian adb) given as `adbServers`, a virtual device connected to the
 * first with `adb connect`, and direct devices added through the API.
 */
let api: Api;
let member: Caller;
let serverA: AdbHost;
let serverB: AdbHost;
let device: VirtualDevice;
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  serverA = await startAdbHost();
  serverB = await startAdbHost();
  device = await startVirtualDevice({ port: 0, profile: defaultProfile(0) });
  expect((await serverA.run('connect', `127.0.0.1:${device.port}`)).stdout).toContain('connected');
  api = await startApi({ adbServers: [`127.0.0.1:${serverA.port}`, `127.0.0.1:${serverB.port}`] });
  member = await api.addCaller('member');
}, 60_000);

afterAll(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  await api?.close();
  await device?.close();
  await serverA?.stop();
  await serverB?.stop();
});

async function hosts(): Promise<Json[]> {
  const listed = await api.call('listHosts', { token: api.admin.token });
  expect(listed.status).toBe(200);
  return listed.body.data;
}

async function hostAt(port: number): Promise<Json | undefined> {
  return (await hosts()).find((h) => h.address === `127.0.0.1:${port}`);
}

async function deviceBySerial(serial: string): Promise<Json | undefined> {
  return (await allDevices(api, api.admin.token)).find((d) => d.serial === serial);
}

describe('adb_server hosts', () => {
  it('lists the configured hosts, connected', async () => {
    const both = await eventually(async () => {
      const list = await hosts();
      return list.length === 2 && list.every((h) => h.status === 'connected') ? list : undefined;
    }, 15_000, 'both hosts connected');
    expect(both.map((h) => [h.type, h.origin, h.draining])).toEqual([
      ['adb_server', 'config', false],
      ['adb_server', 'config', false],
    ]);
    const member403 = await api.call('listHosts', { token: member.token });
    expect([member403.status, member403.body.code]).toEqual([403, 'insufficient_role']);
  });

  it('hotplug: online, offline when the device closes (lastSeenAt kept), online again with the same id', { timeout: 60_000 }, async () => {
    const serial = `127.0.0.1:${device.port}`;
    const online = await eventually(async () => {
      const found = await deviceBySerial(serial);
      return found?.state === 'online' ? found : undefined;
    }, 15_000, 'online');
    const host = await hostAt(serverA.port);
    expect(online).toMatchObject({ hostId: host!.id, kind: 'virtual', connected: true, available: true });
    // A lone node records every host itself.
    expect((await hostAt(serverA.port))!).toMatchObject({
      deviceCount: 1,
      onlineCount: 1,
      trackedBy: api.server.config.nodeName,
    });

    const port = device.port;
    await device.close();
    const offline = await eventually(async () => {
      const found = await deviceBySerial(serial);
      return found?.state === 'offline' ? found : undefined;
    }, 5000, 'offline');
    expect(offline).toMatchObject({ id: online.id, connected: false, available: false });
    expect(Date.parse(offline.lastSeenAt)).toBeGreaterThanOrEqual(Date.parse(online.firstSeenAt));
    const events = await api.call('listEvents', { token: api.admin.token, query: { type: ['device.*'] } });
    expect(events.body.data.map((e: Json) => e.type)).toEqual(expect.arrayContaining(['device.connected', 'device.disconnected']));

    // The same device again on the same port: adb 29 reconnects it by itself (after ~10 s).
    device = await startVirtualDevice({ port, profile: defaultProfile(0) });
    const back = await eventually(async () => {
      const found = await deviceBySerial(serial);
      return found?.state === 'online' ? found : undefined;
    }, 40_000, 'online again');
    expect(back.id).toBe(online.id);
  });

  it('a host going away is unreachable with lastError; the others are unaffected; back when it restarts', { timeout: 60_000 }, async () => {
    const port = serverB.port;
    await serverB.stop();
    const down = await eventually(async () => {
      const host = await hostAt(port);
      return host?.status === 'unreachable' ? host : undefined;
    }, 10_000, 'unreachable');
    expect(down.lastError).toEqual(expect.any(String));
    expect(down.nextRetryAt).toEqual(expect.any(String));
    expect((await hostAt(serverA.port))!.status).toBe('connected');
    serverB = await startAdbHost({ port });
    const up = await eventually(async () => {
      const host = await hostAt(port);
      return host?.status === 'connected' ? host : undefined;
    }, 40_000, 'connected again');
    expect(up).toMatchObject({ lastError: null, nextRetryAt: null });
  });
});

describe('direct hosts through the API', () => {
  it('adds, refuses a duplicate, drains, removes (ending leases with host_removed)', { timeout: 60_000 }, async () => {
    const direct = await startVirtualDevice({ port: 0, profile: defaultProfile(3) });
    cleanup.push(() => direct.close());
    const address = `127.0.0.1:${direct.port}`;
    const refused = await api.call('createHost', { token: member.token, body: { type: 'adb_device', address } });
    expect([refused.status, refused.body.code]).toEqual([403, 'insufficient_role']);
    const created = await api.call('createHost', { token: api.admin.token, body: { type: 'adb_device', address, name: 'bench-1' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ type: 'adb_device', address, name: 'bench-1', origin: 'api', draining: false });
    const hostId = created.body.id as string;
    const duplicate = await api.call('createHost', { token: api.admin.token, body: { type: 'adb_device', address } });
    expect([duplicate.status, duplicate.body.code]).toEqual([409, 'host_exists']);
    const got = await api.call('getHost', { token: api.admin.token, path: { hostId } });
    expect(got.body.id).toBe(hostId);

    const found = await eventually(async () => {
      const list = await allDevices(api, api.admin.token, { hostId, state: 'online' });
      return list[0];
    }, 15_000, 'direct device online');
    expect(found).toMatchObject({ serial: address, hostName: 'bench-1', available: true });

    const drained = await api.call('updateHost', { token: api.admin.token, path: { hostId }, body: { draining: true } });
    expect(drained.body.draining).toBe(true);
    expect((await api.call('getDevice', { token: member.token, path: { deviceId: found.id } })).body.available).toBe(false);
    const notGranted = await api.call('createLease', { token: member.token, body: { selector: { hostId } } });
    expect([notGranted.status, notGranted.body.code]).toEqual([409, 'no_devices_available']);
    await api.call('updateHost', { token: api.admin.token, path: { hostId }, body: { draining: false } });

    const lease = await leaseDevice(api, member.token, found.id);
    const deleted = await api.call('deleteHost', { token: api.admin.token, path: { hostId } });
    expect(deleted.status).toBe(204);
    const gone = await api.call('getDevice', { token: member.token, path: { deviceId: found.id } });
    expect([gone.status, gone.body.code]).toEqual([404, 'device_not_found']);
    const ended = await api.call('getLease', { token: member.token, path: { leaseId: lease.id } });
    expect(ended.body).toMatchObject({ status: 'released', endReason: 'host_removed' });
    const missing = await api.call('getHost', { token: api.admin.token, path: { hostId } });
    expect([missing.status, missing.body.code]).toEqual([404, 'host_not_found']);
  });

  it('serves the ADB public key', async () => {
    const key = await api.call('getAdbKey', { token: api.admin.token });
    expect(key.status).toBe(200);
    expect(key.body.publicKey).toMatch(/^[A-Za-z0-9+/=]+ cloudphone@\S+$/);
    expect(key.body.fingerprint).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/i);
  });
});
