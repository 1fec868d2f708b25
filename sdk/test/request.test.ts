import { describe, expect, it } from 'vitest';
import { APIConnectionError, APITimeoutError, APIUserAbortError, CloudPhoneError, VERSION } from '../src/index.js';
import { renderPath, serializeQuery } from '../src/core/transport.js';
import { JSON_HEADERS, me, mockClient, user } from './helpers.js';

const page = { data: [], nextCursor: null };

describe('timeouts and aborts', () => {
  it('fails an attempt that takes longer than the timeout with APITimeoutError', async () => {
    const { pool, client, calls } = mockClient({ timeout: 5, maxRetries: 0 });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS }).delay(60_000);

    const error = await client.me.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(APITimeoutError);
    expect((error as Error).message).toBe('Request timed out after 5 ms.');
    expect(calls()).toHaveLength(1);
  });

  it('takes the timeout per request', async () => {
    const { pool, client } = mockClient({ maxRetries: 0 });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS }).delay(60_000);

    await expect(client.me.get({ timeout: 5 })).rejects.toBeInstanceOf(APITimeoutError);
  });

  it('aborts a request in flight with APIUserAbortError, without retrying', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS }).delay(60_000);
    const controller = new AbortController();

    const pending = client.me.get({ signal: controller.signal });
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(APIUserAbortError);
    expect(calls()).toHaveLength(1);
  });

  it('sends nothing when the signal is already aborted', async () => {
    const { client, calls } = mockClient();
    await expect(client.me.get({ signal: AbortSignal.abort() })).rejects.toBeInstanceOf(APIUserAbortError);
    expect(calls()).toHaveLength(0);
  });
});

describe('query strings', () => {
  it('sends arrays as repeated keys and booleans as true/false, leaving out undefined', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: /^\/v1\/events/ }).reply(200, page, { headers: JSON_HEADERS });
    pool.intercept({ path: /^\/v1\/tokens/ }).reply(200, page, { headers: JSON_HEADERS });

    await client.events.list({ type: ['user.*', 'token.created'], order: 'desc', subjectId: undefined, limit: 20 });
    await client.tokens.list({ allUsers: true, includeRevoked: false });
    const [events, tokens] = calls();
    expect(events?.fullUrl).toBe('http://api.test/v1/events?type=user.*&type=token.created&order=desc&limit=20');
    expect(tokens?.fullUrl).toBe('http://api.test/v1/tokens?allUsers=true&includeRevoked=false');
  });

  it('joins arrays with commas for explode: false and encodes reserved characters', () => {
    const params = [{ name: 'tags', array: true, explode: false }];
    expect(serializeQuery({ tags: ['a', 'b c'] }, params)).toBe('tags=a%2Cb+c');
    expect(serializeQuery({ tags: [] }, params)).toBe('');
    expect(serializeQuery({ q: 'a&b=c#d', n: 0, none: null }, [])).toBe('q=a%26b%3Dc%23d&n=0');
  });
});

describe('paths', () => {
  it('encodes path parameters as one segment each', async () => {
    const { pool, client } = mockClient();
    const paths = new Set<string>();
    pool
      .intercept({
        path: (path) => {
          paths.add(path);
          return true;
        },
      })
      .reply(200, user, { headers: JSON_HEADERS })
      .times(3);

    await client.users.get('usr/../x y?z#%');
    await client.users.get('..');
    await client.users.get('.');
    expect([...paths]).toEqual(['/v1/users/usr%2F..%2Fx%20y%3Fz%23%25', '/v1/users/%2E%2E', '/v1/users/%2E']);
  });

  it('rejects an empty path parameter before sending', async () => {
    const { client, calls } = mockClient();
    const error = await client.users.get('').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudPhoneError);
    expect((error as Error).message).toBe('getUser: expected a non-empty value for the path parameter userId.');
    expect(calls()).toHaveLength(0);
  });

  it('renders every path parameter in order', () => {
    const op = { path: '/v1/{a}/x/{b}', pathParams: ['a', 'b'] };
    expect(renderPath('op', op, { b: 2, a: 'one' })).toBe('/v1/one/x/2');
  });

  it('keeps the path prefix of the base URL', async () => {
    const { pool, client, calls } = mockClient({ baseUrl: 'http://api.test/cloudphone/' });
    pool.intercept({ path: '/cloudphone/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await expect(client.me.get()).resolves.toEqual(me);
    expect(calls()[0]?.path).toBe('/cloudphone/v1/me');
    expect(client.baseUrl).toBe('http://api.test/cloudphone');
  });
});

describe('headers', () => {
  it('sends Accept, User-Agent and Authorization, and Content-Type only with a body', async () => {
    const { pool, client, calls } = mockClient({ token: 'cpt_secret' });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });
    pool.intercept({ path: '/v1/me', method: 'PATCH' }).reply(200, user, { headers: JSON_HEADERS });

    await client.me.get();
    await client.me.update({ displayName: 'Alice M.' });
    const [get, patch] = calls();
    expect(get?.headers).toEqual({
      accept: 'application/json',
      'user-agent': `cloudphone-sdk/${VERSION} node/${process.versions.node}`,
      authorization: 'Bearer cpt_secret',
    });
    expect(patch?.headers).toMatchObject({ 'content-type': 'application/json', authorization: 'Bearer cpt_secret' });
    expect(JSON.parse(patch?.body ?? '')).toEqual({ displayName: 'Alice M.' });
  });

  it('puts the userAgent option in front of the SDK product token', async () => {
    const { pool, client, header } = mockClient({ userAgent: 'cloudphone-cli/0.1.0' });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await client.me.get();
    expect(header('user-agent')).toEqual([`cloudphone-cli/0.1.0 cloudphone-sdk/${VERSION} node/${process.versions.node}`]);
  });

  it('sends no Authorization to public operations', async () => {
    const { pool, client, header } = mockClient({ token: 'cpa_current' });
    pool.intercept({ path: '/v1/auth/logout', method: 'POST' }).reply(204, '');

    await expect(client.auth.logout({ refreshToken: 'cpr_x' })).resolves.toBeUndefined();
    expect(header('authorization')).toEqual([undefined]);
  });

  it('sends no Authorization without a token', async () => {
    const { pool, client, header } = mockClient({ token: undefined });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });

    await client.me.get();
    expect(header('authorization')).toEqual([undefined]);
  });

  it('sends X-Request-Id only when given, and lets request headers override default headers', async () => {
    const { pool, client, calls } = mockClient({ defaultHeaders: { 'X-Tenant': 'lab', 'X-Trace': 'default' } });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS }).times(2);

    await client.me.get();
    await client.me.get({ headers: { 'X-Request-Id': 'cli-42', 'X-Trace': 'call' } });
    const [first, second] = calls();
    expect(first?.headers).toMatchObject({ 'x-tenant': 'lab', 'x-trace': 'default' });
    expect(first?.headers).not.toHaveProperty('x-request-id');
    expect(second?.headers).toMatchObject({ 'x-tenant': 'lab', 'x-trace': 'call', 'x-request-id': 'cli-42' });
  });

  it('fails without retrying when undici refuses the request', async () => {
    const { pool, client, calls } = mockClient();
    const refused = Object.assign(new Error('invalid x-bad header'), { code: 'UND_ERR_INVALID_ARG' });
    pool.intercept({ path: '/v1/me' }).replyWithError(refused);

    const error = await client.me.get({ headers: { 'x-bad': 'a\nb' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudPhoneError);
    expect(error).not.toBeInstanceOf(APIConnectionError);
    expect((error as Error).message).toBe('Invalid request: invalid x-bad header');
    expect(calls()).toHaveLength(1);
  });

  it('takes the Idempotency-Key from the params headers of request()', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: '/v1/tokens', method: 'POST' }).reply(201, {}, { headers: JSON_HEADERS });

    await client.request('createApiToken', {
      body: { name: 'ci', scopes: ['read'] },
      headers: { 'Idempotency-Key': 'token-ci-1' },
    });
    expect(header('idempotency-key')).toEqual(['token-ci-1']);
  });
});

describe('responses', () => {
  it('resolves 204 to undefined', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: `/v1/users/${user.id}`, method: 'DELETE' }).reply(204, '');

    await expect(client.users.delete(user.id)).resolves.toBeUndefined();
  });

  it('rejects a success response that is not JSON', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: '/v1/me' }).reply(200, '<html>', { headers: { 'content-type': 'text/html' } });

    const error = await client.me.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudPhoneError);
    expect((error as Error).message).toBe('getMe: the 200 response is not valid JSON.');
  });

  it('calls any operation by operationId with request()', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: `/v1/users/${user.id}`, method: 'PATCH' }).reply(200, user, { headers: JSON_HEADERS });

    await expect(client.request('updateUser', { path: { userId: user.id }, body: { role: 'viewer' } })).resolves.toEqual(user);
    expect(JSON.parse(calls()[0]?.body ?? '')).toEqual({ role: 'viewer' });
  });
});
