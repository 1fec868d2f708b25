import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAdbTunnel, type AdbTunnel } from '../../../cli/src/lib/adb-tunnel.js';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { allDevices, eventually, leaseDevice, release, wsUrl, type Json } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

function exists(device: VirtualDevice, path: string): boolean {
  try {
    device.state.files.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** How long the server gets to notice a new transport on the adb server it tracks (it polls every second). */
const NOTICE_MS = 3000;

/**
 * The tunnel loop: the server tracks an adb server; a lease holder opens an ADB tunnel and `adb connect`s that
 * same adb server to it. The tunnel must not become a device of its own.
 */
describe('an ADB tunnel connected to a tracked adb server', () => {
  let adb: AdbHost;
  let api: Api;
  let member: Caller;
  const devices: VirtualDevice[] = [];
  let held: Json;
  let spare: Json;
  let heldDevice: VirtualDevice;
  let spareDevice: VirtualDevice;
  let tunnel: AdbTunnel;
  let tunnelSerial: string;
  let lease: Json;

  const inventorySerials = async (): Promise<string[]> =>
    (await allDevices(api, api.admin.token)).map((device) => device.serial as string).sort();

  beforeAll(async () => {
    adb = await startAdbHost();
    for (const index of [0, 1]) {
      const device = await startVirtualDevice({ profile: { ...defaultProfile(index), serial: `CPLOOP000${index}` } });
      devices.push(device);
      expect((await adb.run('connect', `127.0.0.1:${device.port}`)).stdout).toContain('connected to');
    }
    [heldDevice, spareDevice] = devices as [VirtualDevice, VirtualDevice];
    api = await startApi({ adbServers: [`127.0.0.1:${adb.port}`] });
    member = await api.addCaller('member');
    const online = await eventually(async () => {
      const list = await allDevices(api, api.admin.token, { available: true });
      return list.length === 2 ? list : undefined;
    }, 30_000, 'both devices available');
    held = online.find((device) => device.serial === `127.0.0.1:${heldDevice.port}`)!;
    spare = online.find((device) => device.serial === `127.0.0.1:${spareDevice.port}`)!;

    lease = await leaseDevice(api, api.admin.token, held.id);
    tunnel = await openAdbTunnel({
      url: wsUrl(api, `/v1/devices/${held.id}/adb`),
      headers: { authorization: `Bearer ${api.admin.token}` },
    });
    tunnelSerial = `127.0.0.1:${tunnel.port}`;
    expect((await adb.run('connect', tunnelSerial)).stdout).toContain(`connected to ${tunnelSerial}`);
    expect((await adb.run('-s', tunnelSerial, 'wait-for-device')).code).toBe(0);
  }, 90_000);

  afterAll(async () => {
    await tunnel?.close();
    await api?.close();
    await adb?.stop();
    await Promise.all(devices.map((device) => device.close()));
  });

  it('works for its holder, and never shows up in the inventory', { timeout: 30_000 }, async () => {
    expect(await adb.run('-s', tunnelSerial, 'shell', 'echo', 'through')).toMatchObject({ code: 0, stdout: 'through\n' });
    const deadline = Date.now() + NOTICE_MS;
    while (Date.now() < deadline) {
      expect(await inventorySerials()).toEqual([held.serial, spare.serial].sort());
      await sleep(250);
    }
    const events = await api.call('listEvents', { token: api.admin.token, query: { type: ['device.*'], limit: 100 } });
    expect(events.status).toBe(200);
    const serials = events.body.data.map((event: Json) => event.data.device?.serial).filter(Boolean);
    expect(serials).not.toContain(tunnelSerial);
  });

  it('leaves a second member nothing to lease but the spare device, whose reset touches only it', { timeout: 60_000 }, async () => {
    const own = await leaseDevice(api, member.token, spare.id);
    const more = await api.call('createLease', { token: member.token, body: { count: 1 } });
    expect([more.status, more.body.code]).toEqual([409, 'no_devices_available']);

    // Both holders leave a file in /data/local/tmp: the admin through the tunnel, the member through the API.
    expect((await adb.run('-s', tunnelSerial, 'shell', 'mkdir', '-p', '/data/local/tmp/admin-work')).code).toBe(0);
    const pushed = await api.call('pushDeviceFile', {
      token: member.token,
      path: { deviceId: spare.id },
      query: { path: '/data/local/tmp/member.txt' },
      rawBody: 'member',
      contentType: 'application/octet-stream',
    });
    expect(pushed.status).toBe(201);

    await release(api, member.token, own.id);
    await eventually(async () => {
      const got = await api.call('getLease', { token: member.token, path: { leaseId: own.id } });
      return got.body.devices[0].reset ?? undefined;
    }, 30_000, 'reset of the spare device');
    expect(exists(spareDevice, '/data/local/tmp/member.txt')).toBe(false);
    expect(exists(heldDevice, '/data/local/tmp/admin-work')).toBe(true);
    expect(await adb.run('-s', tunnelSerial, 'shell', 'ls', '/data/local/tmp')).toMatchObject({ code: 0 });
    expect((await adb.run('-s', tunnelSerial, 'shell', 'ls', '/data/local/tmp')).stdout).toContain('admin-work');

    await release(api, api.admin.token, lease.id);
    await eventually(async () => {
      const got = await api.call('getLease', { token: api.admin.token, path: { leaseId: lease.id } });
      return got.body.devices[0].reset ?? undefined;
    }, 30_000, 'reset of the held device');
    expect(exists(heldDevice, '/data/local/tmp/admin-work')).toBe(false);
    expect(await inventorySerials()).toEqual([held.serial, spare.serial].sort());
  });

  it('stays out of the inventory of a server started while the adb server lists the dead tunnel', { timeout: 60_000 }, async () => {
    await tunnel.close();
    await eventually(async () => {
      const listed = (await adb.run('devices')).stdout.split('\n').find((line) => line.startsWith(`${tunnelSerial}\t`));
      return listed !== undefined && !listed.endsWith('\tdevice');
    }, 30_000, 'the tunnel listed but not connected');
    const next = await startApi({ adbServers: [`127.0.0.1:${adb.port}`] });
    try {
      await eventually(async () => (await allDevices(next, next.admin.token, { state: 'online' })).length === 2, 30_000, 'both devices');
      const deadline = Date.now() + NOTICE_MS;
      while (Date.now() < deadline) {
        const serials = (await allDevices(next, next.admin.token)).map((device) => device.serial as string).sort();
        expect(serials).toEqual([held.serial, spare.serial].sort());
        await sleep(250);
      }
    } finally {
      await next.close();
    }
  });
});

describe('the same device reached through two transports', () => {
  let adb: AdbHost;
  let api: Api;
  let device: VirtualDevice;

  beforeAll(async () => {
    adb = await startAdbHost();
    device = await startVirtualDevice({ profile: { ...defaultProfile(2), serial: 'CPTWIN0001' } });
    expect((await adb.run('connect', `127.0.0.1:${device.port}`)).stdout).toContain('connected to');
    api = await startApi({ adbServers: [`127.0.0.1:${adb.port}`] });
    await eventually(async () => (await allDevices(api, api.admin.token, { state: 'online' })).length === 1, 30_000, 'device online');
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await adb?.stop();
    await device?.close();
  });

  it('is one inventory entry: the second transport stays out while the first is online', { timeout: 30_000 }, async () => {
    const created = await api.call('createHost', {
      token: api.admin.token,
      body: { type: 'adb_device', address: `127.0.0.1:${device.port}` },
    });
    expect(created.status).toBe(201);
    await eventually(async () => {
      const host = await api.call('getHost', { token: api.admin.token, path: { hostId: created.body.id } });
      return host.body.status === 'connected' ? host.body : undefined;
    }, 20_000, 'direct host connected');
    const deadline = Date.now() + NOTICE_MS;
    while (Date.now() < deadline) {
      expect((await allDevices(api, api.admin.token)).length).toBe(1);
      await sleep(250);
    }
    // The first transport goes away: the device is online through the second one, still once.
    expect((await adb.run('disconnect', `127.0.0.1:${device.port}`)).code).toBe(0);
    const online = await eventually(async () => {
      const list = await allDevices(api, api.admin.token, { state: 'online' });
      return list.length === 1 && list[0]!.hostId === created.body.id ? list : undefined;
    }, 20_000, 'online through the direct host');
    expect(online).toHaveLength(1);
    expect((await adb.run('connect', `127.0.0.1:${device.port}`)).stdout).toContain('connected to');
    await sleep(NOTICE_MS);
    expect(await allDevices(api, api.admin.token, { state: 'online' })).toHaveLength(1);
  });

  it('refuses a cloudphone ADB tunnel added as a device host', { timeout: 30_000 }, async () => {
    const [only] = await allDevices(api, api.admin.token, { state: 'online' });
    await leaseDevice(api, api.admin.token, only!.id);
    const tunnel = await openAdbTunnel({
      url: wsUrl(api, `/v1/devices/${only!.id}/adb`),
      headers: { authorization: `Bearer ${api.admin.token}` },
    });
    try {
      const created = await api.call('createHost', {
        token: api.admin.token,
        body: { type: 'adb_device', address: `127.0.0.1:${tunnel.port}` },
      });
      expect(created.status).toBe(201);
      const host = await eventually(async () => {
        const got = await api.call('getHost', { token: api.admin.token, path: { hostId: created.body.id } });
        return got.body.lastError === null ? undefined : got.body;
      }, 20_000, 'the tunnel host refused');
      expect(host).toMatchObject({ status: 'unreachable', deviceCount: 0 });
      expect(host.lastError).toContain('cloudphone ADB tunnel');
      expect(await allDevices(api, api.admin.token, { state: 'online' })).toHaveLength(1);
    } finally {
      await tunnel.close();
    }
  });
});
