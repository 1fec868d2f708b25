import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  APIConnectionError,
  APITimeoutError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
} from '../src/index.js';
import { backoff, parseRetryAfter, retryDelay } from '../src/core/retry.js';
import { JSON_HEADERS, me, mockClient, problem, PROBLEM_HEADERS, user } from './helpers.js';

function connectionError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:8080`), { code });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('retries', () => {
  it('retries connection errors with exponential backoff', async () => {
    const { pool, client, delays, calls, agent } = mockClient();
    pool.intercept({ path: '/v1/me' }).replyWithError(connectionError('ECONNRESET')).times(2);
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(calls()).toHaveLength(3);
    expect(delays).toEqual([500, 1000]);
    agent.assertNoPendingInterceptors();
  });

  it('gives up after maxRetries with the connection error', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/me' }).replyWithError(connectionError('ECONNRESET')).times(3);

    const error = await client.me.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APIConnectionError);
    expect((error as APIConnectionError).cause).toMatchObject({ code: 'ECONNRESET' });
    expect(calls()).toHaveLength(3);
  });

  it('retries 408', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/me' }).reply(408, problem(408, 'request_timeout'), { headers: PROBLEM_HEADERS });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(calls()).toHaveLength(2);
  });

  it.each([500, 502, 503])('retries %i', async (status) => {
    const { pool, client, calls, delays } = mockClient();
    pool.intercept({ path: '/v1/me' }).reply(status, problem(status, 'internal_error'), { headers: PROBLEM_HEADERS });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(calls()).toHaveLength(2);
    expect(delays).toEqual([500]);
  });

  it('waits Retry-After seconds on 429', async () => {
    const { pool, client, delays } = mockClient();
    pool
      .intercept({ path: '/v1/me' })
      .reply(429, problem(429, 'rate_limited'), { headers: { ...PROBLEM_HEADERS, 'retry-after': '3' } });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(delays).toEqual([3000]);
  });

  it('waits until a Retry-After date on 429', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-11-20T09:30:00Z'));
    const { pool, client, delays } = mockClient();
    pool.intercept({ path: '/v1/me' }).reply(429, problem(429, 'rate_limited'), {
      headers: { ...PROBLEM_HEADERS, 'retry-after': 'Fri, 20 Nov 2026 09:30:42 GMT' },
    });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(delays).toEqual([42_000]);
  });

  it('does not retry when Retry-After asks for more than 60 s', async () => {
    const { pool, client, delays, calls } = mockClient();
    pool
      .intercept({ path: '/v1/me' })
      .reply(429, problem(429, 'rate_limited'), { headers: { ...PROBLEM_HEADERS, 'retry-after': '61' } });

    const error = await client.me.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).headers['retry-after']).toBe('61');
    expect(calls()).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it.each([
    [400, 'validation_failed', BadRequestError],
    [401, 'invalid_token', AuthenticationError],
    [403, 'insufficient_role', PermissionDeniedError],
    [404, 'not_found', NotFoundError],
    [409, 'username_taken', ConflictError],
    [422, 'idempotency_key_reused', UnprocessableEntityError],
  ])('does not retry %i %s', async (status, code, ErrorClass) => {
    const { pool, client, calls, delays } = mockClient();
    pool.intercept({ path: '/v1/users', method: 'POST' }).reply(status, problem(status, code), { headers: PROBLEM_HEADERS });

    const error = await client.users
      .create({ username: 'alice', password: 'correct-horse-battery-staple', role: 'member' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ErrorClass);
    expect(error).toMatchObject({ status, code });
    expect(calls()).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  it('retries 409 idempotency_key_in_use', async () => {
    const { pool, client, calls } = mockClient();
    pool
      .intercept({ path: '/v1/users', method: 'POST' })
      .reply(409, problem(409, 'idempotency_key_in_use'), { headers: PROBLEM_HEADERS });
    pool.intercept({ path: '/v1/users', method: 'POST' }).reply(201, user, { headers: JSON_HEADERS });

    await expect(
      client.users.create({ username: 'alice', password: 'correct-horse-battery-staple', role: 'member' }),
    ).resolves.toEqual(user);
    expect(calls()).toHaveLength(2);
  });

  it('respects maxRetries from the client and per request', async () => {
    const five = mockClient({ maxRetries: 5 });
    five.pool.intercept({ path: '/v1/me' }).reply(500, problem(500, 'internal_error'), { headers: PROBLEM_HEADERS }).times(6);
    await expect(five.client.me.get()).rejects.toBeInstanceOf(InternalServerError);
    expect(five.calls()).toHaveLength(6);
    expect(five.delays).toEqual([500, 1000, 2000, 4000, 8000]);

    const none = mockClient({ maxRetries: 5 });
    none.pool.intercept({ path: '/v1/me' }).reply(500, problem(500, 'internal_error'), { headers: PROBLEM_HEADERS });
    await expect(none.client.me.get({ maxRetries: 0 })).rejects.toBeInstanceOf(InternalServerError);
    expect(none.calls()).toHaveLength(1);
  });

  it('sends the same generated Idempotency-Key on every attempt of createUser', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: '/v1/users', method: 'POST' }).reply(500, problem(500, 'internal_error'), { headers: PROBLEM_HEADERS });
    pool.intercept({ path: '/v1/users', method: 'POST' }).replyWithError(connectionError('ECONNRESET'));
    pool.intercept({ path: '/v1/users', method: 'POST' }).reply(201, user, { headers: JSON_HEADERS });

    await client.users.create({ username: 'alice', password: 'correct-horse-battery-staple', role: 'member' });
    const keys = header('idempotency-key');
    expect(keys).toHaveLength(3);
    expect(keys[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(keys).size).toBe(1);
  });

  it('generates a new Idempotency-Key per call and takes one from the options', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: '/v1/users', method: 'POST' }).reply(201, user, { headers: JSON_HEADERS }).times(3);
    const body = { username: 'alice', password: 'correct-horse-battery-staple', role: 'member' } as const;

    await client.users.create(body);
    await client.users.create(body);
    await client.users.create(body, { idempotencyKey: 'onboard-alice-1' });
    const [first, second, third] = header('idempotency-key');
    expect(first).not.toBe(second);
    expect(third).toBe('onboard-alice-1');
  });

  it('sends no Idempotency-Key to operations without one', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });
    await client.me.get();
    expect(header('idempotency-key')).toEqual([undefined]);
  });

  describe('login (a POST without Idempotency-Key)', () => {
    const credentials = { username: 'alice', password: 'correct-horse-battery-staple' };
    const pair = {
      tokenType: 'Bearer',
      accessToken: 'cpa_new',
      accessTokenExpiresAt: '2026-11-20T09:45:00Z',
      refreshToken: 'cpr_new',
      refreshTokenExpiresAt: '2026-12-20T09:30:00Z',
      user,
    };

    it.each([500, 502])('is not retried on %i', async (status) => {
      const { pool, client, calls } = mockClient();
      pool
        .intercept({ path: '/v1/auth/login', method: 'POST' })
        .reply(status, problem(status, 'internal_error'), { headers: PROBLEM_HEADERS });

      await expect(client.auth.login(credentials)).rejects.toBeInstanceOf(InternalServerError);
      expect(calls()).toHaveLength(1);
    });

    it('is not retried on a timeout', async () => {
      const { pool, client, calls } = mockClient({ timeout: 5 });
      pool.intercept({ path: '/v1/auth/login', method: 'POST' }).reply(200, pair, { headers: JSON_HEADERS }).delay(60_000);

      await expect(client.auth.login(credentials)).rejects.toBeInstanceOf(APITimeoutError);
      expect(calls()).toHaveLength(1);
    });

    it('is not retried when the connection broke after connecting', async () => {
      const { pool, client, calls } = mockClient();
      pool.intercept({ path: '/v1/auth/login', method: 'POST' }).replyWithError(connectionError('ECONNRESET'));

      await expect(client.auth.login(credentials)).rejects.toBeInstanceOf(APIConnectionError);
      expect(calls()).toHaveLength(1);
    });

    it('is retried when the connection could not be made', async () => {
      const { pool, client, calls } = mockClient();
      pool.intercept({ path: '/v1/auth/login', method: 'POST' }).replyWithError(connectionError('ECONNREFUSED'));
      pool.intercept({ path: '/v1/auth/login', method: 'POST' }).reply(200, pair, { headers: JSON_HEADERS });

      await expect(client.auth.login(credentials)).resolves.toEqual(pair);
      expect(calls()).toHaveLength(2);
    });

    it.each([429, 503])('is retried on %i', async (status) => {
      const { pool, client, calls, delays } = mockClient();
      pool
        .intercept({ path: '/v1/auth/login', method: 'POST' })
        .reply(status, problem(status, 'too_many_login_attempts'), { headers: { ...PROBLEM_HEADERS, 'retry-after': '4' } });
      pool.intercept({ path: '/v1/auth/login', method: 'POST' }).reply(200, pair, { headers: JSON_HEADERS });

      await expect(client.auth.login(credentials)).resolves.toEqual(pair);
      expect(calls()).toHaveLength(2);
      expect(delays).toEqual([4000]);
    });
  });

  it('retries an attempt that timed out on a safe operation', async () => {
    const { pool, client, calls } = mockClient({ timeout: 5 });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS }).delay(60_000);
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(calls()).toHaveLength(2);
  });

  it('stops when the signal aborts during the wait between attempts', async () => {
    const controller = new AbortController();
    const { pool, client, calls } = mockClient({
      sleep: async () => {
        controller.abort();
      },
    });
    pool.intercept({ path: '/v1/me' }).reply(503, problem(503, 'service_unavailable'), { headers: PROBLEM_HEADERS });

    await expect(client.me.get({ signal: controller.signal })).rejects.toBeInstanceOf(APIUserAbortError);
    expect(calls()).toHaveLength(1);
  });
});

describe('retry policy', () => {
  it('backs off exponentially from 0.5 s to 8 s', () => {
    expect([0, 1, 2, 3, 4, 5].map((retry) => backoff(retry, () => 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
  });

  it('takes up to a quarter off as jitter', () => {
    expect(backoff(1, () => 0.5)).toBe(875);
    expect(backoff(4, () => 0.999_999)).toBe(6000);
  });

  it('parses Retry-After seconds and dates', () => {
    const now = Date.parse('2026-11-20T09:30:00Z');
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter(' 7 ', now)).toBe(7000);
    expect(parseRetryAfter('Fri, 20 Nov 2026 09:30:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Fri, 20 Nov 2026 09:29:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('uses Retry-After up to 60 s, the backoff without it, and refuses longer waits', () => {
    const now = Date.parse('2026-11-20T09:30:00Z');
    expect(retryDelay(0, '60', () => 0, now)).toBe(60_000);
    expect(retryDelay(0, '61', () => 0, now)).toBeNull();
    expect(retryDelay(0, 'Fri, 20 Nov 2026 09:32:00 GMT', () => 0, now)).toBeNull();
    expect(retryDelay(2, undefined, () => 0, now)).toBe(2000);
    expect(retryDelay(2, 'garbage', () => 0, now)).toBe(2000);
  });
});
