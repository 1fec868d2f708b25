import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../../openapi/generate/spec.js';
import { operations, type OperationId } from '../../src/generated/operations.js';
import { roleAtLeast, scopesAllow, type Role, type Scope } from '../../src/http/access.js';
import { freePort } from '../helpers/adb-host.js';
import { ADMIN_PASSWORD, startApi, uniqueUsername, type Api, type CallOptions } from './harness.js';

type Json = Record<string, any>;

/** Reserved once for the file: the address of a host that never answers. */
const unusedPort = freePort();

/** The contract's operation model, every `$ref` and path-level parameter already resolved. */
const contract = new Map(
  loadSpec(join(import.meta.dirname, '..', '..', '..', 'openapi', 'cloudphone.yaml')).operations.map((op) => [op.id, op]),
);

interface ExampleRequest {
  path: Record<string, string>;
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

const roles: Role[] = ['viewer', 'member', 'admin'];

let api: Api;
const tokens = {} as Record<Role, string>;
const scopedTokens = {} as Record<Scope, string>;

beforeAll(async () => {
  api = await startApi();
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
  await api.close();
});

describe.each(operationIds)('%s', (operationId) => {
  const access = operations[operationId].access;

  it(access === null ? 'is public' : 'refuses anonymous callers with 401 unauthenticated', async () => {
    const response = await api.call(operationId, await validRequest(api, operationId));
    if (access === null) {
      expect(response.status).toBeLessThan(400);
    } else {
      expect(response.status).toBe(401);
      expect(response.body.code).toBe('unauthenticated');
    }
  });

  it.each(roles)('as %s', async (role) => {
    const response = await api.call(operationId, { ...(await validRequest(api, operationId)), token: tokens[role] });
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
      const response = await api.call(operationId, {
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
