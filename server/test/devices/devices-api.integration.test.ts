import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAdbTunnel } from '../../../cli/src/lib/adb-tunnel.js';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { startAdbHost } from '../helpers/adb-host.js';
import {
  allDevices,
  eventually,
  expectRefusedUpgrade,
  leaseDevice,
  openWebSocket,
  record,
  release,
  withDeadline,
  wsUrl,
  type Json,
} from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

/**
 * Devices over real HTTP: a server with two in-process virtual devices (kind virtual), plus direct devices this file
 * starts itself (to kill them mid-operation).
 */
let api: Api;
let holder: Caller;
let stranger: Caller;
let viewer: Caller;
/** The in-process virtual devices, sorted by serial. */
let devices: Json[];
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  api = await startApi({ virtualDevices: 2 });
  holder = await api.addCaller('member');
  stranger = await api.addCaller('member');
  viewer = await api.addCaller('viewer');
  devices = await eventually(async () => {
    const online = await allDevices(api, viewer.token, { state: 'online' });
    return online.length === 2 && online.every((d) => d.properties !== null) ? online : undefined;
  }, 20_000, 'two virtual devices online');
  devices.sort((a, b) => a.serial.localeCompare(b.serial));
}, 60_000);

afterAll(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
  await api?.close();
});

describe('inventory', () => {
  it('lists with filters', async () => {
    const token = viewer.token;
    expect(devices.map((d) => d.kind)).toEqual(['virtual', 'virtual']);
    expect(devices[0]).toMatchObject({ state: 'online', connected: true, properties: { sdk: 34, model: 'Virtual Phone' } });
    expect(await allDevices(api, token, { kind: 'virtual' })).toHaveLength(2);
    expect(await allDevices(api, token, { kind: 'physical' })).toHaveLength(0);
    expect(await allDevices(api, token, { state: 'offline' })).toHaveLength(0);
    expect(await allDevices(api, token, { sdkMin: 34, sdkMax: 34 })).toHaveLength(2);
    expect(await allDevices(api, token, { sdkMin: 35 })).toHaveLength(0);
    expect(await allDevices(api, token, { sdkMax: 33 })).toHaveLength(0);
    expect(await allDevices(api, token, { hostId: devices[0]!.hostId })).toHaveLength(2);
    const page = await api.call('listDevices', { token, query: { limit: 1 } });
    expect(page.body.data).toHaveLength(1);
    expect(page.body.nextCursor).toEqual(expect.any(String));
  });

  it('gets one device; an unknown id is 404 device_not_found', async () => {
    const got = await api.call('getDevice', { token: viewer.token, path: { deviceId: devices[0]!.id } });
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: devices[0]!.id, serial: devices[0]!.serial });
    const missing = await api.call('getDevice', {
      token: viewer.token,
      path: { deviceId: 'dev_01JDX3N2Q8B7W6M4K9T5R1C0ZA' },
    });
    expect([missing.status, missing.body.code]).toEqual([404, 'device_not_found']);
  });

  it('updates labels (admin only); null removes one; the label filter ANDs', async () => {
    const path = { deviceId: devices[1]!.id };
    const refused = await api.call('updateDevice', { token: holder.token, path, body: { labels: { team: 'x' } } });
    expect([refused.status, refused.body.code]).toEqual([403, 'insufficient_role']);
    const labelled = await api.call('updateDevice', {
      token: api.admin.token,
      path,
      body: { labels: { team: 'qa', rack: 'r1' } },
    });
    expect(labelled.status).toBe(200);
    expect(labelled.body.labels).toEqual({ team: 'qa', rack: 'r1' });
    expect((await allDevices(api, viewer.token, { label: ['team=qa'] })).map((d) => d.id)).toEqual([path.deviceId]);
    expect(await allDevices(api, viewer.token, { label: ['team=qa', 'rack=r2'] })).toHaveLength(0);
    const removed = await api.call('updateDevice', { token: api.admin.token, path, body: { labels: { rack: null } } });
    expect(removed.body.labels).toEqual({ team: 'qa' });
    await api.call('updateDevice', { token: api.admin.token, path, body: { labels: { team: null } } });
  });

  it('maintenance flips state and availability and records device.state_changed', async () => {
    const path = { deviceId: devices[1]!.id };
    const on = await api.call('updateDevice', { token: api.admin.token, path, body: { maintenance: true } });
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ state: 'maintenance', available: false });
    expect((await allDevices(api, viewer.token, { available: true })).map((d) => d.id)).not.toContain(path.deviceId);
    expect((await allDevices(api, viewer.token, { state: 'maintenance' })).map((d) => d.id)).toEqual([path.deviceId]);
    // A lease cannot get it.
    const lease = await api.call('createLease', { token: holder.token, body: { selector: { deviceIds: [path.deviceId] } } });
    expect([lease.status, lease.body.code]).toEqual([409, 'no_devices_available']);
    const off = await api.call('updateDevice', { token: api.admin.token, path, body: { maintenance: false } });
    expect(off.body).toMatchObject({ state: 'online', available: true });
    const events = await api.call('listEvents', { token: api.admin.token, query: { type: ['device.state_changed'] } });
    const changes = events.body.data
      .filter((e: Json) => e.subject?.id === path.deviceId)
      .map((e: Json) => [e.data.from, e.data.to]);
    expect(changes).toEqual(expect.arrayContaining([['online', 'maintenance'], ['maintenance', 'online']]));
  });
});

describe('device operations as the holder', () => {
  let lease: Json;
  let path: { deviceId: string };
  beforeAll(async () => {
    path = { deviceId: devices[0]!.id };
    lease = await leaseDevice(api, holder.token, path.deviceId);
  });
  afterAll(async () => {
    await release(api, holder.token, lease.id);
  });

  it('runs shell commands: command and argv, exit codes, stderr, timeout', async () => {
    const token = holder.token;
    const echoed = await api.call('runDeviceShell', { token, path, body: { command: 'echo hi' } });
    expect(echoed.status).toBe(200);
    expect(echoed.body).toMatchObject({ exitCode: 0, stdout: 'hi\n', stderr: '', timedOut: false, truncated: false });
    const failing = await api.call('runDeviceShell', { token, path, body: { command: 'ls /nope' } });
    expect(failing.body).toMatchObject({ exitCode: 1, stdout: '', stderr: 'ls: /nope: No such file or directory\n' });
    const missing = await api.call('runDeviceShell', { token, path, body: { command: 'no-such-tool' } });
    expect(missing.body.exitCode).toBe(127);
    const stdin = await api.call('runDeviceShell', { token, path, body: { command: 'cat', stdin: 'from stdin\n' } });
    expect(stdin.body).toMatchObject({ exitCode: 0, stdout: 'from stdin\n' });
    const argv = await api.call('runDeviceShell', { token, path, body: { argv: ['echo', 'a  b', "it's"] } });
    expect(argv.body).toMatchObject({ exitCode: 0, stdout: "a  b it's\n" });
    const slow = await api.call('runDeviceShell', { token, path, body: { command: 'sleep 30', timeoutSeconds: 1 } });
    expect(slow.body).toMatchObject({ timedOut: true, exitCode: -1 });
    const both = await api.call('runDeviceShell', { token, path, body: { command: 'true', argv: ['true'] } });
    expect([both.status, both.body.code]).toEqual([400, 'validation_failed']);
    const neither = await api.call('runDeviceShell', { token, path, body: {} });
    expect([neither.status, neither.body.code]).toEqual([400, 'validation_failed']);
  });

  it('pushes, pulls (identical bytes) and lists files; bad and missing paths', async () => {
    const token = holder.token;
    const bytes = randomBytes(300_000);
    const pushed = await api.call('pushDeviceFile', {
      token,
      path,
      query: { path: '/data/local/tmp/blob.bin' },
      rawBody: bytes,
      contentType: 'application/octet-stream',
    });
    expect(pushed.status).toBe(201);
    expect(pushed.body).toEqual({ path: '/data/local/tmp/blob.bin', size: bytes.length });
    const pulled = await api.call('pullDeviceFile', { token, path, query: { path: '/data/local/tmp/blob.bin' }, binary: true });
    expect(pulled.status).toBe(200);
    expect(pulled.headers.get('content-length')).toBe(String(bytes.length));
    expect(Buffer.compare(pulled.body, bytes)).toBe(0);
    const listing = await api.call('listDeviceFiles', { token, path, query: { path: '/data/local/tmp' } });
    expect(listing.status).toBe(200);
    expect(listing.body.entries).toContainEqual(expect.objectContaining({ name: 'blob.bin', type: 'file', size: bytes.length }));
    // The contract's schema states the device path rules: absolute, no . or .. segments, no NUL or line breaks.
    for (const bad of ['relative/path', '/data/../etc', '/data/local/tmp/a\nb', '/data/./local']) {
      const refused = await api.call('pullDeviceFile', { token, path, query: { path: bad } });
      expect([refused.status, refused.body.code]).toEqual([400, 'validation_failed']);
    }
    const missing = await api.call('pullDeviceFile', { token, path, query: { path: '/data/local/tmp/nope' } });
    expect([missing.status, missing.body.code]).toEqual([404, 'file_not_found']);
    const missingDir = await api.call('listDeviceFiles', { token, path, query: { path: '/data/local/tmp/nope' } });
    expect([missingDir.status, missingDir.body.code]).toEqual([404, 'file_not_found']);
  });

  it('takes a PNG screenshot', async () => {
    const shot = await api.call('takeDeviceScreenshot', { token: holder.token, path, binary: true });
    expect(shot.status).toBe(200);
    expect(shot.contentType).toMatch(/^image\/png/);
    expect((shot.body as Buffer).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });

  it('injects input (204) which shows in the log, filtered by tag and priority', async () => {
    const token = holder.token;
    for (const body of [
      { type: 'tap', x: 10, y: 20 },
      { type: 'swipe', x1: 1, y1: 2, x2: 300, y2: 400, durationMs: 50 },
      { type: 'text', text: 'hello world' },
      { type: 'keyevent', key: 'HOME' },
    ]) {
      const sent = await api.call('sendDeviceInput', { token, path, body });
      expect(sent.status, JSON.stringify(body)).toBe(204);
    }
    const log = await api.call('getDeviceLogcat', { token, path, query: { tag: ['InputDispatcher'] } });
    expect(log.status).toBe(200);
    const messages = log.body.entries.map((e: Json) => e.message);
    expect(log.body.entries.every((e: Json) => e.tag === 'InputDispatcher')).toBe(true);
    for (const type of ['tap', 'swipe', 'text', 'key']) expect(messages.join('\n')).toContain(`Injected ${type}`);
    const errors = await api.call('getDeviceLogcat', { token, path, query: { priority: 'E' } });
    expect(errors.body.entries.every((e: Json) => e.priority === 'E' || e.priority === 'F')).toBe(true);
    const tail = await api.call('getDeviceLogcat', { token, path, query: { tail: 2 } });
    expect(tail.body.entries.length).toBeLessThanOrEqual(2);
  });

  it('lists packages', async () => {
    const all = await api.call('listDevicePackages', { token: holder.token, path });
    expect(all.status).toBe(200);
    expect(all.body.data.length).toBeGreaterThan(0);
    const third = await api.call('listDevicePackages', { token: holder.token, path, query: { thirdParty: true } });
    expect(third.body.data.length).toBeLessThan(all.body.data.length);
  });

  it('streams a shell over WebSocket: stdin, stdout on channel 1, exit frame', async () => {
    const opened = await openWebSocket(wsUrl(api, `/v1/devices/${path.deviceId}/shell/stream`, { command: 'cat' }), holder.token);
    if (!opened.upgraded) throw new Error(`refused: ${opened.status} ${JSON.stringify(opened.body)}`);
    const recorded = record(opened.ws);
    // Sent at once after the upgrade: the server must not lose frames that arrive while it opens the shell.
    opened.ws.send(Buffer.from('ping-'));
    opened.ws.send(Buffer.from('pong\n'));
    opened.ws.send(JSON.stringify({ type: 'eof' }));
    const closed = await withDeadline(recorded.closed, 10_000, 'close after eof').finally(() => opened.ws.terminate());
    expect(closed.code).toBe(1000);
    const stdout = recorded.messages.filter((m) => m.binary && m.data[0] === 1).map((m) => m.data.subarray(1));
    expect(Buffer.concat(stdout).toString()).toBe('ping-pong\n');
    const exit = recorded.messages.filter((m) => !m.binary).map((m) => JSON.parse(m.data.toString()));
    expect(exit.at(-1)).toEqual({ type: 'exit', exitCode: 0 });
  });

  it('follows logcat over WebSocket', async () => {
    const opened = await openWebSocket(
      wsUrl(api, `/v1/devices/${path.deviceId}/logcat/stream`, { tag: 'InputDispatcher' }),
      holder.token,
    );
    if (!opened.upgraded) throw new Error(`refused: ${opened.status} ${JSON.stringify(opened.body)}`);
    const recorded = record(opened.ws);
    // Input until an entry arrives (the follow may start after the first one).
    const entry = await eventually(async () => {
      await api.call('sendDeviceInput', { token: holder.token, path, body: { type: 'tap', x: 7, y: 7 } });
      return recorded.messages.map((m) => JSON.parse(m.data.toString()) as Json).find((e) => e.tag === 'InputDispatcher');
    }, 10_000, 'a followed entry');
    expect(entry).toMatchObject({ priority: expect.any(String), message: expect.stringContaining('Injected tap') });
    opened.ws.close();
  });

  it('refuses WebSocket upgrades without a lease with 403 lease_required (never 101)', async () => {
    for (const suffix of ['shell/stream', 'logcat/stream', 'adb']) {
      await expectRefusedUpgrade(wsUrl(api, `/v1/devices/${path.deviceId}/${suffix}`), stranger.token, 403, 'lease_required');
    }
    await expectRefusedUpgrade(wsUrl(api, `/v1/devices/${path.deviceId}/shell/stream`), undefined, 401, 'unauthenticated');
  });

  it('tunnels the real adb to the device', { timeout: 60_000 }, async () => {
    const tunnel = await openAdbTunnel({
      url: wsUrl(api, `/v1/devices/${path.deviceId}/adb`),
      headers: { authorization: `Bearer ${holder.token}` },
    });
    const adb = await startAdbHost();
    const dir = await mkdtemp(join(tmpdir(), 'cloudphone-tunnel-'));
    try {
      const serial = `127.0.0.1:${tunnel.port}`;
      expect((await adb.run('connect', serial)).stdout).toContain('connected');
      await eventually(async () => (await adb.run('-s', serial, 'get-state')).stdout.trim() === 'device', 15_000, 'device state');
      const echoed = await adb.run('-s', serial, 'shell', 'echo', 'hi');
      expect(echoed.stdout.trim()).toBe('hi');
      const local = join(dir, 'up.bin');
      const bytes = randomBytes(100_000);
      await writeFile(local, bytes);
      expect((await adb.run('-s', serial, 'push', local, '/data/local/tmp/tunnel.bin')).code).toBe(0);
      expect((await adb.run('-s', serial, 'pull', '/data/local/tmp/tunnel.bin', join(dir, 'down.bin'))).code).toBe(0);
      expect(Buffer.compare(await readFile(join(dir, 'down.bin')), bytes)).toBe(0);
      await adb.run('disconnect', serial);
    } finally {
      await tunnel.close();
      await adb.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reboots and waits until the device is back', { timeout: 60_000 }, async () => {
    const rebooted = await api.call('rebootDevice', { token: holder.token, path, body: { wait: true, timeoutSeconds: 60 } });
    expect(rebooted.status).toBe(200);
    expect(rebooted.body).toMatchObject({ id: path.deviceId, state: 'online', connected: true });
    const after = await api.call('runDeviceShell', { token: holder.token, path, body: { command: 'echo back' } });
    expect(after.body.stdout).toBe('back\n');
  });
});

describe('lease enforcement', () => {
  it('only the holder and admins operate; after release the holder is refused; open sessions close with 4001', async () => {
    const path = { deviceId: devices[1]!.id };
    const lease = await leaseDevice(api, holder.token, path.deviceId);
    const tmp = { path: '/data/local/tmp' };
    const attempts: [Parameters<Api['call']>[0], Parameters<Api['call']>[1]][] = [
      ['runDeviceShell', { path, body: { command: 'echo hi' } }],
      ['listDeviceFiles', { path, query: tmp }],
      ['pullDeviceFile', { path, query: { path: '/system/build.prop' } }],
      ['pushDeviceFile', { path, query: { path: '/data/local/tmp/x' }, rawBody: 'x', contentType: 'application/octet-stream' }],
      ['takeDeviceScreenshot', { path }],
      ['getDeviceLogcat', { path }],
      ['sendDeviceInput', { path, body: { type: 'tap', x: 1, y: 1 } }],
      ['listDevicePackages', { path }],
      ['rebootDevice', { path, body: { wait: false } }],
    ];
    for (const [operationId, options] of attempts) {
      const refused = await api.call(operationId, { ...options, token: stranger.token });
      expect([operationId, refused.status, refused.body?.code]).toEqual([operationId, 403, 'lease_required']);
    }
    const asAdmin = await api.call('runDeviceShell', { token: api.admin.token, path, body: { command: 'echo admin' } });
    expect(asAdmin.body).toMatchObject({ exitCode: 0, stdout: 'admin\n' });

    const opened = await openWebSocket(wsUrl(api, `/v1/devices/${path.deviceId}/shell/stream`, { command: 'cat' }), holder.token);
    if (!opened.upgraded) throw new Error(`refused: ${opened.status}`);
    const recorded = record(opened.ws);
    await release(api, holder.token, lease.id);
    const closed = await withDeadline(recorded.closed, 10_000, 'session closed on release');
    expect(closed.code).toBe(4001);
    for (const [operationId, options] of attempts.slice(0, 3)) {
      const refused = await api.call(operationId, { ...options, token: holder.token });
      expect([operationId, refused.status, refused.body?.code]).toEqual([operationId, 403, 'lease_required']);
    }
  });
});

describe('a device going away mid-operation', () => {
  /** A device of this file's own, added as a direct host, leased by the holder. */
  async function directDevice(): Promise<{ device: VirtualDevice; deviceId: string; hostId: string; leaseId: string }> {
    const device = await startVirtualDevice({ port: 0, profile: defaultProfile(7) });
    cleanup.push(() => device.close());
    const address = `127.0.0.1:${device.port}`;
    const host = await api.call('createHost', { token: api.admin.token, body: { type: 'adb_device', address } });
    expect(host.status).toBe(201);
    cleanup.push(() => api.call('deleteHost', { token: api.admin.token, path: { hostId: host.body.id } }));
    const found = await eventually(async () => {
      const list = await allDevices(api, viewer.token, { hostId: host.body.id, state: 'online' });
      return list[0];
    }, 15_000, 'direct device online');
    const lease = await leaseDevice(api, holder.token, found.id);
    return { device, deviceId: found.id, hostId: host.body.id, leaseId: lease.id };
  }

  it('killed mid-shell → 409 device_offline promptly; the server stays healthy', { timeout: 30_000 }, async () => {
    const { device, deviceId, leaseId } = await directDevice();
    const running = api.call('runDeviceShell', {
      token: holder.token,
      path: { deviceId },
      body: { command: 'sleep 30', timeoutSeconds: 60 },
    });
    // Give the command a moment to start; the outcome is the same if it has not yet.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await device.close();
    const failed = await withDeadline(running, 10_000, 'the shell to fail');
    expect([failed.status, failed.body.code]).toEqual([409, 'device_offline']);
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    const other = await leaseDevice(api, stranger.token, devices[1]!.id);
    const works = await api.call('runDeviceShell', { token: stranger.token, path: { deviceId: devices[1]!.id }, body: { command: 'echo ok' } });
    expect(works.body.stdout).toBe('ok\n');
    await release(api, stranger.token, other.id);
    const offline = await eventually(async () => {
      const got = await api.call('getDevice', { token: viewer.token, path: { deviceId } });
      return got.body.state === 'offline' ? got.body : undefined;
    }, 5000, 'offline in the inventory');
    expect(offline.connected).toBe(false);
    await release(api, holder.token, leaseId);
  });

  it('killed mid-push → device_offline, never 500', { timeout: 30_000 }, async () => {
    const { device, deviceId, leaseId } = await directDevice();
    let sent = 0;
    let kill: () => void = () => undefined;
    const killed = new Promise<void>((resolve) => (kill = resolve));
    // The body is pulled only as the server consumes it: past 16 MiB (more than any socket buffers hold), the
    // server is forwarding it to the device, and the device is killed.
    // Once the device is killed the body stalls; the client aborts the upload once the answer is in. (The server
    // neither drains nor closes the rest of the upload after answering: see the report.)
    const upload = new AbortController();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        upload.signal.addEventListener('abort', () => controller.error(new Error('upload abandoned')));
      },
      async pull(controller) {
        if (sent >= 16 * 1024 * 1024) {
          kill();
          await new Promise((resolve) => upload.signal.addEventListener('abort', resolve));
          return;
        }
        sent += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const pushing = api.call('pushDeviceFile', {
      token: holder.token,
      path: { deviceId },
      query: { path: '/data/local/tmp/big.bin' },
      rawBody: body,
      contentType: 'application/octet-stream',
      signal: upload.signal,
    }).catch((error: unknown) => ({ status: 0, body: { code: String(error) } }))
      .finally(() => upload.abort());
    await killed;
    await device.close();
    const failed = await withDeadline(pushing, 15_000, 'the push to fail');
    expect(failed.status).not.toBe(500);
    // The server may also cut the upload short; when it answers, it says device_offline.
    if (failed.status !== 0) expect([failed.status, failed.body.code]).toEqual([409, 'device_offline']);
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    await eventually(async () => {
      const got = await api.call('getDevice', { token: viewer.token, path: { deviceId } });
      return got.body.state === 'offline';
    }, 5000, 'offline in the inventory');
    await release(api, holder.token, leaseId);
  });
});
