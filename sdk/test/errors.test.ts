import { describe, expect, it } from 'vitest';
import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  CloudPhoneError,
  ConflictError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  UnprocessableEntityError,
} from '../src/index.js';
import { mockClient, problem, PROBLEM_HEADERS } from './helpers.js';

describe('error responses', () => {
  it.each([
    [400, 'validation_failed', BadRequestError],
    [401, 'token_revoked', AuthenticationError],
    [403, 'insufficient_scope', PermissionDeniedError],
    [404, 'not_found', NotFoundError],
    [409, 'last_admin', ConflictError],
    [422, 'idempotency_key_reused', UnprocessableEntityError],
    [429, 'rate_limited', RateLimitError],
    [500, 'internal_error', InternalServerError],
    [503, 'service_unavailable', InternalServerError],
    [423, 'account_locked', APIError],
    [418, 'teapot', APIError],
  ])('%i %s throws %O with the problem', async (status, code, ErrorClass) => {
    const { pool, client } = mockClient({ maxRetries: 0 });
    const body = {
      ...problem(status, code),
      errors: [{ field: '/role', message: 'must be equal to one of the allowed values' }],
    };
    pool.intercept({ path: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' }).reply(status, body, { headers: PROBLEM_HEADERS });

    const error = await client.users.get('usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ErrorClass);
    expect(error).toBeInstanceOf(APIError);
    expect(error).toBeInstanceOf(CloudPhoneError);
    expect(Object.getPrototypeOf(error)).toBe(ErrorClass.prototype);
    const apiError = error as APIError;
    expect(apiError.name).toBe(ErrorClass.name);
    expect(apiError.status).toBe(status);
    expect(apiError.code).toBe(code);
    expect(apiError.requestId).toBe(`req_${code}`);
    expect(apiError.problem).toEqual(body);
    expect(apiError.headers['content-type']).toBe('application/problem+json');
    expect(apiError.message).toBe(`${status} ${code}: detail of ${code}`);
  });

  it('makes a problem from a non-JSON error body', async () => {
    const { pool, client } = mockClient({ maxRetries: 0 });
    pool
      .intercept({ path: '/v1/me' })
      .reply(502, '<html><body>Bad Gateway</body></html>\n', { headers: { 'content-type': 'text/html', 'x-request-id': 'req_proxy' } });

    const error = (await client.me.get().catch((e: unknown) => e)) as APIError;
    expect(error).toBeInstanceOf(InternalServerError);
    expect(error.status).toBe(502);
    expect(error.code).toBe('http_502');
    expect(error.requestId).toBe('req_proxy');
    expect(error.problem).toEqual({
      type: 'about:blank',
      title: 'HTTP 502',
      status: 502,
      code: 'http_502',
      detail: '<html><body>Bad Gateway</body></html>',
      requestId: 'req_proxy',
    });
    expect(error.message).toBe('502 http_502: <html><body>Bad Gateway</body></html>');
  });

  it('makes a problem from a JSON body that is not a problem, and from an empty body', async () => {
    const { pool, client } = mockClient({ maxRetries: 0 });
    pool.intercept({ path: '/v1/me' }).reply(400, { message: 'no' }, { headers: { 'content-type': 'application/json' } });
    pool.intercept({ path: '/v1/me' }).reply(404, '');

    const first = (await client.me.get().catch((e: unknown) => e)) as APIError;
    expect(first).toBeInstanceOf(BadRequestError);
    expect(first.problem).toMatchObject({ code: 'http_400', detail: '{"message":"no"}', requestId: '' });
    expect(first.requestId).toBeUndefined();

    const second = (await client.me.get().catch((e: unknown) => e)) as APIError;
    expect(second).toBeInstanceOf(NotFoundError);
    expect(second.problem).toEqual({ type: 'about:blank', title: 'HTTP 404', status: 404, code: 'http_404', requestId: '' });
    expect(second.message).toBe('404 http_404: HTTP 404');
  });

  it('falls back to the X-Request-Id header and fills missing problem members', () => {
    const error = APIError.from(409, { code: 'username_taken', detail: 'The username alice is taken.' }, { 'x-request-id': 'req_h' });
    expect(error).toBeInstanceOf(ConflictError);
    expect(error.requestId).toBe('req_h');
    expect(error.problem).toEqual({
      type: 'https://cloudphone.dev/problems/username_taken',
      title: 'HTTP 409',
      status: 409,
      code: 'username_taken',
      detail: 'The username alice is taken.',
      requestId: 'req_h',
    });
  });

  it('names transport errors after their class', () => {
    const cause = new Error('socket hang up');
    const connection = new APIConnectionError('Connection error: socket hang up', { cause });
    expect(connection).toBeInstanceOf(CloudPhoneError);
    expect(connection.name).toBe('APIConnectionError');
    expect(connection.cause).toBe(cause);
    expect(new APITimeoutError(250).message).toBe('Request timed out after 250 ms.');
    expect(new APITimeoutError(250)).toBeInstanceOf(CloudPhoneError);
    expect(new APIUserAbortError().name).toBe('APIUserAbortError');
  });
});
