import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyData, NOT_COPIED, tablesToCopy } from '../../src/db/copy.js';
import { DATABASE_FILE, openPostgres } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { startServer, type RunningServer } from '../../src/index.js';
import { startVirtualDevices, type VirtualDevice } from '../../src/virtual-device/index.js';
import { eventually } from '../devices/helpers.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { createTestSchema, freePort, type TestDatabase } from '../helpers/postgres.js';
import { buildServer, runServerBin } from '../helpers/server-bin.js';
import { startTestSmtp, type TestSmtp } from '../notifications/email/smtp.js';

type Json = Record<string, any>;

const ADMIN_PASSWORD = 'admin-password-for-copy';
const ALICE_PASSWORD = 'alice-password-for-copy';
const DEVICES = 2;
const LEASE_STATES = ['queued', 'granted', 'released', 'expired', 'cancelled', 'timed_out'];

/**
 * The servers' time: the real time moved back to just before the month began, until the install's period ends
 * (`closePeriod`), so that a billing period closes into an invoice while the install is used.
 */
const monthStart = (() => {
  const now = new Date();
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
})();
let offsetMs = monthStart - 200_000 - Date.now();
const clock = (): Date => new Date(Date.now() + offsetMs);

/** Moves the servers' time to just after the period's end. */
function closePeriod(): void {
  offsetMs += Math.max(0, monthStart + 2000 - clock().getTime());
}

/** Where the servers send mail. */
let smtp: TestSmtp;

/**
 * A server on the data directory `dataDir`, on SQLite or on the PostgreSQL at `databaseUrl`, reaching the devices
 * at `adbDevices` directly, mailing through the test's SMTP server and delivering webhooks to loopback.
 */
async function serve(dataDir: string, adbDevices: string[], databaseUrl?: string): Promise<RunningServer> {
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    logLevel: 'silent',
    adminPassword: ADMIN_PASSWORD,
    localAdb: 'off',
    adbDevices,
    clock,
    billingCheckSeconds: 1,
    smtpUrl: smtp.url,
    webhookAllowPrivate: true,
  });
  const { accessToken } = await login(server, 'admin', ADMIN_PASSWORD);
  await eventually(async () => {
    const devices = await all(server, '/v1/devices', accessToken);
    return devices.length === DEVICES && devices.every((d) => d.connected) ? devices : undefined;
  }, 30_000, 'the devices connected');
  return server;
}

interface Call {
  token?: string;
  body?: unknown;
  raw?: Uint8Array;
  headers?: Record<string, string>;
}

async function call(server: RunningServer, method: string, path: string, options: Call = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.raw !== undefined) headers['content-type'] = 'application/octet-stream';
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    ...(options.raw !== undefined ? { body: options.raw } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

async function ok(server: RunningServer, method: string, path: string, options: Call = {}): Promise<any> {
  const { status, body } = await call(server, method, path, options);
  if (status >= 300) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(body)}`);
  return body;
}

async function login(server: RunningServer, username: string, password: string): Promise<Json> {
  return ok(server, 'POST', '/v1/auth/login', { body: { username, password } });
}

/** Every item of a listing, following its cursors (pages of `limit`). */
async function all(server: RunningServer, path: string, token: string, limit = 100): Promise<Json[]> {
  const items: Json[] = [];
  let cursor: string | null = null;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page: Json = await ok(server, 'GET', `${path}${separator}limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`, { token });
    items.push(...page.data);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return items;
}

/** What the API shows of an install: the listings the copy must keep, as the admin and alice see them. */
interface Snapshot {
  devices: Json[];
  leases: Json[];
  apps: Json[];
  events: Json[];
  users: Json[];
  me: Json;
  plans: Json[];
  budgets: Json[];
  invoices: Json[];
  usage: Json[];
  webhooks: Json[];
  email: Json;
  preferences: Json;
}

async function snapshot(server: RunningServer, admin: string, alice: string): Promise<Snapshot> {
  return {
    // When a device was last seen changes with every start; everything else about it is data the copy keeps.
    devices: (await all(server, '/v1/devices', admin)).map(({ lastSeenAt: _, ...device }) => device),
    leases: await all(server, `/v1/leases?allUsers=true&${LEASE_STATES.map((s) => `status=${s}`).join('&')}`, admin),
    apps: await all(server, '/v1/apps', alice),
    events: await all(server, '/v1/events', admin),
    users: await all(server, '/v1/users', admin),
    me: await ok(server, 'GET', '/v1/me', { token: alice }),
    plans: await all(server, '/v1/plans', admin),
    budgets: await all(server, '/v1/budgets', admin),
    invoices: await all(server, '/v1/invoices', admin),
    usage: await all(server, '/v1/usage/records', admin),
    webhooks: await all(server, '/v1/webhooks', alice),
    email: await ok(server, 'GET', '/v1/me/email', { token: alice }),
    preferences: await ok(server, 'GET', '/v1/inbox/preferences', { token: alice }),
  };
}

/** Every row of `table`, in a stable order (the event log by position, the others by their whole content). */
function sorted(table: string, rows: Record<string, unknown>[]): Record<string, unknown>[] {
  if (table === 'events') return [...rows].sort((a, b) => (a.seq as number) - (b.seq as number));
  const key = (row: Record<string, unknown>) => JSON.stringify(Object.entries(row).sort(([a], [b]) => a.localeCompare(b)));
  return [...rows].sort((a, b) => key(a).localeCompare(key(b)));
}

describe('cloudphone-server copy-data', () => {
  let dir: string;
  let devices: VirtualDevice[];
  let addresses: string[];
  let dataDir: string;
  let source: string;
  let before: Snapshot;
  /** Credentials issued on SQLite, used again on PostgreSQL. */
  let apiToken: string;
  let adminAccess: string;
  let eventCursor: string;
  let afterCursor: Json[];
  const schemas: TestDatabase[] = [];
  /** Alice's webhook receiver: it fails the first request, so that a delivery takes two attempts. */
  let receiver: Server;
  let received = 0;

  async function schema(): Promise<TestDatabase> {
    const created = await createTestSchema();
    schemas.push(created);
    return created;
  }

  beforeAll(async () => {
    buildServer();
    devices = await startVirtualDevices(DEVICES);
    addresses = devices.map((device) => `${device.host}:${device.port}`);
    dir = mkdtempSync(join(tmpdir(), 'cloudphone-copy-'));
    dataDir = join(dir, 'data');
    source = join(dataDir, DATABASE_FILE);
    smtp = await startTestSmtp();
    receiver = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        received += 1;
        response.writeHead(received === 1 ? 500 : 204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));

    // A single-node install on SQLite, used through the API so that every table holds rows.
    const server = await serve(dataDir, addresses);
    try {
      const admin = await login(server, 'admin', ADMIN_PASSWORD);
      adminAccess = admin.accessToken;
      await ok(server, 'POST', '/v1/users', {
        token: adminAccess,
        body: { username: 'alice', password: ALICE_PASSWORD, role: 'member' },
      });
      expect((await call(server, 'POST', '/v1/auth/login', { body: { username: 'alice', password: 'wrong-password' } })).status).toBe(401);
      const first = await login(server, 'alice', ALICE_PASSWORD);
      const alice = (await ok(server, 'POST', '/v1/auth/refresh', { body: { refreshToken: first.refreshToken } })).accessToken;
      apiToken = (await ok(server, 'POST', '/v1/tokens', { token: alice, body: { name: 'ci', scopes: ['write'] } })).secret;
      // Alice pays by the second.
      const plan = await ok(server, 'POST', '/v1/plans', { token: adminAccess, body: { name: 'Metered', currency: 'USD', defaultPrice: 60 } });
      await ok(server, 'PUT', `/v1/users/${first.user.id}/plan`, { token: adminAccess, body: { planId: plan.id } });

      // Alice's address, verified from the mailed link; her preferences; her webhook endpoint for lease events.
      await ok(server, 'PUT', '/v1/me/email', { token: alice, body: { email: 'alice@example.com' } });
      const link = /\bhttp:\/\/127\.0\.0\.1:\d+\/v1\/email-verifications\?token=[A-Za-z0-9_-]+/.exec((await smtp.nth(1)).mail.text ?? '');
      expect((await fetch(link![0])).status).toBe(200);
      await ok(server, 'PATCH', '/v1/inbox/preferences', {
        token: alice,
        body: { preferences: [{ kind: 'lease.expiring', email: false }, { kind: 'budget.threshold', inbox: false }] },
      });
      const hook = await ok(server, 'POST', '/v1/webhooks', {
        token: alice,
        body: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, eventTypes: ['lease.*', 'app.install.*'] },
      });

      // A lease of a project that installs an app, then ends: its device is reset.
      const used = await ok(server, 'POST', '/v1/leases', { token: alice, body: { count: 1, ttlSeconds: 600, project: 'copy' } });
      const app = await ok(server, 'POST', '/v1/apps?fileName=unlock.apk', { token: alice, raw: readFileSync(APKS.unlock) });
      const job = await ok(server, 'POST', `/v1/apps/${app.id}/install`, { token: alice, body: { leaseId: used.id } });
      await eventually(async () => {
        const got = await ok(server, 'GET', `/v1/install-jobs/${job.id}`, { token: alice });
        return got.status === 'succeeded' || got.status === 'failed' ? got : undefined;
      }, 30_000, 'the install job to finish');
      await ok(server, 'POST', `/v1/leases/${used.id}/release`, { token: alice });
      await eventually(async () => {
        const devices = await all(server, '/v1/devices', alice);
        return devices.every((d) => d.available) ? devices : undefined;
      }, 30_000, 'the reset after the release');
      // The first delivery failed and was sent again.
      await eventually(async () => {
        const deliveries = await all(server, `/v1/webhooks/${hook.id}/deliveries`, alice);
        return deliveries.some((d) => d.status === 'delivered' && d.attempts >= 2) ? deliveries : undefined;
      }, 30_000, 'a webhook delivered on its second attempt');
      // The project's budget, smaller than what the lease used: spent at the next check, past each threshold.
      await ok(server, 'POST', '/v1/budgets', {
        token: adminAccess,
        body: { scope: 'project', project: 'copy', currency: 'USD', amount: 1, thresholds: [50, 100] },
      });
      await eventually(async () => {
        const events = await all(server, '/v1/events?type=budget.exhausted', adminAccess);
        return events.length > 0 ? events : undefined;
      }, 30_000, 'the budget spent');
      // The admins are told of the project's budget in their inboxes.
      await eventually(async () => {
        const inbox = await all(server, '/v1/inbox', adminAccess);
        return inbox.some((n) => n.kind === 'budget.exhausted') ? inbox : undefined;
      }, 30_000, 'the admins notified of the spent budget');

      // A lease holding every device, and one waiting in the queue.
      await ok(server, 'POST', '/v1/leases', {
        token: apiToken,
        headers: { 'idempotency-key': 'copy-data-test' },
        body: { count: DEVICES, ttlSeconds: 3600, note: 'held' },
      });
      const queued = await call(server, 'POST', '/v1/leases', { token: adminAccess, body: { count: 1, waitSeconds: 3600 } });
      expect(queued.status).toBe(202);

      // The period ends: alice's draft invoice, finalized.
      closePeriod();
      const [draft] = await eventually(async () => {
        const invoices = await all(server, '/v1/invoices', adminAccess);
        return invoices.length > 0 ? invoices : undefined;
      }, 30_000, 'the period closed');
      await ok(server, 'POST', `/v1/invoices/${draft!.id}/finalize`, { token: adminAccess });

      before = await snapshot(server, adminAccess, alice);
      const page: Json = await ok(server, 'GET', '/v1/events?limit=5', { token: adminAccess });
      eventCursor = page.nextCursor;
      afterCursor = before.events.slice(5, 10);
    } finally {
      await server.close();
    }
    expect(before.leases.map((l) => l.status)).toEqual(['released', 'granted', 'queued']);
    expect(before.apps).toHaveLength(1);
    expect(before.invoices).toMatchObject([{ username: 'alice', status: 'finalized', number: 1 }]);
    // Spent last period; this one has just begun.
    expect(before.budgets).toMatchObject([{ scope: 'project', project: 'copy', spent: 0 }]);
    expect(before.email).toMatchObject({ email: 'alice@example.com', verified: true });
    expect(before.webhooks).toMatchObject([{ userId: before.me.id, eventTypes: ['lease.*', 'app.install.*'] }]);
  }, 180_000);

  afterAll(async () => {
    for (const created of schemas) await created.drop();
    await new Promise<void>((resolve) => (receiver === undefined ? resolve() : receiver.close(() => resolve())));
    await smtp?.close();
    await Promise.all((devices ?? []).map((device) => device.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies every table row for row, the event log in order, and new events continue after the copied ones', async () => {
    const target = await schema();
    const outcome = await copyData(dataDir, target.url);
    expect(outcome.source).toBe(source);

    const sqlite = new BetterSqlite3(source, { readonly: true });
    const postgres = openPostgres(target.url);
    try {
      // Every table of the SQLite schema is copied, or is SQLite's own or the migrator's.
      const tables = sqlite.prepare<[], { name: string }>("select name from sqlite_master where type = 'table'").all();
      const copied = outcome.tables.map((t) => t.name);
      expect(tables.map((t) => t.name).filter((name) => !copied.includes(name)).sort()).toEqual(
        [...NOT_COPIED, 'sqlite_sequence'].sort(),
      );
      expect(copied).toEqual(tablesToCopy(sqlite).map((t) => t.name));
      // Tables come after the ones they reference.
      expect(copied.indexOf('users')).toBeLessThan(copied.indexOf('sessions'));
      expect(copied.indexOf('sessions')).toBeLessThan(copied.indexOf('spent_refresh_tokens'));
      expect(copied.indexOf('app_blobs')).toBeLessThan(copied.indexOf('apps'));
      expect(copied.indexOf('leases')).toBeLessThan(copied.indexOf('lease_devices'));

      const db = postgres.db as Kysely<any>;
      for (const { name, rows } of outcome.tables) {
        const original = sqlite.prepare(`select * from "${name}"`).all() as Record<string, unknown>[];
        // The install exercised every table: a table added later needs rows here too.
        expect(original.length, `rows in ${name}`).toBeGreaterThan(0);
        expect(rows).toBe(original.length);
        const copy = await db.selectFrom(name).selectAll().execute();
        expect(sorted(name, copy), name).toEqual(sorted(name, original));
      }

      // Events concerning alice name her as their audience, and that is copied with them.
      const audience = sqlite.prepare("select count(*) as n from events where audience_id = (select id from users where username = 'alice')").get();
      expect((audience as { n: number }).n).toBeGreaterThan(0);

      // The released lease's device was reset, and the reset is part of what was copied.
      expect(sqlite.prepare('select count(*) as n from lease_devices where reset is not null').get()).toEqual({ n: 1 });

      const maxSeq = (sqlite.prepare('select max(seq) as seq from events').get() as { seq: number }).seq;
      const added = await db
        .insertInto('events')
        .values({ id: 'evt_after_copy', type: 'test.event', occurred_at: new Date().toISOString(), actor_type: 'system', data: '{}' })
        .returning('seq')
        .executeTakeFirstOrThrow();
      expect(added.seq).toBe(maxSeq + 1);
      const { rows } = await sql<{ id: string }>`select id from events order by seq`.execute(db);
      const logged = sqlite.prepare<[], { id: string }>('select id from events order by seq').all();
      expect(rows.map((r) => r.id)).toEqual([...logged.map((e) => e.id), 'evt_after_copy']);
    } finally {
      sqlite.close();
      await postgres.close();
    }
  });

  it('copies with the built binary; a server on PostgreSQL with the same data directory shows the same install', async () => {
    const target = await schema();
    const copied = await runServerBin(['copy-data', '--from', source, '--to', target.url]);
    const masked = new URL(target.url);
    masked.password = '***';
    expect(copied).toMatchObject({ code: 0, stderr: '' });
    expect(copied.stdout).toMatch(/^users +2$/m);
    expect(copied.stdout).toMatch(/^events +\d+$/m);
    expect(copied.stdout).toMatch(
      new RegExp(`\\nCopied \\d+ rows of \\d+ tables from ${source} to ${masked.href.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} in \\d+\\.\\d s\\n$`),
    );

    // Copying again into the same database is refused.
    const again = await runServerBin(['copy-data', '--from', source, '--to', target.url]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^cloudphone-server: --to \S+: the database is not empty \(\w+ has rows\); /);

    const server = await serve(dataDir, addresses, target.url);
    try {
      // The password, the access token of an earlier login and the API token issued on SQLite all work.
      const alice = (await login(server, 'alice', ALICE_PASSWORD)).accessToken;
      expect(await ok(server, 'GET', '/v1/me', { token: apiToken })).toMatchObject({ username: 'alice' });
      expect(await ok(server, 'GET', '/v1/me', { token: adminAccess })).toMatchObject({ username: 'admin' });

      const after = await snapshot(server, adminAccess, alice);
      expect(after.devices).toEqual(before.devices);
      expect(after.leases).toEqual(before.leases);
      expect(after.apps).toEqual(before.apps);
      expect(after.users).toEqual(before.users);
      expect(after.me).toEqual(before.me);
      expect(after.plans).toEqual(before.plans);
      expect(after.budgets).toEqual(before.budgets);
      expect(after.invoices).toEqual(before.invoices);
      expect(after.usage).toEqual(before.usage);
      expect(after.webhooks).toEqual(before.webhooks);
      expect(after.email).toEqual(before.email);
      expect(after.preferences).toEqual(before.preferences);
      expect(after.events.slice(0, before.events.length)).toEqual(before.events);
      // A cursor taken on SQLite continues where it left off.
      expect((await ok(server, 'GET', `/v1/events?limit=5&cursor=${eventCursor}`, { token: adminAccess })).data).toEqual(afterCursor);
      // The app's bytes come from the same data directory.
      const apk = await fetch(`${server.url}/v1/apps/${before.apps[0]!.id}/apk`, { headers: { authorization: `Bearer ${alice}` } });
      expect(Buffer.from(await apk.arrayBuffer()).equals(readFileSync(APKS.unlock))).toBe(true);

      // What happens next is logged after everything copied.
      const bob = await ok(server, 'POST', '/v1/users', {
        token: adminAccess,
        body: { username: 'bob', password: 'bob-password-for-copy', role: 'viewer' },
      });
      const latest = await all(server, '/v1/events', adminAccess);
      expect(latest.slice(0, before.events.length)).toEqual(before.events);
      expect(latest.at(-1)).toMatchObject({ type: 'user.created', subject: { id: bob.id } });
    } finally {
      await server.close();
    }
  });

  it('refuses a target that holds any row, in one line with exit 2, and writes nothing', async () => {
    const target = await schema();
    const db = openPostgres(target.url);
    try {
      await migrateToLatest(db.db);
      await db.db
        .insertInto('login_failures')
        .values({ key: '127.0.0.1', failures: 1, last_failed_at: new Date().toISOString() })
        .execute();

      const refused = await runServerBin(['copy-data', '--from', dataDir, '--to', target.url]);
      const masked = new URL(target.url);
      masked.password = '***';
      expect(refused).toEqual({
        code: 2,
        stdout: '',
        stderr:
          `cloudphone-server: --to ${masked.href}: the database is not empty (login_failures has rows); ` +
          'copy-data fills only an empty database\n',
      });
      const { rows } = await sql<{ users: number; events: number }>`
        select (select count(*) from users) as users, (select count(*) from events) as events`.execute(db.db);
      expect(rows[0]).toEqual({ users: 0, events: 0 });
    } finally {
      await db.close();
    }
  });

  it('refuses a source behind the latest schema, or that is no cloudphone database, without writing to it', async () => {
    const target = await schema();
    const behind = join(dir, 'behind');
    mkdirSync(behind);
    copyFileSync(source, join(behind, DATABASE_FILE));
    const file = new BetterSqlite3(join(behind, DATABASE_FILE));
    const last = file.prepare('select name from kysely_migration order by name desc limit 1').get() as { name: string };
    file.prepare('delete from kysely_migration where name = ?').run(last.name);
    file.close();
    expect(await runServerBin(['copy-data', '--from', behind, '--to', target.url])).toEqual({
      code: 2,
      stdout: '',
      stderr:
        `cloudphone-server: --from ${join(behind, DATABASE_FILE)}: the database lacks migration ${last.name}; ` +
        'bring it up to date first with cloudphone-server migrate --data-dir <its data directory>\n',
    });

    const notSqlite = join(dir, 'not-a-database');
    copyFileSync(APKS.unlock, notSqlite);
    expect(await runServerBin(['copy-data', '--from', notSqlite, '--to', target.url])).toMatchObject({
      code: 2,
      stderr: `cloudphone-server: --from ${notSqlite}: not a SQLite database\n`,
    });
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(await runServerBin(['copy-data', '--from', empty, '--to', target.url])).toMatchObject({
      code: 2,
      stderr: `cloudphone-server: --from ${empty}: the directory holds no ${DATABASE_FILE}\n`,
    });
    // Nothing reached the target: not even the migrations.
    const db = openPostgres(target.url);
    try {
      const { rows } = await sql<{ n: number }>`
        select count(*) as n from information_schema.tables where table_schema = current_schema()`.execute(db.db);
      expect(rows[0]!.n).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('names --to with the password masked when the URL is wrong or nothing answers', async () => {
    const wrong = await runServerBin(['copy-data', '--from', dataDir, '--to', 'mysql://farm:secret@127.0.0.1/cloudphone']);
    expect(wrong).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'cloudphone-server: --to: expected a PostgreSQL URL such as postgres://user:password@host:5432/database, ' +
        'got "mysql://farm:***@127.0.0.1/cloudphone"\n',
    });
    const port = await freePort();
    const unreachable = await runServerBin(['copy-data', '--from', dataDir, '--to', `postgres://farm:secret@127.0.0.1:${port}/cloudphone`]);
    expect(unreachable).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `cloudphone-server: --to postgres://farm:***@127.0.0.1:${port}/cloudphone: cannot connect: ` +
        'nothing answers at that address\n',
    });
    const missing = await runServerBin(['copy-data', '--to', 'postgres://farm:secret@127.0.0.1/cloudphone']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("error: required option '--from <path>' not specified\n");
  });
});
