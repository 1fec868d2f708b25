import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectSchema } from '../helpers/contract.js';
import { bearer, fakeHandlers, testApp, type TestApp } from './fixtures.js';

const PROBLEM = 'application/problem+json; charset=utf-8';

describe('problem responses', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await testApp({
      config: { bodyLimitBytes: 1024 },
      handlers: fakeHandlers({
        getMe: async () => {
          throw new Error('database password is hunter2');
        },
        listUsers: async () => {
          throw new TypeError("Cannot read properties of undefined (reading 'id')");
        },
      }),
    });
  });

  afterEach(async () => {
    await t.close();
  });

  function expectProblem(
    response: { statusCode: number; headers: Record<string, unknown>; json(): any },
    status: number,
    code: string,
  ) {
    expect(response.statusCode).toBe(status);
    expect(response.headers['content-type']).toBe(PROBLEM);
    const problem = response.json();
    expectSchema('Problem', problem);
    expect(problem).toMatchObject({ status, code, type: `https://cloudphone.dev/problems/${code}` });
    expect(problem.requestId).toBe(response.headers['x-request-id']);
    return problem;
  }

  it('maps malformed JSON to 400 malformed_json', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"username": "admin",',
    });
    expectProblem(response, 400, 'malformed_json');
  });

  it('maps an empty JSON body to 400 malformed_json', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '',
    });
    expectProblem(response, 400, 'malformed_json');
  });

  it('rejects prototype pollution attempts as malformed JSON', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: '{"username":"a","password":"b","__proto__":{"admin":true}}',
    });
    expectProblem(response, 400, 'malformed_json');
  });

  it('maps a body over the limit to 413 payload_too_large', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ username: 'admin', password: 'x'.repeat(2048) }),
    });
    const problem = expectProblem(response, 413, 'payload_too_large');
    expect(problem.detail).toContain('1024 bytes');
  });

  it.each([
    ['text/plain', 'hello'],
    ['application/x-www-form-urlencoded', 'username=admin&password=secret'],
    ['application/xml', '<login/>'],
  ])('maps a %s body to 415 unsupported_media_type', async (contentType, payload) => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      headers: { 'content-type': contentType },
      payload,
    });
    expectProblem(response, 415, 'unsupported_media_type');
  });

  it('maps a body without a content type to 415 unsupported_media_type', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: '{}',
      headers: { 'content-type': undefined },
    });
    expectProblem(response, 415, 'unsupported_media_type');
  });

  it('maps an unknown route to 404 not_found', async () => {
    const problem = expectProblem(await t.app.inject({ method: 'GET', url: '/v1/nothing-here?x=1' }), 404, 'not_found');
    expect(problem.detail).toBe('No route /v1/nothing-here.');
  });

  it('maps a known path with another method to 405 method_not_allowed with Allow', async () => {
    const response = await t.app.inject({
      method: 'PUT',
      url: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      ...{ headers: bearer('admin') },
    });
    expectProblem(response, 405, 'method_not_allowed');
    expect(response.headers.allow).toBe('DELETE, GET, HEAD, PATCH');
  });

  it('maps a malformed percent-encoding in the URL to 400 invalid_encoding', async () => {
    expectProblem(await t.app.inject({ method: 'GET', url: '/v1/users/%E0%A4%A' }), 400, 'invalid_encoding');
  });

  it.each([
    ['an Error', '/v1/me', 'hunter2'],
    ['a TypeError', '/v1/users', 'reading'],
  ])('maps %s thrown by a handler to 500 internal_error without leaking it, and logs it', async (_, url, secret) => {
    const response = await t.app.inject({
      method: 'GET',
      url,
      headers: { ...bearer('admin'), 'x-request-id': 'trace-500' },
    });
    const problem = expectProblem(response, 500, 'internal_error');
    expect(response.body).not.toContain(secret);
    expect(problem.detail).not.toContain(secret);
    const logged = t.logs.entries.find((e) => e.msg === 'request failed');
    expect(logged).toMatchObject({ requestId: 'trace-500', level: 50 });
    expect(JSON.stringify(logged)).toContain(secret);
  });

  it('maps a body schema violation to 400 validation_failed with per-field errors', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: bearer('admin'),
      payload: { username: 'alice', password: 'short', role: 'root', extra: 1 },
    });
    const problem = expectProblem(response, 400, 'validation_failed');
    expect(problem.errors).toEqual(
      expect.arrayContaining([
        { field: '/password', message: 'must NOT have fewer than 12 characters' },
        { field: '/role', message: 'must be one of: admin, member, viewer' },
        { field: '/extra', message: 'is not allowed' },
      ]),
    );
    expect(problem.detail).toContain('/role must be one of: admin, member, viewer');
  });

  it('does not coerce body types', async () => {
    const response = await t.app.inject({
      method: 'PATCH',
      url: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      headers: bearer('admin'),
      payload: { disabled: 'true' },
    });
    const problem = expectProblem(response, 400, 'validation_failed');
    expect(problem.errors).toEqual([{ field: '/disabled', message: 'must be boolean' }]);
  });

  it('reports missing and dependent fields by pointer', async () => {
    const missing = await t.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { username: 'admin' } });
    expect(expectProblem(missing, 400, 'validation_failed').errors).toEqual([
      { field: '/password', message: 'is required' },
    ]);

    const dependent = await t.app.inject({
      method: 'PATCH',
      url: '/v1/me',
      headers: bearer('member'),
      payload: { password: 'a-new-long-password' },
    });
    expect(expectProblem(dependent, 400, 'validation_failed').errors).toEqual([
      { field: '/currentPassword', message: 'is required with password' },
    ]);
  });

  it('requires a JSON body where the contract does', async () => {
    const response = await t.app.inject({ method: 'POST', url: '/v1/auth/login' });
    expect(expectProblem(response, 400, 'validation_failed').errors).toEqual([
      { field: '', message: 'must be object' },
    ]);
  });

  it('names query and path parameters in errors', async () => {
    const query = await t.app.inject({ method: 'GET', url: '/v1/users?limit=0&role=root', headers: bearer('admin') });
    expect(expectProblem(query, 400, 'validation_failed').errors).toEqual(
      expect.arrayContaining([
        { field: 'limit', message: 'must be >= 1' },
        { field: 'role', message: 'must be one of: admin, member, viewer' },
      ]),
    );

    const unknown = await t.app.inject({ method: 'GET', url: '/v1/users?rol=admin', headers: bearer('admin') });
    expect(expectProblem(unknown, 400, 'validation_failed').errors).toEqual([
      { field: 'rol', message: 'is not a known parameter' },
    ]);

    const path = await t.app.inject({ method: 'GET', url: '/v1/users/alice', headers: bearer('admin') });
    const problem = expectProblem(path, 400, 'validation_failed');
    expect(problem.errors).toEqual([{ field: 'userId', message: 'must match pattern "^usr_[0-9A-Z]{26}$"' }]);
  });

  it('names a bad header in errors', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: { ...bearer('member'), 'idempotency-key': 'short' },
      payload: { name: 'ci', scopes: ['read'] },
    });
    expect(expectProblem(response, 400, 'validation_failed').errors).toEqual([
      { field: 'idempotency-key', message: 'must NOT have fewer than 8 characters' },
    ]);
  });

  it('sends Retry-After from an ApiError', async () => {
    const { ApiError } = await import('../../src/http/errors.js');
    const throttled = await testApp({
      handlers: fakeHandlers({
        login: async () => {
          throw new ApiError('too_many_login_attempts', 'Wait 4 seconds before trying again.', { retryAfter: 3.2 });
        },
      }),
    });
    try {
      const response = await throttled.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { username: 'admin', password: 'whatever' },
      });
      expectProblem(response, 429, 'too_many_login_attempts');
      expect(response.headers['retry-after']).toBe('4');
    } finally {
      await throttled.close();
    }
  });
});

describe('request ids', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await testApp();
  });

  afterEach(async () => {
    await t.close();
  });

  it('echoes a well-formed X-Request-Id on success and in problems', async () => {
    const ok = await t.app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc.DEF_1:2-3' } });
    expect(ok.headers['x-request-id']).toBe('abc.DEF_1:2-3');

    const problem = await t.app.inject({ method: 'GET', url: '/v1/me', headers: { 'x-request-id': 'trace-42' } });
    expect(problem.statusCode).toBe(401);
    expect(problem.headers['x-request-id']).toBe('trace-42');
    expect(problem.json().requestId).toBe('trace-42');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['with spaces', 'two words'],
    ['with a slash', 'a/b'],
    ['empty', ''],
  ])('replaces an X-Request-Id that is %s with req_<ulid>', async (_, given) => {
    const response = await t.app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': given } });
    expect(response.headers['x-request-id']).toMatch(/^req_[0-9A-Z]{26}$/);
  });

  it('makes a request id when none is sent, different per request', async () => {
    const a = await t.app.inject({ method: 'GET', url: '/healthz' });
    const b = await t.app.inject({ method: 'GET', url: '/nowhere' });
    expect(a.headers['x-request-id']).toMatch(/^req_[0-9A-Z]{26}$/);
    expect(b.headers['x-request-id']).toMatch(/^req_[0-9A-Z]{26}$/);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    expect(b.json().requestId).toBe(b.headers['x-request-id']);
  });

  it('logs one line per request, with the request id, method, route and status', async () => {
    await t.app.inject({
      method: 'GET',
      url: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      headers: { ...bearer('admin'), 'x-request-id': 'one-line' },
    });
    const lines = t.logs.entries.filter((e) => e.requestId === 'one-line');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'request completed',
      method: 'GET',
      route: '/v1/users/:userId',
      operationId: 'getUser',
      path: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      status: 200,
    });
    expect(typeof lines[0]!.ms).toBe('number');
  });
});
