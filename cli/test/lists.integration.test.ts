import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CloudPhone } from '@cloudphone/sdk';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { listRows } from '../../openapi/generate/cli.js';
import { loadSpec, type Operation } from '../../openapi/generate/spec.js';
import { APKS } from '../../server/test/helpers/apk-fixtures.js';
import { ManualClock } from '../../server/test/helpers/clock.js';
import { columnHeaders, formatCell, TABLE_ARRAY_ITEMS, valueAt } from '../src/lib/output.js';
import { assertBuilt, runCli, type Result } from './fixtures/cli.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

/*
 * Every list command of the contract, through the built CLI against the real server: the table shows the rows
 * (whatever wraps them in the response) under headers naming their fields, and --json prints the rows as one
 * array. The commands come from the contract, so a new list operation is covered without touching this file.
 */

const spec = loadSpec(resolve(import.meta.dirname, '..', '..', 'openapi', 'cloudphone.yaml'));
const lists = spec.operations.filter((op) => op.method === 'GET' && !op.cli.handwritten && !op.cli.hidden && listRows(spec, op) !== null);

/** Values for parameters whose contract example does not fit this server's data (a file, not a directory). */
const QUERY_VALUES: Record<string, string> = { path: '/sdcard' };

let server: TestServer;
let home: string;
let token: string;
let deviceId: string;
let webhookId: string;
let eventId: string;

function cli(args: string[]): Promise<Result> {
  return runCli(home, args, { env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token } });
}

/** The command line of a list operation: its words, its path arguments and its required query flags. */
function argv(op: Operation): string[] {
  const words = op.cli.id.split(' ');
  for (const p of op.parameters) {
    if (p.in === 'path') {
      const value = { deviceId, webhookId, eventId }[p.name];
      if (value === undefined) throw new Error(`${op.id}: no value for the path parameter ${p.name}`);
      words.push(value);
    } else if (p.in === 'query' && p.required) {
      words.push(`--${p.name}`, QUERY_VALUES[p.name] ?? String(p.example));
    }
  }
  return words;
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const listener = createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as AddressInfo;
  await new Promise((resolve) => listener.close(resolve));
  return port;
}

/** Waits for what `find` looks for, polling; the server's leader closes a period on its own schedule. */
async function eventually<T>(what: string, find: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what} did not happen`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

beforeAll(async () => {
  assertBuilt();
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-lists-'));
  // An invoice needs a closed period: the clock moves into the next month once there is usage.
  const clock = new ManualClock(new Date());
  server = await startTestServer('cli-lists', 1, { clock: clock.now, billingCheckSeconds: 1, webhookAllowPrivate: true });
  // An API token outlives the month the clock jumps; the access token would not.
  const login = new CloudPhone({ baseUrl: server.url, token: server.adminToken });
  token = (await login.tokens.create({ name: 'lists', scopes: ['read', 'write', 'admin'] })).secret;
  const admin = new CloudPhone({ baseUrl: server.url, token });
  // Something in every list: users, tokens, events, devices, hosts, a budget, a usage record and the invoice of its
  // period, plans (the default one), a lease, an app and its install job, a webhook endpoint (on a loopback port
  // nobody listens on) and its deliveries.
  webhookId = (await admin.webhooks.create({ url: `http://127.0.0.1:${await closedPort()}/hook`, eventTypes: ['lease.*'] })).id;
  await admin.budgets.create({ scope: 'project', project: 'lists', currency: 'USD', amount: 10_000 });
  const metered = await admin.leases.create({ count: 1, ttlSeconds: 600, project: 'lists' });
  clock.advance(90);
  await metered.release();
  const now = clock.now();
  clock.advance((Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime()) / 1000 + 5);
  await eventually('the close of the period into an invoice', async () => (await admin.invoices.list()).data[0]);

  const lease = await admin.leases.create({ count: 1, ttlSeconds: 600, waitSeconds: 30 });
  deviceId = lease.devices[0]!.id;
  const app = await admin.apps.upload(APKS.settings);
  await (await admin.apps.install(app.id, { devices: [deviceId] })).wait();
  // A delivery tried at least once, so that its attempts are a table.
  eventId = await eventually('a webhook attempt', async () => {
    const deliveries = await admin.webhooks.listDeliveries(webhookId);
    return deliveries.data.find((delivery) => delivery.attempts > 0)?.eventId;
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(home, { recursive: true, force: true });
});

describe('every list command', () => {
  test('the contract has list operations of each shape: pages, wrapped rows and rows beside other fields', () => {
    const fields = lists.map((op) => listRows(spec, op)!.field);
    expect(lists.some((op) => op.paginated)).toBe(true);
    expect(lists.some((op) => !op.paginated && listRows(spec, op)!.field === 'data')).toBe(true);
    expect(fields).toContain('entries');
  });

  // Concurrent: each spawns the CLI twice, and most of that time is node starting up.
  test.concurrent.each(lists.map((op) => [op.cli.id, op] as const))('%s: --json prints the rows as an array, the table shows them under field headers', async (_id, op) => {
    const [json, table] = await Promise.all([cli([...argv(op), '--json']), cli(argv(op))]);
    expect(json.code, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout) as unknown[];
    expect(Array.isArray(rows), json.stdout.slice(0, 200)).toBe(true);
    expect(rows.length, 'the test data should give every list a row').toBeGreaterThan(0);
    for (const row of rows) expect(row).toBeTypeOf('object');

    expect(table.code, table.stderr).toBe(0);
    const columns = op.cli.columns ?? [];
    const [header, ...lines] = table.stdout.trimEnd().split('\n');
    expect(header!.split(/ {2,}/)).toEqual(columnHeaders(columns));
    expect(lines).toHaveLength(rows.length);
    lines.forEach((line, i) => {
      const first = formatCell(valueAt(rows[i], columns[0]!), TABLE_ARRAY_ITEMS);
      expect(line.startsWith(first), `${line} should start with ${first}`).toBe(true);
    });
    // No cell shows the wrapper of the rows, and no row is all missing fields.
    expect(table.stdout).not.toMatch(/\[\{/);
    expect(lines.every((line) => line.split(/ {2,}/).some((cell) => cell !== '-'))).toBe(true);
  });
});
