import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConflictError, DeviceHandle, LeaseHandle, LeaseNotGrantedError, type Lease } from '../src/index.js';
import { JSON_HEADERS, mockClient, problem, PROBLEM_HEADERS } from './helpers.js';

const LEASE_ID = 'lse_01JDX7M3N4P5Q6R7S8T9V0W1X2';
const DEVICE_ID = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';

function lease(overrides: Partial<Lease> = {}): Lease {
  return {
    id: LEASE_ID,
    status: 'granted',
    userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
    username: 'alice',
    selector: {},
    count: 1,
    ttlSeconds: 90,
    note: null,
    project: null,
    createdAt: '2026-11-20T09:30:00Z',
    waitUntil: null,
    queuePosition: null,
    grantedAt: '2026-11-20T09:30:00Z',
    expiresAt: '2026-11-20T09:31:30Z',
    endedAt: null,
    endReason: null,
    devices: [{ id: DEVICE_ID, serial: 'CPVIRT0001', model: 'Virtual', sdk: 34, kind: 'virtual', reset: null }],
    ...overrides,
  };
}

const queued = lease({ status: 'queued', queuePosition: 2, grantedAt: null, expiresAt: null, devices: [] });
const released = lease({ status: 'released', endedAt: '2026-11-20T09:31:00Z', endReason: 'released' });
const LEASE_PATH = `/v1/leases/${LEASE_ID}`;
const isGetLease = (path: string) => path.startsWith(`${LEASE_PATH}?`) || path === LEASE_PATH;

afterEach(() => {
  vi.useRealTimers();
});

describe('leases.create', () => {
  it('answers a granted lease as a LeaseHandle whose devices are DeviceHandles with the LeaseDevice fields', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(201, lease(), { headers: JSON_HEADERS });

    const handle = await client.leases.create({ selector: { kind: 'virtual' } });
    expect(handle).toBeInstanceOf(LeaseHandle);
    expect(handle.status).toBe('granted');
    expect(handle.devices).toHaveLength(1);
    const [device] = handle.devices;
    expect(device).toBeInstanceOf(DeviceHandle);
    expect({ id: device!.id, serial: device!.serial, sdk: device!.sdk, kind: device!.kind }).toEqual({
      id: DEVICE_ID,
      serial: 'CPVIRT0001',
      sdk: 34,
      kind: 'virtual',
    });
    expect(handle.toJSON()).toEqual(lease());
  });

  it('waits for a queued lease with long polls of getLease until it is granted', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(202, queued, { headers: JSON_HEADERS });
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, { ...queued, queuePosition: 1 }, { headers: JSON_HEADERS });
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, lease(), { headers: JSON_HEADERS });

    const handle = await client.leases.create({ count: 1, waitSeconds: 120 });
    expect(handle.status).toBe('granted');
    expect(handle.queuePosition).toBe(null);
    expect(handle.devices.map((d) => d.id)).toEqual([DEVICE_ID]);
    const polls = calls().filter((call) => call.method === 'GET');
    expect(polls).toHaveLength(2);
    for (const poll of polls) expect(Number(new URL(poll.fullUrl).searchParams.get('waitSeconds'))).toBe(60);
  });

  it('does not wait without waitSeconds', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(202, queued, { headers: JSON_HEADERS });
    const handle = await client.leases.create({});
    expect(handle.status).toBe('queued');
    expect(calls()).toHaveLength(1);
  });

  it('rejects with LeaseNotGrantedError when the queued lease times out', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(202, queued, { headers: JSON_HEADERS });
    const timedOut = { ...queued, status: 'timed_out' as const, queuePosition: null, endReason: 'timed_out' as const };
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, timedOut, { headers: JSON_HEADERS });

    const error = await client.leases.create({ waitSeconds: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseNotGrantedError);
    expect((error as LeaseNotGrantedError).status).toBe('timed_out');
    expect((error as LeaseNotGrantedError).lease.endReason).toBe('timed_out');
  });

  it('cancels the queued lease when the caller aborts the wait', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(202, queued, { headers: JSON_HEADERS });
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, queued, { headers: JSON_HEADERS }).delay(200);
    pool
      .intercept({ path: `${LEASE_PATH}/release`, method: 'POST' })
      .reply(200, { ...queued, status: 'cancelled', endReason: 'cancelled' }, { headers: JSON_HEADERS });

    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(client.leases.create({ waitSeconds: 60 }, { signal: controller.signal })).rejects.toThrow(/abort/i);
    expect(calls().map((call) => `${call.method} ${call.path}`)).toContain(`POST ${LEASE_PATH}/release`);
  });

  it('get answers a LeaseHandle', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, lease(), { headers: JSON_HEADERS });
    const handle = await client.leases.get(LEASE_ID);
    expect(handle).toBeInstanceOf(LeaseHandle);
    expect(handle.devices[0]).toBeInstanceOf(DeviceHandle);
  });
});

describe('LeaseHandle', () => {
  it('renews, refreshes and releases, updating its fields', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, lease(), { headers: JSON_HEADERS });
    pool
      .intercept({ path: `${LEASE_PATH}/renew`, method: 'POST' })
      .reply(200, lease({ expiresAt: '2026-11-20T10:00:00Z' }), { headers: JSON_HEADERS });
    pool.intercept({ path: `${LEASE_PATH}/release`, method: 'POST' }).reply(200, released, { headers: JSON_HEADERS });

    const handle = await client.leases.get(LEASE_ID);
    const device = handle.devices[0];
    await handle.renew(1800);
    expect(handle.expiresAt).toBe('2026-11-20T10:00:00Z');
    expect(JSON.parse(String(calls()[1]!.body))).toEqual({ ttlSeconds: 1800 });
    await handle.release();
    expect(handle.status).toBe('released');
    expect(handle.endReason).toBe('released');
    expect(handle.devices[0]).toBe(device); // the same handle, updated
  });

  it('keepAlive renews every ttl/3 until stopped', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: `${LEASE_PATH}/renew`, method: 'POST' }).reply(200, lease(), { headers: JSON_HEADERS }).times(5);

    const handle = new LeaseHandle(client, lease({ ttlSeconds: 90 }));
    const stop = handle.keepAlive();
    await vi.advanceTimersByTimeAsync(29_000);
    expect(calls()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls()).toHaveLength(3);
    await stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls()).toHaveLength(3);
    expect(calls().every((call) => call.path === `${LEASE_PATH}/renew`)).toBe(true);
  });

  it('keepAlive stops when the lease has ended and reports it from stop()', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { pool, client, calls } = mockClient();
    pool
      .intercept({ path: `${LEASE_PATH}/renew`, method: 'POST' })
      .reply(409, problem(409, 'lease_not_active'), { headers: PROBLEM_HEADERS });

    const errors: unknown[] = [];
    const stop = new LeaseHandle(client, lease()).keepAlive({ intervalMs: 1000, onError: (error) => errors.push(error) });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls()).toHaveLength(1);
    expect(errors).toHaveLength(1);
    await expect(stop()).rejects.toBeInstanceOf(ConflictError);
  });

  it('waitUntilGranted gives up with status queued after its own timeout', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: isGetLease, method: 'GET' }).reply(200, queued, { headers: JSON_HEADERS }).persist();
    const handle = new LeaseHandle(client, queued);
    const error = await handle.waitUntilGranted({ timeoutSeconds: 0.2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseNotGrantedError);
    expect((error as LeaseNotGrantedError).status).toBe('queued');
  });
});

describe('leases.use', () => {
  it('creates, runs fn, releases, and returns fn’s result', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(201, lease(), { headers: JSON_HEADERS });
    pool.intercept({ path: `${LEASE_PATH}/release`, method: 'POST' }).reply(200, released, { headers: JSON_HEADERS });

    const result = await client.leases.use({ selector: {} }, async (held, { signal }) => {
      expect(held.status).toBe('granted');
      expect(signal.aborted).toBe(false);
      return held.devices.map((d) => d.serial);
    });
    expect(result).toEqual(['CPVIRT0001']);
    expect(calls().map((call) => `${call.method} ${call.path}`)).toEqual(['POST /v1/leases', `POST ${LEASE_PATH}/release`]);
  });

  it('releases when fn throws, and rethrows fn’s error', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(201, lease(), { headers: JSON_HEADERS });
    pool.intercept({ path: `${LEASE_PATH}/release`, method: 'POST' }).reply(200, released, { headers: JSON_HEADERS });

    const boom = new Error('test failed');
    await expect(
      client.leases.use({}, async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(calls().map((call) => call.path)).toEqual(['/v1/leases', `${LEASE_PATH}/release`]);
  });

  it('releases when the caller aborts, and aborts fn’s signal', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(201, lease(), { headers: JSON_HEADERS });
    pool.intercept({ path: `${LEASE_PATH}/release`, method: 'POST' }).reply(200, released, { headers: JSON_HEADERS });

    const controller = new AbortController();
    const error = await client.leases
      .use(
        {},
        (_held, { signal }) =>
          new Promise((_resolve, reject) => {
            signal.addEventListener('abort', () => reject(new Error('aborted inside')));
            setTimeout(() => controller.abort(), 10);
          }),
        { signal: controller.signal },
      )
      .catch((e: unknown) => e);
    expect((error as Error).message).toBe('aborted inside');
    expect(calls().map((call) => call.path)).toEqual(['/v1/leases', `${LEASE_PATH}/release`]);
  });

  it('keeps the lease renewed while fn runs', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(201, lease(), { headers: JSON_HEADERS });
    pool.intercept({ path: `${LEASE_PATH}/renew`, method: 'POST' }).reply(200, lease(), { headers: JSON_HEADERS }).persist();
    pool.intercept({ path: `${LEASE_PATH}/release`, method: 'POST' }).reply(200, released, { headers: JSON_HEADERS });

    await client.leases.use({}, () => new Promise((resolve) => setTimeout(resolve, 130)), { renew: { intervalMs: 50 } });
    const paths = calls().map((call) => call.path);
    expect(paths[0]).toBe('/v1/leases');
    expect(paths.at(-1)).toBe(`${LEASE_PATH}/release`);
    expect(paths.filter((path) => path.endsWith('/renew')).length).toBeGreaterThanOrEqual(2);
  });

  it('releases on SIGINT before the process handles the signal', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(201, lease(), { headers: JSON_HEADERS });
    pool.intercept({ path: `${LEASE_PATH}/release`, method: 'POST' }).reply(200, released, { headers: JSON_HEADERS });
    // Another listener: the SDK then leaves the signal to it instead of raising it again.
    const other = vi.fn();
    process.on('SIGINT', other);
    try {
      const error = await client.leases
        .use({}, (_held, { signal }) => {
          setTimeout(() => process.emit('SIGINT', 'SIGINT'), 10);
          return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(calls().map((call) => call.path)).toEqual(['/v1/leases', `${LEASE_PATH}/release`]);
      expect(other).toHaveBeenCalledTimes(1);
      expect(process.listenerCount('SIGINT')).toBe(1);
    } finally {
      process.off('SIGINT', other);
    }
  });

  it('does not call fn when no device is free, and has nothing to release', async () => {
    const { pool, client, calls } = mockClient({ maxRetries: 0 });
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(409, problem(409, 'no_devices_available'), { headers: PROBLEM_HEADERS });
    const fn = vi.fn();
    await expect(client.leases.use({}, fn)).rejects.toBeInstanceOf(ConflictError);
    expect(fn).not.toHaveBeenCalled();
    expect(calls()).toHaveLength(1);
  });
});
