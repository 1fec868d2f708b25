import { afterEach, describe, expect, it } from 'vitest';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { runShell } from '../../src/devices/adb/operations.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import type { DeviceUpdate, HostLiveStatus } from '../../src/devices/types.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { eventually, silentLog, testKey } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

async function adbHost(port?: number): Promise<AdbHost> {
  const host = await startAdbHost({ port });
  cleanup.push(() => host.stop());
  return host;
}

async function virtualDevice(port = 0): Promise<VirtualDevice> {
  const device = await startVirtualDevice({ port, profile: defaultProfile(0) });
  cleanup.push(() => device.close());
  return device;
}

describe('adb_server host through a real adb server', () => {
  it('tracks a connected device: online with info, offline on drop, back after adb reconnects', { timeout: 90_000 }, async () => {
    const host = await adbHost();
    let device = await virtualDevice();
    const serial = `127.0.0.1:${device.port}`;
    expect((await host.run('connect', serial)).stdout).toContain('connected');

    const live = new DeviceRegistry({ adbKey: await testKey(), log: silentLog(), retry: { initialMs: 200, maxMs: 1000 } });
    cleanup.push(() => live.close());
    const updates: (DeviceUpdate & { at: number })[] = [];
    live.onUpdate((update) => updates.push({ ...update, at: Date.now() }));
    live.addHost({ id: 'hst_server', type: 'adb_server', address: `127.0.0.1:${host.port}` });

    const online = await eventually(() => updates.find((u) => u.serial === serial && u.state === 'online'), 15_000, 'online');
    expect(online.kind).toBe('virtual');
    expect(online.info?.properties).toMatchObject({ model: 'Virtual Phone', sdk: 34, androidVersion: '14' });
    expect(live.hostStatus('hst_server').status).toBe('connected');
    const adb = live.adb('hst_server', serial)!;
    expect((await runShell(adb, 'echo through-server', { timeoutMs: 5000 })).stdout).toBe('through-server\n');

    const droppedAt = Date.now();
    const port = device.port;
    await device.close();
    const offline = await eventually(
      () => updates.find((u) => u.serial === serial && u.state === 'offline' && u.at >= droppedAt),
      5000,
      'offline',
    );
    expect(offline.at - droppedAt).toBeLessThan(1000);
    expect(live.adb('hst_server', serial)).toBeUndefined();

    // A new device on the same port: adb 29 reconnects it by itself after ~10 s.
    device = await virtualDevice(port);
    const back = await eventually(
      () => updates.find((u) => u.serial === serial && u.state === 'online' && u.at > offline.at),
      40_000,
      'back online',
    );
    expect(back.info).not.toBeNull();
    const again = live.adb('hst_server', serial)!;
    expect((await runShell(again, 'getprop ro.serialno', { timeoutMs: 5000 })).stdout).toBe('CPVIRT0001\n');
    expect(live.snapshot('hst_server')).toEqual([expect.objectContaining({ serial, state: 'online' })]);

    // Gone from the server's list (adb disconnect) → offline.
    const disconnectedAt = Date.now();
    await host.run('disconnect', serial);
    const removed = await eventually(
      () => updates.find((u) => u.serial === serial && u.state === 'offline' && u.at >= disconnectedAt),
      5000,
      'offline after adb disconnect',
    );
    expect(removed.at - disconnectedAt).toBeLessThan(1000);
  });

  it('server killed → unreachable, devices offline; restarted → recovers and re-connects the device', { timeout: 90_000 }, async () => {
    let host = await adbHost();
    const device = await virtualDevice();
    const serial = `127.0.0.1:${device.port}`;
    await host.run('connect', serial);

    const live = new DeviceRegistry({ adbKey: await testKey(), log: silentLog(), retry: { initialMs: 200, maxMs: 1000 } });
    cleanup.push(() => live.close());
    const updates: (DeviceUpdate & { at: number })[] = [];
    const statuses: HostLiveStatus[] = [];
    live.onUpdate((update) => updates.push({ ...update, at: Date.now() }));
    live.onHostStatus((_, status) => statuses.push(status));
    live.addHost({ id: 'hst_server', type: 'adb_server', address: `127.0.0.1:${host.port}` });
    await eventually(() => updates.find((u) => u.state === 'online'), 15_000, 'online');

    const killedAt = Date.now();
    const port = host.port;
    await host.stop();
    const unreachable = await eventually(() => statuses.find((s) => s.status === 'unreachable'), 5000, 'unreachable');
    expect(unreachable.lastError).toBeTruthy();
    expect(unreachable.nextRetryAt).toBeInstanceOf(Date);
    const offline = await eventually(() => updates.find((u) => u.state === 'offline' && u.at >= killedAt), 5000, 'offline');
    expect(offline.serial).toBe(serial);
    expect(live.snapshot('hst_server').every((u) => u.state === 'offline')).toBe(true);

    host = await adbHost(port);
    await eventually(() => live.hostStatus('hst_server').status === 'connected', 15_000, 'connected again');
    const back = await eventually(
      () => updates.find((u) => u.serial === serial && u.state === 'online' && u.at > offline.at),
      20_000,
      'device back online',
    );
    expect(back.info).not.toBeNull();
    expect((await host.run('devices')).stdout).toContain(`${serial}\tdevice`);
    expect((await runShell(live.adb('hst_server', serial)!, 'echo back', { timeoutMs: 5000 })).stdout).toBe('back\n');
    expect(live.hostStatus('hst_server')).toEqual({ status: 'connected', lastError: null, nextRetryAt: null });
  });
});
