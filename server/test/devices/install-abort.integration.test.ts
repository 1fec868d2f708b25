import { readFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { allDevices, eventually, leaseDevice, release, type Json } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

/** Each chunk from the server to the device waits this long: a 3 MB APK then takes seconds to transfer. */
const CHUNK_DELAY_MS = 100;

/** A TCP proxy on 127.0.0.1 to `port` that slows what flows towards it, as a slow network would. */
async function startSlowProxy(port: number): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => sockets.delete(socket));
    }
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      client.pause();
      setTimeout(() => client.resume(), CHUNK_DELAY_MS);
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('an install in flight when its lease ends', () => {
  let api: Api;
  let member: Caller;
  let device: VirtualDevice;
  let proxy: Awaited<ReturnType<typeof startSlowProxy>>;
  let deviceId: string;

  beforeAll(async () => {
    device = await startVirtualDevice({ profile: defaultProfile(0) });
    proxy = await startSlowProxy(device.port);
    api = await startApi();
    member = await api.addCaller('member');
    const host = await api.call('createHost', {
      token: api.admin.token,
      body: { type: 'adb_device', address: `127.0.0.1:${proxy.port}` },
    });
    expect(host.status).toBe(201);
    const [online] = await eventually(async () => {
      const list = await allDevices(api, api.admin.token, { available: true });
      return list.length === 1 ? list : undefined;
    }, 30_000, 'the device behind the slow link');
    deviceId = online!.id as string;
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await proxy?.close();
    await device?.close();
  });

  it('is cut short, not left to finish; the reset then finds nothing to uninstall', { timeout: 60_000 }, async () => {
    const uploaded = await api.call('uploadApp', {
      token: member.token,
      rawBody: readFileSync(APKS.settings),
      contentType: 'application/octet-stream',
    });
    expect(uploaded.status).toBe(201);
    const lease = await leaseDevice(api, member.token, deviceId);
    const started = await api.call('installApp', {
      token: member.token,
      path: { appId: uploaded.body.id },
      body: { leaseId: lease.id },
    });
    expect(started.status).toBe(202);
    const jobId = started.body.id as string;
    await eventually(async () => {
      const job = await api.call('getInstallJob', { token: member.token, path: { jobId } });
      return job.body.devices[0].status === 'installing';
    }, 20_000, 'the install running');

    const releasedAt = Date.now();
    await release(api, member.token, lease.id);
    const job: Json = await eventually(async () => {
      const got = await api.call('getInstallJob', { token: member.token, path: { jobId }, query: { waitSeconds: 10 } });
      return got.body.status === 'failed' || got.body.status === 'succeeded' ? got.body : undefined;
    }, 20_000, 'the install job to end');
    // Cut short within a moment, where the transfer alone would take several seconds more.
    expect(Date.now() - releasedAt).toBeLessThan(2000);
    expect(job.devices).toMatchObject([{ deviceId, status: 'failed', reason: 'the lease on the device ended during the install' }]);

    const reset = await eventually(async () => {
      const got = await api.call('getLease', { token: member.token, path: { leaseId: lease.id } });
      return got.body.devices[0].reset ?? undefined;
    }, 30_000, 'the reset');
    expect(reset).toMatchObject({ status: 'succeeded', uninstalled: [] });
    expect(device.state.packages.get('io.appium.settings')).toBeUndefined();
  });
});
