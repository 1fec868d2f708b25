import { afterEach, describe, expect, it } from 'vitest';
import { PASSWORD, startApi, uniqueUsername, type Api } from './harness.js';

let api: Api | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

describe('sessions over HTTP', () => {
  it('expire access tokens with the clock; a refresh renews them', async () => {
    api = await startApi({ accessTokenTtlSeconds: 60 });
    const member = await api.addCaller('member');
    api.clock.advance(60);
    const expired = await api.call('getMe', { token: member.token });
    expect([expired.status, expired.body.code]).toEqual([401, 'token_expired']);

    const refreshed = await api.call('refreshSession', { body: { refreshToken: member.pair.refreshToken } });
    expect(refreshed.status).toBe(200);
    const me = await api.call('getMe', { token: refreshed.body.accessToken });
    expect(me.body).toMatchObject({
      id: member.userId,
      authentication: { method: 'session', scopes: ['read', 'write'] },
    });
  });

  it('expire API tokens with the clock', async () => {
    api = await startApi();
    const member = await api.addCaller('member');
    const created = await api.call('createApiToken', {
      token: member.token,
      body: { name: 'nightly', scopes: ['read'], expiresInDays: 1 },
    });
    await expect(api.call('getMe', { token: created.body.secret })).resolves.toMatchObject({ status: 200 });
    api.clock.advance(86_400);
    const expired = await api.call('getMe', { token: created.body.secret });
    expect([expired.status, expired.body.code]).toEqual([401, 'token_expired']);
  });

  it('slow down repeated failed logins with Retry-After, and record each attempt', async () => {
    api = await startApi({ loginThrottle: { freeAttempts: 1, addressFreeAttempts: 20, maxDelaySeconds: 5, forgetAfterSeconds: 120 } });
    const { username, userId } = await api.addCaller('viewer');
    const attempt = (password = 'not the password') => api!.call('login', { body: { username, password } });

    expect((await attempt()).body.code).toBe('invalid_credentials');
    const throttled = await attempt(PASSWORD);
    expect([throttled.status, throttled.body.code, throttled.headers.get('retry-after')]).toEqual([
      429,
      'too_many_login_attempts',
      '1',
    ]);
    api.clock.advance(1);
    expect((await attempt()).body.code).toBe('invalid_credentials');
    const longer = await attempt(PASSWORD);
    expect([longer.status, longer.headers.get('retry-after')]).toEqual([429, '2']);

    const events = await api.call('listEvents', {
      token: api.admin.token,
      query: { subjectId: userId, type: ['auth.*'] },
    });
    expect(events.body.data.map((e: { data: { reason?: string; failedAttempts?: number } }) => e.data)).toEqual([
      { username, reason: 'wrong_password', failedAttempts: 1 },
      { username, reason: 'throttled', failedAttempts: 0 },
      { username, reason: 'wrong_password', failedAttempts: 2 },
      { username, reason: 'throttled', failedAttempts: 0 },
    ]);
    api.clock.advance(2);
    expect((await attempt(PASSWORD)).status).toBe(200);
  });
});

describe('the event log over HTTP', () => {
  it('records each write once, with the request id the client sent', async () => {
    api = await startApi();
    const before = await api.counts();
    const username = uniqueUsername();
    const created = await api.call('createUser', {
      token: api.admin.token,
      headers: { 'x-request-id': 'onboarding-42' },
      body: { username, password: PASSWORD, role: 'member' },
    });
    expect(created.status).toBe(201);
    expect(await api.counts()).toEqual({ ...before, users: before.users + 1, events: before.events + 1 });

    const page = await api.call('listEvents', {
      token: api.admin.token,
      query: { type: ['user.created'], order: 'desc', limit: 1 },
    });
    const [event] = page.body.data;
    expect(event).toMatchObject({
      type: 'user.created',
      actor: { type: 'user', id: api.admin.userId, username: 'admin' },
      subject: { type: 'user', id: created.body.id },
      data: { user: { id: created.body.id, username, role: 'member' } },
      requestId: 'onboarding-42',
    });
    const one = await api.call('getEvent', { token: api.admin.token, path: { eventId: event.id } });
    expect(one.body).toEqual(event);

    const member = await api.login(username, PASSWORD);
    const [adminCreated] = (await api.call('listEvents', { token: api.admin.token, query: { limit: 1 } })).body.data;
    expect(adminCreated).toMatchObject({ type: 'user.created', subject: { id: api.admin.userId } });
    const hidden = await api.call('getEvent', { token: member.accessToken, path: { eventId: adminCreated.id } });
    expect([hidden.status, hidden.body.code]).toEqual([404, 'not_found']);
  });
});
