import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations, type OperationId } from '../../src/generated/operations.js';
import { roleAtLeast, scopesAllow } from '../../src/http/access.js';
import { bearer, fakeHandlers, principals, testApp, type Caller, type TestApp } from './fixtures.js';

const protectedOperations = (Object.keys(operations) as OperationId[]).filter((id) => operations[id].access !== null);

function urlOf(id: OperationId): string {
  return operations[id].path.replace(/\{[^}]+\}/g, 'not-an-id');
}

describe('authentication and authorisation', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await testApp({
      handlers: fakeHandlers({
        getMe: async ({ ctx }) => ({ status: 200, body: { principal: ctx.principal, requestId: ctx.requestId } }),
        login: async ({ ctx }) => ({ status: 200, body: { principal: ctx.principal } }),
      }),
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it.each(protectedOperations)('%s answers 401 unauthenticated without credentials', async (id) => {
    const response = await t.app.inject({ method: operations[id].method, url: urlOf(id) });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ code: 'unauthenticated' });
  });

  it.each([['Basic YWRtaW46c2VjcmV0'], ['Token admin'], ['Bearer'], ['Bearer two tokens']])(
    'answers 401 unauthenticated for Authorization: %s',
    async (authorization) => {
      const response = await t.app.inject({ method: 'GET', url: '/v1/me', headers: { authorization } });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ code: 'unauthenticated' });
    },
  );

  it('passes the authenticator’s 401 through', async () => {
    const response = await t.app.inject({
      method: 'GET',
      url: '/v1/me',
      headers: { authorization: 'Bearer cpa_unknown' },
    });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toMatchObject({ code: 'invalid_token' });
  });

  it('accepts the scheme in any case and gives the handler the principal', async () => {
    const response = await t.app.inject({
      method: 'GET',
      url: '/v1/me',
      headers: { authorization: 'bearer member', 'x-request-id': 'ctx-check' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ principal: principals.member, requestId: 'ctx-check' });
  });

  it('runs public operations without a principal', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { username: 'admin', password: 'correct-horse-battery-staple' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ principal: null });
  });

  it('authenticates before reading the body: anonymous callers never see validation or parse errors', async () => {
    const invalid = await t.app.inject({ method: 'POST', url: '/v1/users', payload: { role: 'root' } });
    expect(invalid.statusCode).toBe(401);

    const malformed = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: { 'content-type': 'application/json' },
      payload: '{not json',
    });
    expect(malformed.statusCode).toBe(401);

    const wrongType = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(wrongType.statusCode).toBe(401);
  });

  it('authorises before validating: a caller without the role gets 403, not 400', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: bearer('member'),
      payload: { role: 'root' },
    });
    expect(response.statusCode).toBe(403);
    expect(response.json()).toMatchObject({ code: 'insufficient_role' });
  });

  it('checks the role before the scope', async () => {
    const response = await t.app.inject({
      method: 'DELETE',
      url: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      headers: bearer('viewerReadOnly'),
    });
    expect(response.json()).toMatchObject({ code: 'insufficient_role' });
  });

  it('denies an admin credential without the needed scope', async () => {
    const denied = await t.app.inject({
      method: 'DELETE',
      url: '/v1/users/usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      headers: bearer('readOnlyAdmin'),
    });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({
      code: 'insufficient_scope',
      detail: 'This operation needs a credential with the admin scope.',
    });

    const allowed = await t.app.inject({ method: 'GET', url: '/v1/users', headers: bearer('readOnlyAdmin') });
    expect(allowed.statusCode).toBe(200);
  });

  const matrix = protectedOperations.flatMap((id) =>
    (Object.keys(principals) as Caller[]).map((caller) => [id, caller] as const),
  );

  it.each(matrix)('%s as %s follows x-access', async (id, caller) => {
    const access = operations[id].access!;
    const principal = principals[caller];
    const response = await t.app.inject({ method: operations[id].method, url: urlOf(id), headers: bearer(caller) });
    if (!roleAtLeast(principal.role, access.role)) {
      expect(response.statusCode).toBe(403);
      expect(response.json()).toMatchObject({ code: 'insufficient_role' });
    } else if (!scopesAllow(principal.scopes, access.scope)) {
      expect(response.statusCode).toBe(403);
      expect(response.json()).toMatchObject({ code: 'insufficient_scope' });
    } else {
      expect([401, 403]).not.toContain(response.statusCode);
    }
  });
});
