import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/http/errors.js';
import { canonicalJson, responseSecrets, withoutSecrets } from '../../src/http/idempotency.js';
import {
  bearer,
  fakeHandlers,
  gate,
  testApp,
  type AnyInput,
  type Caller,
  type FakeHandler,
  type TestApp,
} from './fixtures.js';

const user = { username: 'alice', password: 'correct-horse-battery-staple', role: 'member' };

describe('canonicalJson', () => {
  it('sorts keys at every level and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 0 }], c: undefined } })).toBe(
      '{"a":{"d":[2,{"x":0,"y":1}]},"b":1}',
    );
  });
});

describe('the secrets of a response', () => {
  it('are the fields the contract marks x-secret', () => {
    expect(responseSecrets('createApiToken')).toEqual([['secret']]);
    expect(responseSecrets('login')).toEqual([['accessToken'], ['refreshToken']]);
    expect(responseSecrets('createUser')).toEqual([]);
  });

  it('are removed at every level, in arrays too', () => {
    const paths = [['secret'], ['data', '*', 'token']];
    expect(withoutSecrets({ id: 1, secret: 's', data: [{ token: 't', name: 'a' }, { name: 'b' }] }, paths)).toEqual({
      id: 1,
      data: [{ name: 'a' }, { name: 'b' }],
    });
  });
});

describe('Idempotency-Key', () => {
  let t: TestApp;
  let now: Date;
  let calls: AnyInput[];
  let behaviour: FakeHandler;

  beforeEach(async () => {
    now = new Date('2026-11-20T09:30:00Z');
    calls = [];
    behaviour = async () => ({ status: 201, body: { call: calls.length } });
    t = await testApp({
      clock: () => now,
      handlers: fakeHandlers({
        createUser: async (input) => {
          calls.push(input);
          return behaviour(input);
        },
      }),
    });
  });

  afterEach(async () => {
    await t.close();
  });

  function create(key: string | undefined, body: unknown = user, caller: Caller = 'admin') {
    return t.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: { ...bearer(caller), ...(key ? { 'idempotency-key': key } : {}) },
      payload: body as object,
    });
  }

  it('replays the stored response for a retry of the same request', async () => {
    const first = await create('key-00000001');
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();

    const retry = await create('key-00000001', { role: 'member', password: user.password, username: 'alice' });
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(retry.json()).toEqual(first.json());
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers).toEqual({ 'Idempotency-Key': 'key-00000001' });
  });

  it('rejects the same key with another request as idempotency_key_reused', async () => {
    await create('key-00000002');
    const other = await create('key-00000002', { ...user, username: 'bob' });
    expect(other.statusCode).toBe(422);
    expect(other.json()).toMatchObject({ code: 'idempotency_key_reused' });
    expect(calls).toHaveLength(1);
  });

  it('keeps keys per user, and a key belongs to one operation', async () => {
    await create('key-00000003');
    const createToken = (caller: Caller) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: { ...bearer(caller), 'idempotency-key': 'key-00000003' },
        payload: { name: 'ci', scopes: ['read'] },
      });

    const otherUser = await createToken('member');
    expect(otherUser.statusCode).toBe(201);
    expect(otherUser.headers['idempotent-replayed']).toBeUndefined();

    const otherOperation = await createToken('admin');
    expect(otherOperation.statusCode).toBe(422);
    expect(otherOperation.json()).toMatchObject({ code: 'idempotency_key_reused' });
  });

  it('answers idempotency_key_in_use while the first request runs, then replays it', async () => {
    const release = gate();
    const entered = gate();
    behaviour = async () => {
      entered.open();
      await release.promise;
      return { status: 201, body: { call: 1 } };
    };
    const first = create('key-00000004');
    await entered.promise;

    const concurrent = await create('key-00000004');
    expect(concurrent.statusCode).toBe(409);
    expect(concurrent.json()).toMatchObject({ code: 'idempotency_key_in_use' });

    release.open();
    expect((await first).statusCode).toBe(201);
    const retry = await create('key-00000004');
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(calls).toHaveLength(1);
  });

  it('lets a retry take over a first attempt that has been running for over a minute', async () => {
    const release = gate();
    const entered = gate();
    behaviour = async () => {
      entered.open();
      await release.promise;
      return { status: 201, body: { attempt: 'abandoned' } };
    };
    const abandoned = create('key-00000005');
    await entered.promise;

    now = new Date(now.getTime() + 61_000);
    behaviour = async () => ({ status: 201, body: { attempt: 'takeover' } });
    const takeover = await create('key-00000005');
    expect(takeover.statusCode).toBe(201);
    expect(takeover.json()).toEqual({ attempt: 'takeover' });

    release.open();
    await abandoned;
    const retry = await create('key-00000005');
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json()).toEqual({ attempt: 'takeover' });
  });

  it('does not store a 5xx: the retry runs again', async () => {
    behaviour = async () => {
      throw new Error('disk full');
    };
    expect((await create('key-00000006')).statusCode).toBe(500);

    behaviour = async () => ({ status: 201, body: { call: 2 } });
    const retry = await create('key-00000006');
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    expect(calls).toHaveLength(2);
  });

  it('does not store a 429: the retry runs again', async () => {
    behaviour = async () => {
      throw new ApiError('rate_limited', 'Slow down.', { retryAfter: 1 });
    };
    expect((await create('key-00000007')).statusCode).toBe(429);
    behaviour = async () => ({ status: 201, body: {} });
    expect((await create('key-00000007')).statusCode).toBe(201);
    expect(calls).toHaveLength(2);
  });

  it('stores and replays a client error', async () => {
    behaviour = async () => {
      throw new ApiError('username_taken', 'The username alice is taken.');
    };
    const first = await create('key-00000008', user);
    expect(first.statusCode).toBe(409);

    const retry = await create('key-00000008', user);
    expect(retry.statusCode).toBe(409);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(retry.json()).toEqual(first.json());
    expect(calls).toHaveLength(1);
  });

  it('forgets keys after the TTL', async () => {
    await create('key-00000009');
    now = new Date(now.getTime() + t.config.idempotencyTtlSeconds * 1000);
    const later = await create('key-00000009', { ...user, username: 'carol' });
    expect(later.statusCode).toBe(201);
    expect(later.headers['idempotent-replayed']).toBeUndefined();
    expect(calls).toHaveLength(2);
    const rows = await t.database.db.selectFrom('idempotency_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
  });

  it('runs every request without a key', async () => {
    await create(undefined);
    await create(undefined);
    expect(calls).toHaveLength(2);
    const rows = await t.database.db.selectFrom('idempotency_keys').selectAll().execute();
    expect(rows).toHaveLength(0);
  });
});
