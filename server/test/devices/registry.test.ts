import { afterEach, describe, expect, it } from 'vitest';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { loadOrCreateAdbKey } from '../../src/devices/adb/key.js';
import { runShell } from '../../src/devices/adb/operations.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import type { DeviceUpdate, HostLiveStatus } from '../../src/devices/types.js';
import { eventually, silentLog, testKey } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function registry(options: { virtual?: { count: number } } = {}) {
  const adbKey = await testKey();
  const created = new DeviceRegistry({ adbKey, log: silentLog(), retry: { initialMs: 100, maxMs: 500 }, ...options });
  cleanup.push(() => created.close());
  const updates: (DeviceUpdate & { at: number })[] = [];
  const statuses: (HostLiveStatus & { hostId: string })[] = [];
  created.onUpdate((update) => updates.push({ ...update, at: Date.now() }));
  created.onHostStatus((hostId, status) => statuses.push({ hostId, ...status }));
  return { registry: created, updates, statuses };
}

async function virtualDevice(port = 0, authorizedKeys?: string[]): Promise<VirtualDevice> {
  const device = await startVirtualDevice({
    port,
    profile: defaultProfile(0),
    auth: authorizedKeys === undefined ? undefined : { authorizedKeys },
  });
  cleanup.push(() => device.close());
  return device;
}

describe('adb_device host (direct TCP with the server key)', () => {
  it('online with info; drop → offline quickly; restart on the same port → online with the same serial', async () => {
    const key = await testKey();
    let device = await virtualDevice(0, [key.publicKey]);
    const address = `127.0.0.1:${device.port}`;
    const { registry: live, updates, statuses } = await registry();
    live.addHost({ id: 'hst_direct', type: 'adb_device', address });
    live.addHost({ id: 'hst_direct', type: 'adb_device', address }); // idempotent

    const online = await eventually(() => updates.find((update) => update.state === 'online'), 10_000, 'online');
    expect(online).toMatchObject({ hostId: 'hst_direct', serial: address, kind: 'virtual' });
    expect(online.info?.properties.model).toBe('Virtual Phone');
    expect(online.info?.battery?.level).toBe(85);
    expect(live.hostStatus('hst_direct').status).toBe('connected');
    const adb = live.adb('hst_direct', address);
    expect(adb).toBeDefined();
    expect((await runShell(adb!, 'echo hi', { timeoutMs: 5000 })).stdout).toBe('hi\n');
    expect(live.snapshot()).toEqual([expect.objectContaining({ serial: address, state: 'online' })]);

    const droppedAt = Date.now();
    await device.close();
    const offline = await eventually(() => updates.find((update) => update.state === 'offline'), 5000, 'offline');
    expect(offline.at - droppedAt).toBeLessThan(1000);
    expect(live.adb('hst_direct', address)).toBeUndefined();
    const unreachable = await eventually(
      () => statuses.find((status) => status.status === 'unreachable'),
      5000,
      'unreachable',
    );
    expect(unreachable.lastError).toBeTruthy();
    expect(unreachable.nextRetryAt).toBeInstanceOf(Date);

    device = await virtualDevice(device.port, [key.publicKey]);
    const back = await eventually(
      () => updates.slice(updates.indexOf(offline)).find((update) => update.state === 'online'),
      10_000,
      'back online',
    );
    expect(back.serial).toBe(address);
    expect(live.hostStatus('hst_direct')).toEqual({ status: 'connected', lastError: null, nextRetryAt: null });
  });

  it('unauthorized when the device does not know the key', async () => {
    const other = await loadOrCreateAdbKey(null);
    const device = await virtualDevice(0, [other.publicKey]);
    const address = `127.0.0.1:${device.port}`;
    const { registry: live, updates } = await registry();
    live.addHost({ id: 'hst_unauth', type: 'adb_device', address });
    const update = await eventually(() => updates.find((u) => u.state === 'unauthorized'), 10_000, 'unauthorized');
    expect(update).toMatchObject({ serial: address, info: null });
    expect(live.adb('hst_unauth', address)).toBeUndefined();
  });

  it('unreachable address: status with lastError and nextRetryAt; removeHost stops updates', async () => {
    const device = await virtualDevice();
    const port = device.port;
    await device.close();
    const { registry: live, statuses, updates } = await registry();
    live.addHost({ id: 'hst_gone', type: 'adb_device', address: `127.0.0.1:${port}` });
    const status = await eventually(() => statuses.find((s) => s.status === 'unreachable'), 5000, 'unreachable');
    expect(status.lastError).toMatch(/ECONNREFUSED|refused/i);
    expect(status.nextRetryAt!.getTime()).toBeGreaterThan(Date.now() - 1000);
    await live.removeHost('hst_gone');
    expect(live.hostStatus('hst_gone').status).toBe('unreachable');
    expect(updates).toEqual([]);
  });
});

describe('virtual host', () => {
  it('count 3 → 3 online virtual devices; close stops them', async () => {
    const { registry: live, updates } = await registry({ virtual: { count: 3 } });
    live.addHost({ id: 'hst_virtual', type: 'virtual', address: 'in-process' });
    await eventually(() => live.snapshot('hst_virtual').filter((u) => u.state === 'online').length === 3, 10_000, '3 online');
    const snapshot = live.snapshot('hst_virtual');
    expect(snapshot.map((update) => update.serial).sort()).toEqual(['CPVIRT0001', 'CPVIRT0002', 'CPVIRT0003']);
    expect(snapshot.every((update) => update.kind === 'virtual' && update.info !== null)).toBe(true);
    expect(live.hostStatus('hst_virtual').status).toBe('connected');
    const adb = live.adb('hst_virtual', 'CPVIRT0002');
    expect(await adb!.getProp('ro.serialno')).toBe('CPVIRT0002');
    const count = updates.length;
    await live.removeHost('hst_virtual');
    expect(updates.length).toBe(count);
    expect(live.snapshot()).toEqual([]);
  });
});
