import { describe, expect, it } from 'vitest';
import { expectSchema } from '../helpers/contract.js';
import {
  domainFixture,
  expectRejectedWithoutWrites,
  origin,
  PASSWORD,
  rejection,
  type DomainFixture,
} from './fixture.js';

const PAIR = JSON.stringify(['pair', origin.ip, 'alice']);
const ADDRESS = JSON.stringify(['address', origin.ip]);

/** The stored failure counts, by throttle key. */
async function failureCounts(f: DomainFixture): Promise<Record<string, number>> {
  const rows = await f.db.selectFrom('login_failures').select(['key', 'failures']).execute();
  return Object.fromEntries(rows.map((r) => [r.key, r.failures]));
}

describe('login', () => {
  it('starts a session and appends auth.login_succeeded', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    const mark = await f.eventCount();
    const pair = await f.auth.login('alice', PASSWORD, origin);
    expectSchema('TokenPair', pair);
    expect(pair).toMatchObject({
      tokenType: 'Bearer',
      user: alice,
      accessTokenExpiresAt: '2026-11-20T09:15:00.000Z',
      refreshTokenExpiresAt: '2026-12-20T09:00:00.000Z',
    });
    expect(pair.accessToken).toMatch(/^cpa_[0-9A-Za-z]{43}$/);
    expect(pair.refreshToken).toMatch(/^cpr_[0-9A-Za-z]{43}$/);

    const [session, ...others] = await f.db.selectFrom('sessions').selectAll().execute();
    expect(others).toEqual([]);
    expect(session).toMatchObject({ user_id: alice.id, ip: '127.0.0.1', user_agent: 'vitest', revoked_at: null });
    expect(JSON.stringify(session)).not.toContain(pair.accessToken);
    expect(JSON.stringify(session)).not.toContain(pair.refreshToken);

    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'auth.login_succeeded',
        actorType: 'user',
        actorId: alice.id,
        subjectType: 'session',
        subjectId: session!.id,
        data: { sessionId: session!.id },
        requestId: 'req_test',
      },
    ]);
  });

  it('accepts the username in any case', async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    await expect(f.auth.login('Alice', PASSWORD, origin)).resolves.toMatchObject({ user: { username: 'alice' } });
  });

  it('answers invalid_credentials for an unknown user and records it without a subject', async () => {
    const f = await domainFixture();
    expect(await rejection(() => f.auth.login('nobody', PASSWORD, origin))).toMatchObject({
      code: 'invalid_credentials',
      status: 401,
    });
    expect(await f.eventLog()).toEqual([
      {
        type: 'auth.login_failed',
        actorType: 'anonymous',
        actorId: null,
        subjectType: null,
        subjectId: null,
        data: { username: 'nobody', reason: 'unknown_user', failedAttempts: 1 },
        requestId: 'req_test',
      },
    ]);
  });

  it('spends as long on an unknown username as on a wrong password (the password is hashed either way)', async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    const timed = async (username: string) => {
      const started = performance.now();
      await rejection(() => f.auth.login(username, 'wrong password', origin));
      return performance.now() - started;
    };
    const median = (values: number[]) => values.sort((a, b) => a - b)[1]!;
    await timed('warm-up');
    const known = median([await timed('alice'), await timed('alice'), await timed('alice')]);
    const unknown = median([await timed('nobody'), await timed('nobody'), await timed('nobody')]);
    expect(unknown).toBeGreaterThan(known / 2);
    expect(known).toBeGreaterThan(unknown / 2);
  });

  it('answers invalid_credentials for a wrong password and commits the count and the event', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    const mark = await f.eventCount();
    const error = await rejection(() => f.auth.login('alice', 'wrong password', origin));
    expect(error).toMatchObject({ code: 'invalid_credentials', status: 401 });
    expect(await f.db.selectFrom('login_failures').selectAll().orderBy('key').execute()).toEqual([
      { key: ADDRESS, failures: 1, last_failed_at: f.clock.now().toISOString() },
      { key: PAIR, failures: 1, last_failed_at: f.clock.now().toISOString() },
    ]);
    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'auth.login_failed',
        actorType: 'anonymous',
        actorId: null,
        subjectType: 'user',
        subjectId: alice.id,
        data: { username: 'alice', reason: 'wrong_password', failedAttempts: 1 },
        requestId: 'req_test',
      },
    ]);
    expect(await f.db.selectFrom('sessions').selectAll().execute()).toEqual([]);
  });

  it('answers invalid_credentials for a disabled user, recorded as user_disabled', async () => {
    const f = await domainFixture();
    const bob = await f.addUser('bob', 'member');
    await f.addUser('root', 'admin');
    await f.users.update(bob.id, { disabled: true }, { actor: { type: 'system' }, requestId: null });
    const mark = await f.eventCount();
    expect(await rejection(() => f.auth.login('bob', PASSWORD, origin))).toMatchObject({ code: 'invalid_credentials' });
    expect(await rejection(() => f.auth.login('bob', 'wrong password', origin))).toMatchObject({
      code: 'invalid_credentials',
    });
    expect(await f.eventsSince(mark)).toMatchObject([
      { type: 'auth.login_failed', data: { username: 'bob', reason: 'user_disabled', failedAttempts: 1 } },
      { type: 'auth.login_failed', data: { username: 'bob', reason: 'wrong_password', failedAttempts: 2 } },
    ]);
  });

  it('slows down repeated failures and never locks', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    const attempt = () => rejection(() => f.auth.login('alice', 'wrong password', origin));

    for (let i = 0; i < 3; i++) expect(await attempt()).toMatchObject({ code: 'invalid_credentials' });
    const mark = await f.eventCount();
    const throttled = await attempt();
    expect(throttled).toMatchObject({ code: 'too_many_login_attempts', status: 429, retryAfter: 1 });
    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'auth.login_failed',
        actorType: 'anonymous',
        actorId: null,
        subjectType: 'user',
        subjectId: alice.id,
        data: { username: 'alice', reason: 'throttled', failedAttempts: 0 },
        requestId: 'req_test',
      },
    ]);
    expect((await failureCounts(f))[PAIR]).toBe(3);

    const delays = [1, 2, 4, 8, 16, 32, 60, 60];
    for (const [i, delay] of delays.entries()) {
      f.clock.advance(delay - 1);
      expect(await attempt()).toMatchObject({ code: 'too_many_login_attempts', retryAfter: 1 });
      f.clock.advance(1);
      expect(await attempt()).toMatchObject({ code: 'invalid_credentials' });
      expect((await failureCounts(f))[PAIR]).toBe(4 + i);
    }
    f.clock.advance(60);
    await expect(f.auth.login('alice', PASSWORD, origin)).resolves.toMatchObject({ user: { id: alice.id } });
  });

  it('keeps the failures of one address from slowing another', async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    for (let i = 0; i < 3; i++) await f.auth.login('alice', 'wrong password', origin).catch(() => undefined);
    expect(await rejection(() => f.auth.login('alice', PASSWORD, origin))).toMatchObject({ code: 'too_many_login_attempts' });
    await expect(f.auth.login('alice', PASSWORD, { ...origin, ip: '192.0.2.7' })).resolves.toMatchObject({
      tokenType: 'Bearer',
    });
  });

  it('forgets failures after forgetAfterSeconds without one', async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    const attempt = () => rejection(() => f.auth.login('alice', 'wrong password', origin));
    for (let i = 0; i < 3; i++) await attempt();
    f.clock.advance(899);
    expect(await attempt()).toMatchObject({ code: 'invalid_credentials' });
    expect((await failureCounts(f))[PAIR]).toBe(4);
    f.clock.advance(900);
    expect(await attempt()).toMatchObject({ code: 'invalid_credentials' });
    expect(await failureCounts(f)).toEqual({ [PAIR]: 1, [ADDRESS]: 1 });
  });

  it("forgets the pair's failures on success, not the address's", async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    await f.auth.login('alice', 'wrong password', origin).catch(() => undefined);
    await f.auth.login('alice', 'wrong password', origin).catch(() => undefined);
    await f.auth.login('alice', PASSWORD, origin);
    expect(await failureCounts(f)).toEqual({ [ADDRESS]: 2 });
  });

  it('counts parallel guesses against the throttle', async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    const outcomes = await Promise.allSettled(
      Array.from({ length: 6 }, () => f.auth.login('alice', 'wrong password', origin)),
    );
    const codes = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as { code: string }).code : 'ok'));
    expect(codes.filter((c) => c === 'invalid_credentials')).toHaveLength(3);
    expect(codes.filter((c) => c === 'too_many_login_attempts')).toHaveLength(3);
    expect((await failureCounts(f))[PAIR]).toBe(3);
  });
});

describe('refresh', () => {
  it('rotates both tokens; the old ones stop working', async () => {
    const f = await domainFixture();
    const { pair } = await f.signIn('alice', 'member');
    f.clock.advance(600);
    const next = await f.auth.refresh(pair.refreshToken, origin);
    expectSchema('TokenPair', next);
    expect(next.refreshToken).not.toBe(pair.refreshToken);
    expect(next.accessTokenExpiresAt).toBe(new Date(f.clock.now().getTime() + 900_000).toISOString());
    expect(next.refreshTokenExpiresAt).toBe(new Date(f.clock.now().getTime() + 30 * 86_400_000).toISOString());
    await expect(f.authenticator.authenticate(next.accessToken)).resolves.toMatchObject({ method: 'session' });
    expect(await rejection(() => f.authenticator.authenticate(pair.accessToken))).toMatchObject({
      code: 'invalid_token',
    });

    await expectRejectedWithoutWrites(f, () => f.auth.refresh(pair.refreshToken, origin), 'invalid_refresh_token');
    await expect(f.auth.refresh(next.refreshToken, origin)).resolves.toMatchObject({ tokenType: 'Bearer' });
    expect(await f.db.selectFrom('sessions').select('id').execute()).toHaveLength(1);
  });

  it('lets only one of two racing refreshes with one token win', async () => {
    const f = await domainFixture();
    const { pair } = await f.signIn('alice', 'member');
    const outcomes = await Promise.allSettled([f.auth.refresh(pair.refreshToken, origin), f.auth.refresh(pair.refreshToken, origin)]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  it('refuses expired, revoked and unknown refresh tokens', async () => {
    const f = await domainFixture();
    const { pair } = await f.signIn('alice', 'member');
    await expectRejectedWithoutWrites(f, () => f.auth.refresh('cpr_unknown', origin), 'invalid_refresh_token');
    f.clock.advance(30 * 86_400);
    await expectRejectedWithoutWrites(f, () => f.auth.refresh(pair.refreshToken, origin), 'invalid_refresh_token');

    const again = await f.auth.login('alice', PASSWORD, origin);
    await f.auth.logout(again.refreshToken, origin);
    await expectRejectedWithoutWrites(f, () => f.auth.refresh(again.refreshToken, origin), 'invalid_refresh_token');
  });

  it('answers user_disabled for a disabled user', async () => {
    const f = await domainFixture();
    await f.addUser('root', 'admin');
    const { user, pair } = await f.signIn('alice', 'member');
    await f.users.update(user.id, { disabled: true }, { actor: { type: 'system' }, requestId: null });
    await expectRejectedWithoutWrites(f, () => f.auth.refresh(pair.refreshToken, origin), 'user_disabled');
  });
});

describe('logout', () => {
  it('revokes the session once and appends auth.logged_out', async () => {
    const f = await domainFixture();
    const { user, pair } = await f.signIn('alice', 'member');
    const sessionId = (await f.db.selectFrom('sessions').select('id').executeTakeFirstOrThrow()).id;
    const mark = await f.eventCount();
    await f.auth.logout(pair.refreshToken, origin);
    expect(await rejection(() => f.authenticator.authenticate(pair.accessToken))).toMatchObject({
      code: 'token_revoked',
    });
    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'auth.logged_out',
        actorType: 'user',
        actorId: user.id,
        subjectType: 'session',
        subjectId: sessionId,
        data: { sessionId },
        requestId: 'req_test',
      },
    ]);

    const before = await f.snapshot();
    await f.auth.logout(pair.refreshToken, origin);
    await f.auth.logout('cpr_never_issued', origin);
    expect(await f.snapshot()).toEqual(before);
  });
});
