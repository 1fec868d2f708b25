import { describe, expect, it, vi } from 'vitest';
import { AuthenticationError, type TokenPair } from '../src/index.js';
import { JSON_HEADERS, me, mockClient, problem, PROBLEM_HEADERS, user } from './helpers.js';

const expired = problem(401, 'token_expired', 'The access token expired; refresh it or log in again.');

function pair(n: number): TokenPair {
  return {
    tokenType: 'Bearer',
    accessToken: `cpa_${n}`,
    accessTokenExpiresAt: '2026-11-20T09:45:00Z',
    refreshToken: `cpr_${n}`,
    refreshTokenExpiresAt: '2026-12-20T09:30:00Z',
    user,
  };
}

describe('token refresh', () => {
  it('refreshes once on token_expired, retries with the new token and reports the new pair', async () => {
    const onTokenRefresh = vi.fn();
    const { pool, client, calls, agent } = mockClient({ token: 'cpa_0', refreshToken: 'cpr_0', onTokenRefresh });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_0' } }).reply(401, expired, { headers: PROBLEM_HEADERS });
    pool
      .intercept({ path: '/v1/auth/refresh', method: 'POST', body: JSON.stringify({ refreshToken: 'cpr_0' }) })
      .reply(200, pair(1), { headers: JSON_HEADERS });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_1' } }).reply(200, me, { headers: JSON_HEADERS }).times(2);

    await expect(client.me.get()).resolves.toEqual(me);
    expect(onTokenRefresh).toHaveBeenCalledTimes(1);
    expect(onTokenRefresh).toHaveBeenCalledWith(pair(1));
    const refresh = calls()[1];
    expect(refresh?.path).toBe('/v1/auth/refresh');
    expect(refresh?.headers).not.toHaveProperty('authorization');

    await expect(client.me.get()).resolves.toEqual(me);
    expect(calls()).toHaveLength(4);
    agent.assertNoPendingInterceptors();
  });

  it('rotates the refresh token and carries the new tokens into withOptions', async () => {
    const { pool, client, agent } = mockClient({ token: 'cpa_0', refreshToken: 'cpr_0' });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_0' } }).reply(401, expired, { headers: PROBLEM_HEADERS });
    pool
      .intercept({ path: '/v1/auth/refresh', method: 'POST', body: JSON.stringify({ refreshToken: 'cpr_0' }) })
      .reply(200, pair(1), { headers: JSON_HEADERS });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_1' } }).reply(200, me, { headers: JSON_HEADERS });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_1' } }).reply(401, expired, { headers: PROBLEM_HEADERS });
    pool
      .intercept({ path: '/v1/auth/refresh', method: 'POST', body: JSON.stringify({ refreshToken: 'cpr_1' }) })
      .reply(200, pair(2), { headers: JSON_HEADERS });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_2' } }).reply(200, me, { headers: JSON_HEADERS });

    await client.me.get();
    await client.withOptions({ timeout: 1000 }).me.get();
    agent.assertNoPendingInterceptors();
  });

  it('shares one refresh between concurrent calls', async () => {
    const onTokenRefresh = vi.fn();
    const { pool, client, calls } = mockClient({ token: 'cpa_0', refreshToken: 'cpr_0', onTokenRefresh });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_0' } }).reply(401, expired, { headers: PROBLEM_HEADERS }).times(2);
    pool.intercept({ path: '/v1/auth/refresh', method: 'POST' }).reply(200, pair(1), { headers: JSON_HEADERS });
    pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_1' } }).reply(200, me, { headers: JSON_HEADERS }).times(2);

    await expect(Promise.all([client.me.get(), client.me.get()])).resolves.toEqual([me, me]);
    expect(onTokenRefresh).toHaveBeenCalledTimes(1);
    expect(calls().filter((call) => call.path === '/v1/auth/refresh')).toHaveLength(1);
  });

  it('retries without refreshing when another call already replaced the expired token', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const onTokenRefresh = vi.fn();
      const { pool, client, calls } = mockClient({ token: 'cpa_0', refreshToken: 'cpr_0', onTokenRefresh });
      pool
        .intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_0' } })
        .reply(401, expired, { headers: PROBLEM_HEADERS })
        .delay(1000);
      pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_0' } }).reply(401, expired, { headers: PROBLEM_HEADERS });
      pool.intercept({ path: '/v1/auth/refresh', method: 'POST' }).reply(200, pair(1), { headers: JSON_HEADERS });
      pool.intercept({ path: '/v1/me', headers: { authorization: 'Bearer cpa_1' } }).reply(200, me, { headers: JSON_HEADERS }).times(2);

      const slow = client.me.get();
      await vi.advanceTimersByTimeAsync(0);
      await expect(client.me.get()).resolves.toEqual(me);
      expect(onTokenRefresh).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(1000);
      await expect(slow).resolves.toEqual(me);
      expect(onTokenRefresh).toHaveBeenCalledTimes(1);
      expect(calls().map((call) => call.path)).toEqual(['/v1/me', '/v1/me', '/v1/auth/refresh', '/v1/me', '/v1/me']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('surfaces a failed refresh as an AuthenticationError', async () => {
    const onTokenRefresh = vi.fn();
    const { pool, client, calls } = mockClient({ token: 'cpa_0', refreshToken: 'cpr_stale', onTokenRefresh });
    pool.intercept({ path: '/v1/me' }).reply(401, expired, { headers: PROBLEM_HEADERS });
    pool
      .intercept({ path: '/v1/auth/refresh', method: 'POST' })
      .reply(401, problem(401, 'invalid_refresh_token'), { headers: PROBLEM_HEADERS });

    const error = await client.me.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toMatchObject({ code: 'invalid_refresh_token' });
    expect(onTokenRefresh).not.toHaveBeenCalled();
    expect(calls()).toHaveLength(2);
  });

  it('refreshes at most once per call', async () => {
    const { pool, client, calls } = mockClient({ token: 'cpa_0', refreshToken: 'cpr_0' });
    pool.intercept({ path: '/v1/me' }).reply(401, expired, { headers: PROBLEM_HEADERS }).times(2);
    pool.intercept({ path: '/v1/auth/refresh', method: 'POST' }).reply(200, pair(1), { headers: JSON_HEADERS });

    await expect(client.me.get()).rejects.toMatchObject({ status: 401, code: 'token_expired' });
    expect(calls()).toHaveLength(3);
  });

  it('does not refresh without a refresh token, nor on other 401 codes', async () => {
    const without = mockClient({ token: 'cpa_0' });
    without.pool.intercept({ path: '/v1/me' }).reply(401, expired, { headers: PROBLEM_HEADERS });
    await expect(without.client.me.get()).rejects.toBeInstanceOf(AuthenticationError);
    expect(without.calls()).toHaveLength(1);

    const revoked = mockClient({ token: 'cpa_0', refreshToken: 'cpr_0' });
    revoked.pool.intercept({ path: '/v1/me' }).reply(401, problem(401, 'token_revoked'), { headers: PROBLEM_HEADERS });
    await expect(revoked.client.me.get()).rejects.toMatchObject({ code: 'token_revoked' });
    expect(revoked.calls()).toHaveLength(1);
  });
});
