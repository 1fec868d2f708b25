import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { operations, type OperationId } from '../../src/generated/operations.js';
import type { Handlers } from '../../src/http/handler.js';
import { assertHandlersMatchContract } from '../../src/http/operations.js';
import { bearer, fakeAuthenticator, fakeHandlers, testApp, type TestApp } from './fixtures.js';

describe('handlers and the contract', () => {
  it('accepts exactly one handler per operation', () => {
    expect(() => assertHandlersMatchContract(fakeHandlers())).not.toThrow();
  });

  it('names operations without a handler and handlers without an operation', () => {
    const { getMe: _getMe, listEvents: _listEvents, ...rest } = fakeHandlers();
    expect(() => assertHandlersMatchContract({ ...rest, rebootToaster: async () => ({ status: 204 }) })).toThrow(
      'Handlers do not match the contract: no handler for getMe, listEvents; handlers for operations not in the contract: rebootToaster.',
    );
  });

  it('refuses to build an app whose handlers do not match', async () => {
    const t = await testApp();
    try {
      const { deleteUser: _deleteUser, ...rest } = fakeHandlers();
      expect(() =>
        buildApp({
          config: t.config,
          database: t.database,
          domains: { handlers: rest as Handlers, authenticator: fakeAuthenticator },
          clock: () => new Date(),
        }),
      ).toThrow('no handler for deleteUser');
    } finally {
      await t.close();
    }
  });
});

describe('route binding', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await testApp({
      handlers: fakeHandlers({
        listEvents: async ({ query }) => ({ status: 200, body: { query } }),
        listUsers: async ({ query }) => ({ status: 200, body: { query } }),
        updateMe: async ({ body }) => ({ status: 200, body: { body, undocumented: 'kept' } }),
        createApiToken: async ({ headers }) => ({
          status: 201,
          body: { headers },
          headers: { location: '/v1/tokens/tok_1' },
        }),
      }),
    });
  });

  afterAll(async () => {
    await t.close();
  });

  it.each(Object.keys(operations) as OperationId[])('routes %s from the contract', async (id) => {
    const { method, path } = operations[id];
    const url = path
      .replace('{userId}', 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA')
      .replace('{tokenId}', 'tok_01JDX4A8P3C5V7B9N2M4K6J8H0')
      .replace('{eventId}', 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB');
    const response = await t.app.inject({ method, url, headers: bearer('admin') });
    expect([404, 405]).not.toContain(response.statusCode);
  });

  it('coerces query values and fills defaults', async () => {
    const single = await t.app.inject({ method: 'GET', url: '/v1/events?type=user.created', headers: bearer('admin') });
    expect(single.json()).toEqual({ query: { type: ['user.created'], limit: 50, order: 'asc' } });

    const many = await t.app.inject({
      method: 'GET',
      url: '/v1/events?type=user.*&type=token.created&limit=20',
      headers: bearer('admin'),
    });
    expect(many.json()).toEqual({ query: { type: ['user.*', 'token.created'], limit: 20, order: 'asc' } });

    const flags = await t.app.inject({
      method: 'GET',
      url: '/v1/users?disabled=false&q=ali',
      headers: bearer('admin'),
    });
    expect(flags.json()).toEqual({ query: { disabled: false, q: 'ali', limit: 50 } });
  });

  it('hands the body over as sent and sends response bodies whole', async () => {
    const response = await t.app.inject({
      method: 'PATCH',
      url: '/v1/me',
      headers: bearer('member'),
      payload: { displayName: 'Alice' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.json()).toEqual({ body: { displayName: 'Alice' }, undocumented: 'kept' });
  });

  it('gives handlers the contract’s headers by their contract names and sends handler headers', async () => {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: { ...bearer('member'), 'idempotency-key': 'abcdefgh-1234', 'x-other': 'ignored' },
      payload: { name: 'ci', scopes: ['read'] },
    });
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe('/v1/tokens/tok_1');
    expect(response.json()).toEqual({ headers: { 'Idempotency-Key': 'abcdefgh-1234' } });
  });

  it('sends 204 without a body', async () => {
    const response = await t.app.inject({
      method: 'DELETE',
      url: '/v1/tokens/tok_01JDX4A8P3C5V7B9N2M4K6J8H0',
      headers: bearer('member'),
    });
    expect(response.statusCode).toBe(204);
    expect(response.body).toBe('');
  });
});
