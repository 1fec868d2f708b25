import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APKS } from '../helpers/apk-fixtures.js';
import { allDevices, eventually, leaseDevice, release, type Json } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

const DEVICES = 10;

let api: Api;
let member: Caller;
let other: Caller;
let viewer: Caller;
let devices: Json[];

beforeAll(async () => {
  api = await startApi({ virtualDevices: DEVICES });
  member = await api.addCaller('member');
  other = await api.addCaller('member');
  viewer = await api.addCaller('viewer');
  devices = await eventually(async () => {
    const online = await allDevices(api, viewer.token, { state: 'online' });
    return online.length === DEVICES && online.every((d) => d.available) ? online : undefined;
  }, 30_000, `${DEVICES} devices online`);
}, 60_000);

afterAll(async () => {
  await api?.close();
});

/** Waits until every device is available again (after releases, resets run in the background). */
async function allAvailable(): Promise<void> {
  await eventually(async () => (await allDevices(api, viewer.token, { available: true })).length === DEVICES, 30_000, 'all available');
}

async function getLease(token: string, leaseId: string): Promise<Json> {
  const got = await api.call('getLease', { token, path: { leaseId } });
  expect(got.status).toBe(200);
  return got.body;
}

describe('concurrent leases', () => {
  it('grants 10 of 200 at once, queues 190 in order, and grants them in creation order as devices return', { timeout: 90_000 }, async () => {
    const responses = await Promise.all(
      Array.from({ length: 200 }, () => api.call('createLease', { token: member.token, body: { waitSeconds: 60, ttlSeconds: 900 } })),
    );
    const granted = responses.filter((r) => r.status === 201).map((r) => r.body);
    const queued = responses.filter((r) => r.status === 202).map((r) => r.body);
    expect([granted.length, queued.length]).toEqual([10, 190]);
    expect(granted.every((l) => l.status === 'granted' && l.devices.length === 1)).toBe(true);
    expect(new Set(granted.map((l) => l.devices[0].id)).size).toBe(10);
    expect(queued.every((l) => l.status === 'queued')).toBe(true);
    const positions = queued.map((l) => l.queuePosition as number).sort((a, b) => a - b);
    expect(positions).toEqual(Array.from({ length: 190 }, (_, i) => i + 1));

    // The queue in creation order (ULIDs sort by creation; ties broken by the position the server gave).
    const order = [...queued].sort((a, b) => a.queuePosition - b.queuePosition);
    const holding = new Map<string, string>(granted.map((l) => [l.id, l.devices[0].id]));
    const active = [...granted];
    for (let next = 0; next < 20; next += 1) {
      const done = active.shift()!;
      await release(api, member.token, done.id);
      holding.delete(done.id);
      const expected = order[next]!;
      const now = await eventually(async () => {
        const lease = await api.call('getLease', { token: member.token, path: { leaseId: expected.id }, query: { waitSeconds: 10 } });
        return lease.body.status === 'granted' ? lease.body : undefined;
      }, 30_000, `queued lease #${next + 1} granted`);
      // Nobody behind it was granted first.
      const behind = await getLease(member.token, order[next + 1]!.id);
      expect(behind.status).toBe('queued');
      expect(behind.queuePosition).toBe(1);
      const device = now.devices[0].id as string;
      expect([...holding.values()]).not.toContain(device);
      holding.set(now.id, device);
      active.push(now);
    }
    // No device in two granted leases.
    const listed = await api.call('listLeases', { token: member.token, query: { status: ['granted'], limit: 100 } });
    const held = listed.body.data.flatMap((l: Json) => l.devices.map((d: Json) => d.id));
    expect(new Set(held).size).toBe(held.length);
    expect(held.length).toBe(10);

    // Clean up: cancel the rest of the queue, release the holders.
    for (const lease of order.slice(20)) {
      const cancelled = await api.call('releaseLease', { token: member.token, path: { leaseId: lease.id } });
      expect(cancelled.body).toMatchObject({ status: 'cancelled', endReason: 'cancelled' });
    }
    for (const lease of active) await release(api, member.token, lease.id);
    await allAvailable();
  });
});

describe('lease lifecycle', () => {
  it('replays an idempotent retry; refuses a reused key with another body', async () => {
    const headers = { 'idempotency-key': `lease-${Date.now()}` };
    const body = { count: 1, ttlSeconds: 600, note: 'idempotent' };
    const first = await api.call('createLease', { token: member.token, headers, body });
    expect(first.status).toBe(201);
    const again = await api.call('createLease', { token: member.token, headers, body });
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const reused = await api.call('createLease', { token: member.token, headers, body: { ...body, count: 2 } });
    expect([reused.status, reused.body.code]).toEqual([422, 'idempotency_key_reused']);
    await release(api, member.token, first.body.id);
    await allAvailable();
  });

  it('refuses with 409 no_devices_available or 422 selector_unsatisfiable', async () => {
    const none = await api.call('createLease', { token: member.token, body: { selector: { kind: 'physical' } } });
    expect([none.status, none.body.code]).toEqual([422, 'selector_unsatisfiable']);
    const tooMany = await api.call('createLease', { token: member.token, body: { count: DEVICES + 1 } });
    expect([tooMany.status, tooMany.body.code]).toEqual([422, 'selector_unsatisfiable']);
    const all = await api.call('createLease', { token: member.token, body: { count: DEVICES } });
    expect(all.status).toBe(201);
    const busy = await api.call('createLease', { token: other.token, body: {} });
    expect([busy.status, busy.body.code]).toEqual([409, 'no_devices_available']);
    await release(api, member.token, all.body.id);
    await allAvailable();
  });

  it('renews; force-release by an admin; a second release is unchanged; lease_not_active', async () => {
    const lease = await leaseDevice(api, member.token, devices[0]!.id, 60);
    const renewed = await api.call('renewLease', { token: member.token, path: { leaseId: lease.id }, body: { ttlSeconds: 3600 } });
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expiresAt) - api.clock.now().getTime()).toBe(3600 * 1000);
    const stranger = await api.call('releaseLease', { token: other.token, path: { leaseId: lease.id } });
    expect(stranger.status).toBe(404);
    const forced = await api.call('releaseLease', { token: api.admin.token, path: { leaseId: lease.id } });
    expect(forced.body).toMatchObject({ status: 'released', endReason: 'force_released' });
    const twice = await api.call('releaseLease', { token: member.token, path: { leaseId: lease.id } });
    expect(twice.status).toBe(200);
    expect(twice.body.endReason).toBe('force_released');
    const late = await api.call('renewLease', { token: member.token, path: { leaseId: lease.id } });
    expect([late.status, late.body.code]).toEqual([409, 'lease_not_active']);
    await allAvailable();
  });

  it('expires on the injected clock', { timeout: 30_000 }, async () => {
    const lease = await leaseDevice(api, member.token, devices[1]!.id, 30);
    api.clock.advance(31);
    const expired = await eventually(async () => {
      const got = await getLease(member.token, lease.id);
      return got.status === 'expired' ? got : undefined;
    }, 10_000, 'expired');
    expect(expired.endReason).toBe('expired');
    const refused = await api.call('runDeviceShell', { token: member.token, path: { deviceId: devices[1]!.id }, body: { command: 'true' } });
    expect([refused.status, refused.body.code]).toEqual([403, 'lease_required']);
    await allAvailable();
  });

  it('long-polls a queued lease until it is granted', { timeout: 30_000 }, async () => {
    const holding = await api.call('createLease', { token: member.token, body: { count: DEVICES } });
    expect(holding.status).toBe(201);
    const waiting = await api.call('createLease', { token: other.token, body: { waitSeconds: 60 } });
    expect(waiting.status).toBe(202);
    const poll = api.call('getLease', { token: other.token, path: { leaseId: waiting.body.id }, query: { waitSeconds: 30 } });
    await release(api, member.token, holding.body.id);
    const polled = await poll;
    expect(polled.body.status).toBe('granted');
    await release(api, other.token, waiting.body.id);
    await allAvailable();
  });

  it('resets the device on release: installed packages removed, /data/local/tmp cleared', { timeout: 60_000 }, async () => {
    const deviceId = devices[2]!.id;
    const path = { deviceId };
    const lease = await leaseDevice(api, member.token, deviceId);
    const apk = await readFile(APKS.settings);
    const pushed = await api.call('pushDeviceFile', {
      token: member.token,
      path,
      query: { path: '/data/local/tmp/settings.apk' },
      rawBody: apk,
      contentType: 'application/octet-stream',
    });
    expect(pushed.status).toBe(201);
    const installed = await api.call('runDeviceShell', {
      token: member.token,
      path,
      body: { command: 'pm install /data/local/tmp/settings.apk' },
    });
    expect(installed.body).toMatchObject({ exitCode: 0 });
    const packages = await api.call('listDevicePackages', { token: member.token, path, query: { thirdParty: true } });
    expect(packages.body.data.map((p: Json) => p.packageName)).toContain('io.appium.settings');

    await release(api, member.token, lease.id);
    const reset = await eventually(async () => {
      const got = await getLease(member.token, lease.id);
      return got.devices[0].reset ?? undefined;
    }, 30_000, 'reset recorded');
    expect(reset).toMatchObject({ status: 'succeeded', uninstalled: ['io.appium.settings'], clearedTmp: true, error: null });

    await eventually(async () => (await api.call('getDevice', { token: viewer.token, path })).body.available, 30_000, 'available');
    const next = await leaseDevice(api, other.token, deviceId);
    const gone = await api.call('pullDeviceFile', { token: other.token, path, query: { path: '/data/local/tmp/settings.apk' } });
    expect([gone.status, gone.body.code]).toEqual([404, 'file_not_found']);
    const after = await api.call('listDevicePackages', { token: other.token, path, query: { thirdParty: true } });
    expect(after.body.data.map((p: Json) => p.packageName)).not.toContain('io.appium.settings');
    await release(api, other.token, next.id);
  });

  it('removes what a holder left in shared storage and /data/local/tmp; the next holder sees none of it', { timeout: 60_000 }, async () => {
    const deviceId = devices[3]!.id;
    const path = { deviceId };
    const lease = await leaseDevice(api, member.token, deviceId);
    const push = async (file: string, text: string) => {
      const pushed = await api.call('pushDeviceFile', {
        token: member.token,
        path,
        query: { path: file },
        rawBody: text,
        contentType: 'application/octet-stream',
      });
      expect(pushed.status).toBe(201);
    };
    await push('/sdcard/Download/secret.txt', 'the first holder\'s secret');
    await push('/sdcard/Pictures/holiday/beach.jpg', 'not really a picture');
    await push('/data/local/tmp/tool.sh', 'echo hi');
    // A folder the device had when the lease was granted is deleted: the reset cannot bring it back.
    const removed = await api.call('runDeviceShell', { token: member.token, path, body: { command: 'rm -r /sdcard/Download' } });
    expect(removed.body).toMatchObject({ exitCode: 0 });

    await release(api, member.token, lease.id);
    const reset = await eventually(async () => {
      const got = await getLease(member.token, lease.id);
      return got.devices[0].reset ?? undefined;
    }, 30_000, 'reset recorded');
    expect(reset.removed).toEqual(['/data/local/tmp/tool.sh', '/sdcard/Pictures']);
    expect(reset.differences).toEqual(['/sdcard/Download: deleted during the lease']);
    expect(reset).toMatchObject({ status: 'failed', clearedTmp: true });
    const events = await api.call('listEvents', {
      token: api.admin.token,
      query: { type: ['device.reset'], subjectId: deviceId, limit: 100 },
    });
    expect(events.body.data.find((event: Json) => event.data.leaseId === lease.id).data.reset).toEqual(reset);

    await eventually(async () => (await api.call('getDevice', { token: viewer.token, path })).body.available, 30_000, 'available');
    const next = await leaseDevice(api, other.token, deviceId);
    const listing = await api.call('listDeviceFiles', { token: other.token, path, query: { path: '/sdcard' } });
    expect(listing.status).toBe(200);
    expect(listing.body.entries.map((entry: Json) => entry.name)).not.toContain('Pictures');
    for (const file of ['/sdcard/Pictures/holiday/beach.jpg', '/data/local/tmp/tool.sh', '/sdcard/Download/secret.txt']) {
      const gone = await api.call('pullDeviceFile', { token: other.token, path, query: { path: file } });
      expect([gone.status, gone.body.code]).toEqual([404, 'file_not_found']);
    }
    await release(api, other.token, next.id);
  });
});
