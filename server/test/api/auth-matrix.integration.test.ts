import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../../openapi/generate/spec.js';
import { operations, type OperationId } from '../../src/generated/operations.js';
import { roleAtLeast, scopesAllow, type Role, type Scope } from '../../src/http/access.js';
import { freePort } from '../helpers/adb-host.js';
import { expectContractResponse } from '../helpers/contract.js';
import { startTestSmtp, type TestSmtp } from '../notifications/email/smtp.js';
import { ADMIN_PASSWORD, startApi, uniqueUsername, type Api, type ApiResponse, type CallOptions } from './harness.js';

type Json = Record<string, any>;

/** Reserved once for the file: the address of a host that never answers. */
const unusedPort = freePort();

/** The contract's operation model, every `$ref` and path-level parameter already resolved. */
const contract = new Map(
  loadSpec(join(import.meta.dirname, '..', '..', '..', 'openapi', 'cloudphone.yaml')).operations.map((op) => [op.id, op]),
);

interface ExampleRequest {
  path: Record<string, string>;
  query?: CallOptions['query'];
  body?: unknown;
}

/** A request to an operation made of the contract's examples: each path parameter's and the body's. */
function exampleRequest(operationId: OperationId): ExampleRequest {
  const operation = contract.get(operationId)!;
  const path: Record<string, string> = {};
  for (const parameter of operation.parameters.filter((p) => p.in === 'path')) {
    if (parameter.example === undefined)
      throw new Error(`${operationId}: path parameter ${parameter.name} has no example`);
    path[parameter.name] = String(parameter.example);
  }
  if (operation.body === null) return { path };
  const body = operation.body.example;
  if (body === undefined) throw new Error(`${operationId}: the request body has no example`);
  return { path, body };
}

/**
 * Where a contract example cannot be sent as is: credentials that exist, a refresh token that was issued, a fresh
 * username, and token scopes every role may grant.
 */
const adjustments: Partial<Record<OperationId, (api: Api, example: ExampleRequest) => Promise<ExampleRequest>>> = {
  login: async (_, example) => ({ ...example, body: { username: 'admin', password: ADMIN_PASSWORD } }),
  refreshSession: async (api, example) => ({
    ...example,
    body: { refreshToken: (await api.login('admin', ADMIN_PASSWORD)).refreshToken },
  }),
  createUser: async (_, example) => ({ ...example, body: { ...(example.body as Json), username: uniqueUsername() } }),
  createApiToken: async (_, example) => ({ ...example, body: { ...(example.body as Json), scopes: ['read'] } }),
  // A loopback port where nothing listens, rather than the example's address on someone's network.
  createHost: async (_, example) => ({
    ...example,
    body: { ...(example.body as Json), type: 'adb_device', address: `127.0.0.1:${await unusedPort}` },
  }),
  // Not the example's host name, which checking the URL would look up in the DNS: a loopback address, which this
  // server refuses (webhook_url_not_allowed) after the access checks, so nothing is ever sent.
  createWebhookEndpoint: async (_, example) => ({
    ...example,
    body: { ...(example.body as Json), url: `http://127.0.0.1:${await unusedPort}/hook` },
  }),
  // A token is good once: each call gets the one just mailed for a fresh address of the admin's.
  verifyEmail: async (api, example) => {
    // A minute after the last one: a user gets one verification mail a minute at most.
    api.clock.advance(61);
    const sent = smtp.received.length;
    const set = await api.call('setMyEmail', { token: api.admin.token, body: { email: `${uniqueUsername('admin')}@example.com` } });
    expect(set.status).toBe(202);
    const { mail } = await smtp.nth(sent + 1);
    const token = /\/v1\/email-verifications\?token=([A-Za-z0-9_-]+)/.exec(mail.text ?? '')?.[1];
    expect(token).toBeDefined();
    return { ...example, query: { token: token! } };
  },
};

async function validRequest(api: Api, operationId: OperationId): Promise<CallOptions> {
  const example = exampleRequest(operationId);
  return (await adjustments[operationId]?.(api, example)) ?? example;
}

const operationIds = Object.keys(operations) as OperationId[];

/** Not a server error. */
function expectHandled(_operationId: OperationId, response: { status: number; body?: any }): void {
  expect(response.status).toBeLessThan(500);
}
/**
 * Neither authentication nor the role/scope check refused the call. A device operation's own check that the caller
 * holds a lease on the device (403 `lease_required`) comes after them: the example device is leased by nobody.
 */
function expectPassedAccessChecks(response: { status: number; body?: any }): void {
  if (response.status === 403 && response.body?.code === 'lease_required') return;
  expect([401, 403]).not.toContain(response.status);
}

/**
 * Calls an operation; a stream that never ends (`text/event-stream`) is read up to its headers and then closed, so
 * its status and content type are what the contract declares.
 */
async function send(operationId: OperationId, options: CallOptions): Promise<Pick<ApiResponse, 'status' | 'body'>> {
  if (operations[operationId].binaryResponse !== 'text/event-stream') return api.call(operationId, options);
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(`${api.url}${operations[operationId].path}`, { headers, signal: controller.signal });
  const contentType = response.headers.get('content-type');
  const streaming = /^text\/event-stream/.test(contentType ?? '');
  const body = streaming ? undefined : ((await response.json()) as Json);
  controller.abort();
  expectContractResponse(operationId, { status: response.status, contentType, body });
  return { status: response.status, body };
}

const roles: Role[] = ['viewer', 'member', 'admin'];

let api: Api;
let smtp: TestSmtp;
const tokens = {} as Record<Role, string>;
const scopedTokens = {} as Record<Scope, string>;

beforeAll(async () => {
  smtp = await startTestSmtp();
  api = await startApi({ smtpUrl: smtp.url });
  tokens.admin = api.admin.token;
  tokens.member = (await api.addCaller('member')).token;
  tokens.viewer = (await api.addCaller('viewer')).token;
  for (const scope of ['read', 'write', 'admin'] as const) {
    const created = await api.call('createApiToken', {
      token: api.admin.token,
      body: { name: `only-${scope}`, scopes: [scope] },
    });
    scopedTokens[scope] = created.body.secret;
  }
});

afterAll(async () => {
  await api?.close();
  await smtp?.close();
});

describe.each(operationIds)('%s', (operationId) => {
  const access = operations[operationId].access;

  it(access === null ? 'is public' : 'refuses anonymous callers with 401 unauthenticated', async () => {
    const response = await send(operationId, await validRequest(api, operationId));
    if (access === null) {
      expect(response.status).toBeLessThan(400);
    } else {
      expect(response.status).toBe(401);
      expect(response.body.code).toBe('unauthenticated');
    }
  });

  it.each(roles)('as %s', async (role) => {
    const response = await send(operationId, { ...(await validRequest(api, operationId)), token: tokens[role] });
    if (access !== null && !roleAtLeast(role, access.role)) {
      expect(response.status).toBe(403);
      expect(response.body.code).toBe('insufficient_role');
    } else {
      expectPassedAccessChecks(response);
      expectHandled(operationId, response);
    }
  });

  if (access !== null) {
    it.each(['read', 'write', 'admin'] as const)('with an admin API token of scope %s', async (scope) => {
      const response = await send(operationId, {
        ...(await validRequest(api, operationId)),
        token: scopedTokens[scope],
      });
      if (!scopesAllow([scope], access.scope)) {
        expect(response.status).toBe(403);
        expect(response.body.code).toBe('insufficient_scope');
      } else {
        expectPassedAccessChecks(response);
        expectHandled(operationId, response);
      }
    });
  }
});
