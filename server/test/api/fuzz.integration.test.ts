import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations, type OperationId } from '../../src/generated/operations.js';
import { requestSchemas } from '../../src/generated/request-schemas.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { expectContractResponse } from '../helpers/contract.js';
import { startTestSmtp, type TestSmtp } from '../notifications/email/smtp.js';
import { allDevices, eventually, leaseDevice, type Json } from './device-helpers.js';
import { invalidValue, unkeptText, validValue, type Overrides, type Schema } from './fuzz-inputs.js';
import { countRows, PASSWORD, startApi, uniqueUsername, type Api, type Caller } from './harness.js';

/**
 * Contract-driven fuzzing: for every HTTP operation, requests generated from its schemas (valid ones, and ones broken
 * in one place) are sent as admin, member and viewer to a real server with virtual devices. Every answer must be a
 * status the contract declares for the operation, with a body that matches it, never a 5xx; valid input must not be
 * refused for its shape; invalid input must be refused with a problem and write nothing. The seed and the number of
 * runs per operation are fixed; CLOUDPHONE_FUZZ_RUNS and CLOUDPHONE_FUZZ_SEED run a longer or another fuzz by hand.
 */

const RUNS = Number(process.env.CLOUDPHONE_FUZZ_RUNS ?? 20);
const SEED = Number(process.env.CLOUDPHONE_FUZZ_SEED ?? 20261207);
const REQUEST_TIMEOUT_MS = 15_000;

/** Refusals of well-formed input for reasons a JSON Schema cannot state (relations between fields, a wrong password). */
const SEMANTIC_REFUSALS: Partial<Record<OperationId, string[]>> = {
  createLease: ['/selector/sdkMin'],
  estimateLease: ['/selector/sdkMin'],
  // The ISO 4217 list is the server's; one plan stays the default; a budget's target field depends on its scope.
  createPlan: ['/currency'],
  updatePlan: ['/isDefault'],
  createBudget: ['/currency', '/userId', '/project'],
  getUsageReport: ['from'],
  createApiToken: ['/expiresAt'],
  installApp: ['/deviceIds'],
  runDeviceShell: ['/command'],
  updateMe: ['/currentPassword'],
  // A kind given twice in one change: JSON Schema cannot say that items differ in one property.
  updateNotificationPreferences: ['/preferences/1/kind', '/preferences/2/kind', '/preferences/3/kind'],
};

/**
 * Tables whose row counts only requests change (never background work): not notifications, webhook deliveries and
 * emails, which events appended by background work add to.
 */
const COUNTED_TABLES = [
  'users',
  'sessions',
  'api_tokens',
  'idempotency_keys',
  'hosts',
  'leases',
  'apps',
  'app_blobs',
  'install_jobs',
  'plans',
  'budgets',
  'webhook_endpoints',
  'webhook_endpoint_types',
  'notification_preferences',
  'user_emails',
] as const;

type Role = 'admin' | 'member' | 'viewer';
type Mutation =
  | { kind: 'body-root'; value: unknown }
  | { kind: 'body-field'; field: number; value: unknown }
  | { kind: 'body-unknown' }
  | { kind: 'body-missing'; field: number }
  | { kind: 'body-invalid-utf8'; field: number }
  | { kind: 'body-on-bodyless' }
  | { kind: 'content-type'; value: string }
  | { kind: 'param'; field: number; value: unknown }
  | { kind: 'query'; field: number; value: unknown }
  | { kind: 'query-unknown' }
  | { kind: 'header'; value: unknown };

interface Case {
  role: Role;
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  body: unknown;
  hasBody: boolean;
  mutation: Mutation | null;
}

/** A fixture id resolved when the request is sent, so that re-seeded fixtures are used. */
class Ref {
  constructor(
    readonly kind: string,
    readonly index: number,
  ) {}
}

let api: Api;
let callers: Record<Role, Caller>;
let closedPort: number;
let smtp: TestSmtp;
const fixture: Record<string, string[]> = {};
const seen = { requests: 0 };

async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function seedVictim(): Promise<void> {
  const created = await api.call('createUser', {
    token: api.admin.token,
    body: { username: uniqueUsername('victim'), password: PASSWORD, role: 'member' },
  });
  fixture.user = [created.body.id];
}

async function seedApp(): Promise<void> {
  const uploaded = await api.call('uploadApp', {
    token: callers.member.token,
    rawBody: readFileSync(APKS.unlock),
    contentType: 'application/octet-stream',
  });
  expect(uploaded.status).toBeLessThan(300);
  fixture.app = [uploaded.body.id];
}

async function seedToken(): Promise<void> {
  const created = await api.call('createApiToken', { token: callers.viewer.token, body: { name: 'fuzz', scopes: ['read'] } });
  fixture.token = [created.body.id];
}

async function seedHost(): Promise<void> {
  const created = await api.call('createHost', {
    token: api.admin.token,
    body: { type: 'adb_device', address: `127.0.0.1:${closedPort}`, name: 'fuzz' },
  });
  expect(created.status).toBe(201);
  fixture.host = [created.body.id];
}

async function seedPlan(): Promise<void> {
  const created = await api.call('createPlan', {
    token: api.admin.token,
    body: { name: uniqueUsername('plan'), currency: 'USD', prices: { virtual: 60 } },
  });
  expect(created.status).toBe(201);
  fixture.plan = [created.body.id];
}

async function seedBudget(): Promise<void> {
  const created = await api.call('createBudget', {
    token: api.admin.token,
    body: { scope: 'project', project: uniqueUsername('project'), currency: 'USD', amount: 100_000 },
  });
  expect(created.status).toBe(201);
  fixture.budget = [created.body.id];
}

/** The member's webhook endpoint, to a loopback port nobody listens on, and a delivery of a test event to it. */
async function seedWebhook(): Promise<void> {
  const created = await api.call('createWebhookEndpoint', {
    token: callers.member.token,
    body: { url: `http://127.0.0.1:${closedPort}/hook`, description: 'fuzz' },
  });
  expect(created.status).toBe(201);
  fixture.webhook = [created.body.id];
  const test = await api.call('sendWebhookTestEvent', { token: callers.member.token, path: { webhookId: created.body.id }, body: {} });
  expect(test.status).toBe(202);
  fixture.delivery = [test.body.eventId];
}

/**
 * A notification in the member's inbox: a lease of theirs that an admin ends. Its device may be held by a lease of
 * the fuzz's own; then the inbox keeps what it has.
 */
async function seedNotification(): Promise<void> {
  const created = await api.call('createLease', { token: callers.member.token, body: { selector: { deviceIds: [fixture.device![1]!] }, ttlSeconds: 600 } });
  if (created.status !== 201) return;
  const released = await api.call('releaseLease', { token: api.admin.token, path: { leaseId: created.body.id } });
  expect(released.status).toBe(200);
  const inbox = await api.call('listNotifications', { token: callers.member.token, query: { status: 'all' } });
  fixture.notification = inbox.body.data.map((n: Json) => n.id as string);
}

/** What a destructive success took away, put back so later cases still reach real resources. */
const reseed: Partial<Record<OperationId, () => Promise<void>>> = {
  deleteUser: seedVictim,
  deleteApp: seedApp,
  revokeApiToken: seedToken,
  deleteHost: seedHost,
  deletePlan: seedPlan,
  deleteBudget: seedBudget,
  deleteWebhookEndpoint: seedWebhook,
  deleteNotification: seedNotification,
};

beforeAll(async () => {
  smtp = await startTestSmtp();
  // Webhook endpoints on loopback are allowed: every URL the fuzz sends is one (a closed port), so endpoints are
  // created and their deliveries fail without a byte leaving the machine or a name being looked up.
  api = await startApi({ virtualDevices: 2, webhookAllowPrivate: true, smtpUrl: smtp.url });
  callers = { admin: api.admin, member: await api.addCaller('member'), viewer: await api.addCaller('viewer') };
  closedPort = await closedLoopbackPort();
  const devices = await eventually(async () => {
    const online = await allDevices(api, api.admin.token, { state: 'online' });
    return online.length === 2 ? online : undefined;
  }, 30_000, 'two virtual devices online');
  fixture.device = devices.map((d) => d.id as string);
  const lease = await leaseDevice(api, callers.member.token, fixture.device[0]!, 86_400);
  fixture.lease = [lease.id];
  fixture.createdLease = [];
  await Promise.all([seedVictim(), seedApp(), seedToken(), seedHost(), seedPlan(), seedBudget(), seedWebhook()]);
  await seedNotification();
  expect(fixture.notification).toHaveLength(1);
  const install = await api.call('installApp', {
    token: callers.member.token,
    path: { appId: fixture.app![0]! },
    body: { deviceIds: [fixture.device[0]!] },
  });
  fixture.job = [install.body.id];
  const events = await api.call('listEvents', { token: api.admin.token, query: { limit: 5 } });
  fixture.event = events.body.data.map((e: Json) => e.id as string);
}, 90_000);

afterAll(async () => {
  await api?.close();
  await smtp?.close();
});

const ID_KINDS: Record<string, string> = {
  dev: 'device',
  app: 'app',
  usr: 'user',
  tok: 'token',
  hst: 'host',
  lse: 'lease',
  evt: 'event',
  ijb: 'job',
  pln: 'plan',
  bdg: 'budget',
  whe: 'webhook',
  ntf: 'notification',
};

/** Event ids that name a delivery of the fixture's webhook endpoint, rather than any event of the log. */
const DELIVERY_OPERATIONS: readonly OperationId[] = ['getWebhookDelivery', 'redeliverWebhook'];

/** Fixture ids for id patterns (mostly), loopback for host addresses, and no long waits. */
function overridesFor(operationId: OperationId): Overrides {
  return (schema, path) => {
    const name = path[path.length - 1];
    const idKind = typeof schema.pattern === 'string' ? /^\^([a-z]{3})_/.exec(schema.pattern)?.[1] : undefined;
    if (idKind !== undefined && ID_KINDS[idKind] !== undefined) {
      // Releasing the member's lease would leave the member without a device: releases take the fuzz's own leases.
      const kind =
        operationId === 'releaseLease' ? 'createdLease' : idKind === 'evt' && DELIVERY_OPERATIONS.includes(operationId) ? 'delivery' : ID_KINDS[idKind]!;
      const generated = fc.stringMatching(new RegExp(schema.pattern));
      return fc.oneof({ weight: 4, arbitrary: fc.nat(3).map((i) => new Ref(kind, i)) }, { weight: 1, arbitrary: generated });
    }
    // Hosts the server would connect to are loopback ports nobody listens on, never another address; the other
    // forms (no brackets, a port out of range) must be refused before anything connects.
    if (name === 'address' && operationId === 'createHost') {
      return fc.tuple(fc.nat(LOOPBACK_HOSTS.length - 1), fc.nat(BAD_PORTS.length)).map(([host, port]) => new Ref('address', host * 100 + port));
    }
    // Webhook targets are loopback URLs on the closed port, never a generated host name (checking one would look it
    // up in the DNS).
    if (name === 'url' && (operationId === 'createWebhookEndpoint' || operationId === 'updateWebhookEndpoint')) {
      return fc.nat(WEBHOOK_URLS.length - 1).map((index) => new Ref('webhookUrl', index));
    }
    // Reads that wait while a lease is queued or a job runs would hold the fuzz for up to a minute.
    if (name === 'waitSeconds' && (operationId === 'getLease' || operationId === 'getInstallJob')) return fc.constant(0);
    if (operationId === 'rebootDevice' && name === 'wait') return fc.constant(false);
    if (operationId === 'runDeviceShell' && name === 'timeoutSeconds') return fc.constant(1);
    return undefined;
  };
}

/** Host parts that can only ever mean this machine, well-formed or not, and ports no connection can use. */
const LOOPBACK_HOSTS = ['127.0.0.1', '[::1]', '::1', '[::1', '127.0.0.1:'];
const BAD_PORTS = ['0', '65536', '99999', '00000'];
/** Webhook URLs for the closed port `{port}` on loopback, in the forms a URL can take. */
const WEBHOOK_URLS = ['http://127.0.0.1:{port}/hook', 'https://[::1]:{port}/', 'http://127.0.0.1:{port}/a/b?c=d#e', 'HTTP://127.0.0.1:{port}'];

function resolve(value: unknown): unknown {
  if (value instanceof Ref) {
    if (value.kind === 'address') {
      const port = BAD_PORTS[value.index % 100] ?? String(closedPort);
      return `${LOOPBACK_HOSTS[Math.floor(value.index / 100)]}:${port}`;
    }
    if (value.kind === 'webhookUrl') return WEBHOOK_URLS[value.index]!.replace('{port}', String(closedPort));
    const pool = fixture[value.kind] ?? [];
    // Only the fuzz's own leases can be none yet: a well-formed id of no lease then.
    return pool[value.index % pool.length] ?? `lse_${'0'.repeat(26)}`;
  }
  if (Array.isArray(value)) return value.map(resolve);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
  }
  return value;
}

function bodySchemaOf(operationId: OperationId): Schema | undefined {
  const body = requestSchemas[operationId].schemas.body as Schema | undefined;
  // An optional body is `anyOf [null, schema]` for Fastify (absence is validated as null): generate the schema.
  return body?.anyOf?.[0]?.type === 'null' ? body.anyOf[1] : body;
}

function propertiesOf(schema: Schema | undefined): string[] {
  if (!schema) return [];
  const own = Object.keys(schema.properties ?? {});
  const merged = (schema.allOf ?? []).flatMap((part: Schema) => Object.keys(part.properties ?? {}));
  const alternatives = (schema.oneOf ?? []).flatMap((part: Schema) => Object.keys(part.properties ?? {}));
  return [...new Set([...own, ...merged, ...alternatives])];
}

function caseArbitrary(operationId: OperationId): fc.Arbitrary<Case> {
  const meta = operations[operationId];
  const { schemas } = requestSchemas[operationId];
  const overrides = overridesFor(operationId);
  const paramsSchema = (schemas.params ?? { type: 'object', properties: {} }) as Schema;
  const querySchema = (schemas.querystring ?? { type: 'object', properties: {} }) as Schema;
  const headerSchema = (schemas.headers ?? { type: 'object', properties: {} }) as Schema;
  const bodySchema = bodySchemaOf(operationId);
  const binary = meta.binaryBody !== null;
  const jsonBody = bodySchema !== undefined && !binary;
  const bodyRequired = binary || (jsonBody && requestSchemas[operationId].schemas.body === bodySchema);

  const body: fc.Arbitrary<unknown> = binary
    ? fc.uint8Array({ maxLength: 64 })
    : jsonBody
      ? validValue(bodySchema, overrides)
      : fc.constant(undefined);
  // A reboot without a body waits for the device to come back: seconds per case, so rebootDevice always says no.
  const hasBody = bodyRequired || operationId === 'rebootDevice' ? fc.constant(true) : jsonBody ? fc.boolean() : fc.constant(false);

  const paramNames = Object.keys(paramsSchema.properties ?? {});
  const queryNames = Object.keys(querySchema.properties ?? {});
  const bodyFields = jsonBody ? propertiesOf(bodySchema) : [];
  const requiredFields: string[] = jsonBody ? (bodySchema!.required ?? []) : [];
  const mutations: fc.Arbitrary<Mutation>[] = [];
  if (jsonBody) {
    mutations.push(
      fc.constantFrom<unknown>(null, [], 0, 'text', true).map((value) => ({ kind: 'body-root', value }) as Mutation),
      fc.constant({ kind: 'body-unknown' } as Mutation),
      fc.nat().map((field) => ({ kind: 'body-invalid-utf8', field }) as Mutation),
      fc
        .constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream')
        .map((value) => ({ kind: 'content-type', value }) as Mutation),
    );
    if (bodyFields.length > 0) {
      mutations.push(
        fc
          .nat()
          .chain((field) => {
            const name = bodyFields[field % bodyFields.length]!;
            const schema = bodySchema!.properties?.[name] ?? { type: 'string' };
            return invalidValue(schema).map((value) => ({ kind: 'body-field', field, value }) as Mutation);
          }),
      );
    }
    if (requiredFields.length > 0) mutations.push(fc.nat().map((field) => ({ kind: 'body-missing', field }) as Mutation));
  }
  if (!jsonBody && !binary && meta.method !== 'GET') mutations.push(fc.constant({ kind: 'body-on-bodyless' } as Mutation));
  if (paramNames.length > 0) {
    mutations.push(
      fc.nat().chain((field) =>
        fc
          .oneof(fc.constantFrom<unknown>('not-an-id', '..', ' ', 'dev_0'), unkeptText)
          .map((value) => ({ kind: 'param', field, value }) as Mutation),
      ),
    );
  }
  if (queryNames.length > 0) {
    mutations.push(
      fc.nat().chain((field) =>
        invalidValue(querySchema.properties[queryNames[field % queryNames.length]!]).map(
          (value) => ({ kind: 'query', field, value }) as Mutation,
        ),
      ),
    );
  }
  mutations.push(fc.constant({ kind: 'query-unknown' } as Mutation));
  if (headerSchema.properties?.['idempotency-key']) {
    mutations.push(fc.constantFrom<unknown>('short', 'has space in it', '\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9').map((value) => ({ kind: 'header', value }) as Mutation));
  }

  return fc.record({
    role: fc.constantFrom<Role>('admin', 'member', 'viewer'),
    params: validValue(paramsSchema, overrides) as fc.Arbitrary<Record<string, unknown>>,
    query: validValue(querySchema, overrides) as fc.Arbitrary<Record<string, unknown>>,
    headers: validValue(headerSchema, overrides) as fc.Arbitrary<Record<string, unknown>>,
    body,
    hasBody,
    mutation: fc.option(fc.oneof(...mutations), { freq: 2 }),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Classification: what the contract says of a request, by an Ajv of the test's own (not the server's validator).

const parameterAjv = new Ajv2020({ strict: false, allErrors: true, allowUnionTypes: true, coerceTypes: 'array', useDefaults: true });
const bodyAjv = new Ajv2020({ strict: false, allErrors: true, allowUnionTypes: true, discriminator: true });
formats.default(parameterAjv);
formats.default(bodyAjv);
const validators = new Map<string, ValidateFunction>();

/** `sentBody` is the body's own schema; `body` the route's, where an optional body admits absence as `null`. */
function validator(operationId: OperationId, part: 'params' | 'querystring' | 'headers' | 'body' | 'sentBody'): ValidateFunction | null {
  const schema = part === 'sentBody' ? bodySchemaOf(operationId) : requestSchemas[operationId].schemas[part];
  if (!schema) return null;
  const key = `${operationId}/${part}`;
  let validate = validators.get(key);
  if (!validate) {
    validate = (part === 'body' || part === 'sentBody' ? bodyAjv : parameterAjv).compile(schema);
    validators.set(key, validate);
  }
  return validate;
}

/** Text the server keeps: well-formed Unicode (no lone surrogate) without U+0000. */
function isWellFormed(text: string): boolean {
  return !/\p{Cs}/u.test(text) && !text.includes('\u0000');
}

function wellFormed(value: unknown): boolean {
  if (typeof value === 'string') return isWellFormed(value);
  if (Array.isArray(value)) return value.every(wellFormed);
  if (value !== null && typeof value === 'object') return Object.entries(value).every(([k, v]) => isWellFormed(k) && wellFormed(v));
  return true;
}

/** Path and query values as the server receives them: strings (repeated parameters as arrays). */
function asStrings(values: Record<string, unknown>): Record<string, string | string[]> {
  return Object.fromEntries(
    Object.entries(values)
      .filter(([, v]) => !(Array.isArray(v) && v.length === 0))
      .map(([k, v]) => [k, Array.isArray(v) ? v.map(String) : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)]),
  );
}

interface Prepared {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  headers: Record<string, string>;
  /** The request body's bytes and content type, if any. */
  body: { bytes: Uint8Array; contentType: string } | null;
  jsonBody: unknown;
  /** What the contract says of the request: `true` valid, `false` invalid. */
  valid: boolean;
}

/** Percent-encoding that also carries strings that are not well-formed (a lone surrogate as its three WTF-8 bytes). */
function encodeComponent(value: string): string {
  if (isWellFormed(value)) return encodeURIComponent(value);
  return [...value]
    .map((ch) => {
      const code = ch.charCodeAt(0);
      if (ch.length === 1 && code >= 0xd800 && code <= 0xdfff) {
        return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
      }
      return encodeURIComponent(ch);
    })
    .join('');
}

function prepare(operationId: OperationId, input: Case): Prepared {
  const meta = operations[operationId];
  const params = resolve(input.params) as Record<string, unknown>;
  const query = resolve(input.query) as Record<string, unknown>;
  const headers = Object.fromEntries(Object.entries(resolve(input.headers) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
  let jsonBody = input.hasBody ? resolve(input.body) : undefined;
  let rawJson: Uint8Array | null = null;
  let forcedInvalid = false;
  const bodyFields = propertiesOf(bodySchemaOf(operationId));
  const mutation = input.mutation;

  switch (mutation?.kind) {
    case 'body-root':
      jsonBody = mutation.value;
      break;
    case 'body-unknown':
      jsonBody = { ...(jsonBody as object), unknownField: 1 };
      break;
    case 'body-field':
      jsonBody = { ...(jsonBody as object), [bodyFields[mutation.field % bodyFields.length]!]: mutation.value };
      break;
    case 'body-missing': {
      const required: string[] = bodySchemaOf(operationId)?.required ?? [];
      const { [required[mutation.field % required.length]!]: _, ...rest } = (jsonBody ?? {}) as Record<string, unknown>;
      jsonBody = rest;
      break;
    }
    case 'body-invalid-utf8': {
      // A string field whose bytes are not UTF-8 (0xC3 0x28); added as an unknown field when the body has none.
      const object = { ...((jsonBody ?? {}) as Record<string, unknown>) };
      const strings = Object.keys(object).filter((k) => typeof object[k] === 'string');
      const field = strings.length > 0 ? strings[mutation.field % strings.length]! : 'note';
      object[field] = 'MARKER';
      const text = JSON.stringify(object);
      const at = text.indexOf('"MARKER"') + 1;
      const bytes = Buffer.from(text, 'utf8');
      rawJson = Buffer.concat([bytes.subarray(0, at), Buffer.from([0x63, 0xc3, 0x28, 0x61]), bytes.subarray(at + 'MARKER'.length)]);
      jsonBody = object;
      forcedInvalid = true;
      break;
    }
    case 'body-on-bodyless':
      jsonBody = {};
      forcedInvalid = true;
      break;
    case 'content-type':
      jsonBody ??= {};
      forcedInvalid = true;
      break;
    case 'param': {
      const names = Object.keys(params);
      params[names[mutation.field % names.length]!] = mutation.value;
      break;
    }
    case 'query': {
      const names = Object.keys((requestSchemas[operationId].schemas.querystring as Schema | undefined)?.properties ?? {});
      query[names[mutation.field % names.length]!] = mutation.value;
      break;
    }
    case 'query-unknown':
      query.unknownParam = '1';
      break;
    case 'header':
      headers['idempotency-key'] = String(mutation.value);
      break;
  }

  let body: Prepared['body'] = null;
  if (meta.binaryBody !== null && input.hasBody) body = { bytes: input.body as Uint8Array, contentType: meta.binaryBody };
  else if (jsonBody !== undefined || rawJson !== null) {
    const contentType = mutation?.kind === 'content-type' ? mutation.value : 'application/json';
    body = { bytes: rawJson ?? Buffer.from(JSON.stringify(jsonBody), 'utf8'), contentType };
  }

  const checks: [ValidateFunction | null, unknown][] = [
    [validator(operationId, 'params'), structuredClone(asStrings(params))],
    [validator(operationId, 'querystring'), structuredClone(asStrings(query))],
    [validator(operationId, 'headers'), { ...headers }],
  ];
  if (meta.binaryBody === null) {
    checks.push(jsonBody === undefined ? [validator(operationId, 'body'), null] : [validator(operationId, 'sentBody'), structuredClone(jsonBody)]);
  }
  const schemaValid = checks.every(([validate, value]) => validate === null || validate(value) === true);
  const encodingValid = [params, query, headers, jsonBody].every(wellFormed);
  const valid = schemaValid && encodingValid && !forcedInvalid;
  return { params, query, headers, body, jsonBody, valid };
}

// ---------------------------------------------------------------------------------------------------------------

interface Outcome {
  status: number;
  contentType: string | null;
  requestId: string | null;
  body: any;
}

function urlOf(operationId: OperationId, prepared: Prepared): URL {
  const meta = operations[operationId];
  const path = meta.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeComponent(String(prepared.params[name] ?? '')));
  const search = Object.entries(prepared.query)
    .flatMap(([name, value]) =>
      (Array.isArray(value) ? value : [value]).map(
        (item) => `${encodeComponent(name)}=${encodeComponent(typeof item === 'object' && item !== null ? JSON.stringify(item) : String(item))}`,
      ),
    )
    .join('&');
  const url = new URL(`${api.url}${path}${search === '' ? '' : `?${search}`}`);
  return url;
}

async function send(operationId: OperationId, role: Role, prepared: Prepared): Promise<Outcome> {
  const url = urlOf(operationId, prepared);
  // Every request of the fuzz goes to the server under test on loopback.
  expect(url.hostname).toBe('127.0.0.1');
  seen.requests += 1;
  const headers: Record<string, string> = { authorization: `Bearer ${callers[role].token}`, ...prepared.headers };
  if (prepared.body) headers['content-type'] = prepared.body.contentType;
  // Closes an event stream once its first frame is read.
  const controller = new AbortController();
  const response = await fetch(url, {
    method: operations[operationId].method,
    headers,
    ...(prepared.body ? { body: prepared.body.bytes } : {}),
    signal: AbortSignal.any([controller.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
  });
  const contentType = response.headers.get('content-type');
  // An event stream never ends: its first frame is all that is read of it.
  const bytes = /^text\/event-stream/.test(contentType ?? '')
    ? await firstFrame(response, controller)
    : Buffer.from(await response.arrayBuffer());
  const json = /\bjson\b/.test(contentType ?? '');
  return {
    status: response.status,
    contentType: bytes.length === 0 ? null : contentType,
    requestId: response.headers.get('x-request-id'),
    body: bytes.length === 0 ? undefined : json ? JSON.parse(bytes.toString('utf8')) : bytes,
  };
}

/** The first frame of an event stream (up to its blank line), after which the stream is closed. */
async function firstFrame(response: Response, controller: AbortController): Promise<Buffer> {
  const reader = response.body!.getReader();
  let received = Buffer.alloc(0);
  try {
    while (!/\r?\n\r?\n/.test(received.toString('utf8'))) {
      const { done, value } = await reader.read();
      if (done) break;
      received = Buffer.concat([received, value]);
    }
  } finally {
    controller.abort();
  }
  return received;
}

function counts(): Promise<Record<string, number>> {
  return countRows(api.database, [...COUNTED_TABLES]);
}

async function eventsOf(requestId: string | null): Promise<number> {
  if (requestId === null) return 0;
  const { n } = await api.database.db
    .selectFrom('events')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('request_id', '=', requestId)
    .executeTakeFirstOrThrow();
  return Number(n);
}

/** The resource a PATCH changes, read back as the admin. */
const readBack: Partial<Record<OperationId, (params: Record<string, unknown>, role: Role) => Promise<Json | null>>> = {
  updateDevice: (p) => get('getDevice', { deviceId: p.deviceId }),
  updateUser: (p) => get('getUser', { userId: p.userId }),
  updateApp: (p) => get('getApp', { appId: p.appId }),
  updateHost: (p) => get('getHost', { hostId: p.hostId }),
  updateMe: (_, role) => get('getMe', {}, role),
  updatePlan: (p) => get('getPlan', { planId: p.planId }),
  updateBudget: (p) => get('getBudget', { budgetId: p.budgetId }),
  updateWebhookEndpoint: (p) => get('getWebhookEndpoint', { webhookId: p.webhookId }),
  updateNotificationPreferences: (_, role) => get('getNotificationPreferences', {}, role),
};

async function get(operationId: OperationId, params: Record<string, unknown>, role: Role = 'admin'): Promise<Json | null> {
  if (!Object.values(params).every((v) => typeof v === 'string' && /^[a-z]{3}_[0-9A-Z]{26}$/.test(v))) return null;
  const outcome = await send(operationId, role, { params, query: {}, headers: {}, body: null, jsonBody: undefined, valid: true });
  return outcome.status === 200 ? (outcome.body as Json) : null;
}

/** Problems with one case, as lines for the report; none when it behaved. */
async function check(operationId: OperationId, input: Case): Promise<string[]> {
  const prepared = prepare(operationId, input);
  const before = prepared.valid ? null : await counts();
  const resource = prepared.valid ? null : await readBack[operationId]?.(prepared.params, input.role);
  const outcome = await send(operationId, input.role, prepared);
  const problems: string[] = [];
  const code = outcome.body?.code;
  if (outcome.status >= 500) problems.push(`answered ${outcome.status} ${code}: ${outcome.body?.detail}`);
  try {
    expectContractResponse(operationId, outcome);
  } catch (error) {
    problems.push((error as Error).message.split('\n')[0]!);
  }
  if (/^text\/event-stream/.test(outcome.contentType ?? '') && !/\r?\n\r?\n/.test(String(outcome.body))) {
    problems.push('an event stream without a first frame');
  }
  if (prepared.valid && (outcome.status === 400 || outcome.status === 422)) {
    const allowed = SEMANTIC_REFUSALS[operationId] ?? [];
    const fields: string[] = (outcome.body?.errors ?? []).map((e: { field: string }) => e.field);
    const semantic = code === 'validation_failed' && fields.length > 0 && fields.every((f) => allowed.includes(f));
    if (['validation_failed', 'malformed_json', 'invalid_encoding'].includes(code) && !semantic) {
      problems.push(`valid input refused: ${outcome.status} ${code}: ${outcome.body?.detail}`);
    }
  }
  if (!prepared.valid) {
    if (outcome.status < 400 || outcome.status >= 500) problems.push(`invalid input answered ${outcome.status}`);
    if (!/^application\/problem\+json/.test(outcome.contentType ?? '')) problems.push(`invalid input answered ${outcome.contentType}`);
    if ((await eventsOf(outcome.requestId)) > 0) problems.push('invalid input wrote an event');
    const after = await counts();
    if (JSON.stringify(after) !== JSON.stringify(before)) problems.push(`invalid input changed row counts ${JSON.stringify(before)} → ${JSON.stringify(after)}`);
    if (resource && prepared.jsonBody !== null && typeof prepared.jsonBody === 'object') {
      const now = await readBack[operationId]!(prepared.params, input.role);
      for (const key of Object.keys(prepared.jsonBody as object)) {
        if (key in resource && JSON.stringify(now?.[key]) !== JSON.stringify(resource[key])) problems.push(`invalid input changed ${key}`);
      }
    }
  }
  if (outcome.status < 300) await reseed[operationId]?.();
  if (operationId === 'createLease' && outcome.status < 300) fixture.createdLease = [outcome.body.id, ...fixture.createdLease!].slice(0, 4);
  if (problems.length === 0) return [];
  const shown = { role: input.role, mutation: input.mutation?.kind ?? null, valid: prepared.valid, params: prepared.params, query: prepared.query, body: prepared.jsonBody };
  return problems.map((p) => `${operationId} ${JSON.stringify(shown).slice(0, 400)}: ${p}`);
}

const httpOperations = (Object.keys(operations) as OperationId[]).filter((id) => !operations[id].websocket).sort();

describe('contract-driven fuzz', () => {
  it.each(httpOperations.map((id, index) => [id, index] as const))('%s', async (operationId, index) => {
    const cases = fc.sample(caseArbitrary(operationId), { seed: SEED + index, numRuns: RUNS });
    const problems: string[] = [];
    for (const input of cases) problems.push(...(await check(operationId, input)));
    expect(problems).toEqual([]);
  }, 120_000);

  it('sent every request to the server under test on loopback', async () => {
    expect(seen.requests).toBeGreaterThanOrEqual(httpOperations.length * RUNS);
    expect(new URL(api.url).hostname).toBe('127.0.0.1');
    const hosts = await api.database.db.selectFrom('hosts').select('address').where('type', '<>', 'virtual').execute();
    for (const { address } of hosts) expect([`127.0.0.1:${closedPort}`, `[::1]:${closedPort}`]).toContain(address);
    const endpoints = await api.database.db.selectFrom('webhook_endpoints').select('url').execute();
    expect(endpoints.length).toBeGreaterThan(0);
    for (const { url } of endpoints) expect([`127.0.0.1:${closedPort}`, `[::1]:${closedPort}`]).toContain(new URL(url).host);
  });
});
