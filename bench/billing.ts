import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { join } from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { loadAdmission, type AdmissionRequest } from '../server/src/billing/admission.js';
import { billingClassOf } from '../server/src/billing/metering.js';
import { withStatementCache } from '../server/src/db/database.js';
import type { DB } from '../server/src/db/schema.js';
import { newId, ulid } from '../server/src/db/ids.js';
import { startCluster, type Cluster } from '../server/test/helpers/cluster.js';
import {
  BURST,
  BURST_REQUESTS,
  burst,
  call,
  checkAndRelease,
  createLease,
  expect,
  ms,
  setup,
  versus,
  type Reply,
} from './devices.js';
import { onEngines, type BenchPostgres } from './lib/postgres.js';
import { saveResult, type BenchResult, type Row } from './lib/results.js';
import { median, percentile, round } from './lib/stats.js';

const BILLING_ROUNDS = 5;
const PROJECT = 'bench-project';
const MEMBER_PASSWORD = 'bench-member-password-0123';
/** Far more than the bench spends: the budgets never refuse. */
const BUDGET_AMOUNT = 1_000_000_000;
const TTL_SECONDS = 900;

async function createMember(s: { pool: Pool; token: string }, username: string): Promise<{ id: string; token: string }> {
  const user = expect(
    await call(s.pool, s.token, 'POST', '/v1/users', { username, password: MEMBER_PASSWORD, role: 'member' }),
    201,
    `create ${username}`,
  ).body as { id: string };
  const session = expect(await call(s.pool, null, 'POST', '/v1/auth/login', { username, password: MEMBER_PASSWORD }), 200, 'login');
  return { id: user.id, token: session.body.accessToken as string };
}

/**
 * The lease burst of devices.ts (200 concurrent createLease, waitSeconds 0, for 50 free devices) by a member on
 * the default free plan against a member on a metered plan with quotas, a user budget and a project budget.
 */
export async function benchLeaseBurstBilling(): Promise<BenchResult> {
  const s = await setup(BURST, BURST_REQUESTS);
  try {
    const off = await createMember(s, 'bench-free');
    const on = await createMember(s, 'bench-metered');
    const classes = [...new Set((s.devices as unknown as { kind: string; labels: Record<string, string> }[]).map(billingClassOf))];
    const plan = expect(
      await call(s.pool, s.token, 'POST', '/v1/plans', {
        name: 'Bench metered',
        currency: 'USD',
        prices: Object.fromEntries(classes.map((name) => [name, 12])),
        defaultPrice: 20,
        includedMinutes: 600,
        quotas: { maxConcurrentDevices: 100, maxLeaseTtlSeconds: 3600, minutesPerPeriod: 10_000_000 },
      }),
      201,
      'create plan',
    ).body as { id: string };
    expect(await call(s.pool, s.token, 'PUT', `/v1/users/${on.id}/plan`, { planId: plan.id }), 200, 'assign plan');
    const budgets = [
      { scope: 'user', userId: on.id, currency: 'USD', amount: BUDGET_AMOUNT },
      { scope: 'project', project: PROJECT, currency: 'USD', amount: BUDGET_AMOUNT },
    ];
    for (const budget of budgets) expect(await call(s.pool, s.token, 'POST', '/v1/budgets', budget), 201, 'create budget');

    const sides = {
      off: () => createLease(s, off.token, { ttlSeconds: TTL_SECONDS }),
      on: () => createLease(s, on.token, { ttlSeconds: TTL_SECONDS, project: PROJECT }),
    };
    const times = { off: [] as number[], on: [] as number[] };
    const roundP99 = { off: [] as number[], on: [] as number[] };
    const released: number[] = [];
    const run = async (side: 'off' | 'on', what: string, keep: boolean) => {
      const measured = await burst(BURST_REQUESTS, sides[side]);
      released.push(await checkAndRelease(s, measured.replies, BURST, what));
      if (!keep) return;
      times[side].push(...measured.times);
      roundP99[side].push(percentile(measured.times, 99));
    };
    await burst(BURST_REQUESTS, () => call(s.pool, s.token, 'GET', '/v1/me')); // opens the 200 connections
    await run('off', 'warm-up, billing off', false);
    await run('on', 'warm-up, billing on', false);
    for (let r = 0; r < BILLING_ROUNDS; r++) {
      const order: ('off' | 'on')[] = r % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
      for (const side of order) await run(side, `round ${r + 1}, billing ${side}`, true);
    }
    // Diagnosis: one grant at a time with nothing else running, which a burst pays about 200 times over at its
    // tail; then, while the metered member holds every device, the admission those requests run.
    const sequential = { off: [] as number[], on: [] as number[] };
    let admission: Record<'off' | 'on', AdmissionCost> | undefined;
    for (const side of ['off', 'on'] as const) {
      const replies: Reply[] = [];
      for (let i = 0; i < BURST; i++) sequential[side].push(await ms(async () => replies.push(expect(await sides[side](), 201, 'sequential lease'))));
      replies.push(expect(await sides[side](), 409, 'sequential refusal'));
      if (side === 'on') {
        admission = await admissionCost(join(s.server.dataDir, 'cloudphone.db'), {
          off: { userId: off.id, project: null, count: 1, ttlSeconds: TTL_SECONDS },
          on: { userId: on.id, project: PROJECT, count: 1, ttlSeconds: TTL_SECONDS },
        });
      }
      released.push(await checkAndRelease(s, replies, BURST, `one at a time, billing ${side}`));
    }
    const cost = admission!;
    const usage = expect(await call(s.pool, on.token, 'GET', '/v1/usage'), 200, 'usage').body as { deviceSeconds: number; usageAmount: number };

    const p = (side: 'off' | 'on', q: number) => percentile(times[side], q);
    const ratio99 = p('on', 99) / p('off', 99);
    const pairs = roundP99.on.map((t, r) => t / roundP99.off[r]!);
    return saveResult({
      name: 'lease-burst-billing',
      title: 'Lease burst with billing on and off',
      target: `${BURST_REQUESTS} concurrent POST /v1/leases for ${BURST} free devices by a member on a metered plan with quotas, a user budget and a project budget answer with p99 ≤ 1.2x that of a member on the default free plan`,
      pass: ratio99 <= 1.2,
      baseline: 'the same burst by a member on the default free plan (what a fresh install does), same server, rounds alternated',
      rows: [
        { metric: 'billing off: POST /v1/leases burst p50', value: round(p('off', 50)), unit: 'ms' },
        { metric: 'billing off: POST /v1/leases burst p99', value: round(p('off', 99)), unit: 'ms' },
        versus('billing on: POST /v1/leases burst p50', p('on', 50), 'ms', p('off', 50)),
        versus('billing on: POST /v1/leases burst p99', p('on', 99), 'ms', p('off', 99)),
        versus('billing on: p99, worst round', Math.max(...roundP99.on), 'ms', Math.max(...roundP99.off)),
        { metric: 'one at a time: POST /v1/leases granted p50, billing off', value: round(median(sequential.off)), unit: 'ms' },
        versus('one at a time: POST /v1/leases granted p50, billing on', median(sequential.on), 'ms', median(sequential.off)),
        { metric: 'admission of one request, billing off (median)', value: round(cost.off.micros, 0), unit: 'µs' },
        versus('admission of one request, billing on (median)', cost.on.micros, 'µs', cost.off.micros, 0),
        { metric: 'statements per admission, billing off', value: cost.off.statements, unit: '' },
        { metric: 'statements per admission, billing on', value: cost.on.statements, unit: '' },
        { metric: 'release 50 leases until all available again (median)', value: round(median(released), 2), unit: 's' },
      ],
      notes: [
        `${BURST} virtual devices in their own process, reached directly (CLOUDPHONE_ADB_DEVICES), the burst of the lease-burst benchmark: ${BURST_REQUESTS} concurrent POST /v1/leases (count 1, ttlSeconds ${TTL_SECONDS}, waitSeconds 0, own Idempotency-Key) over ${BURST_REQUESTS} undici keep-alive connections; every burst exactly ${BURST}×201 and ${BURST_REQUESTS - BURST}×409 no_devices_available, on ${BURST} distinct devices, all released before the next one.`,
        `Billing off: a member on the default plan "Free" (no prices, quotas or budgets), leases without a project. Billing on: a member on a plan with a price for the devices' class (${classes.join(', ')}), 600 included minutes, maxConcurrentDevices 100, maxLeaseTtlSeconds 3600, minutesPerPeriod 10,000,000, a user budget and a budget of the project every lease names, both far from spent; by the end the member had ${usage.deviceSeconds} device-seconds this period, ${usage.usageAmount} cents of usage.`,
        `One untimed burst of each first, then ${BILLING_ROUNDS} rounds of each, alternated (off then on, then on then off).`,
        `Per-round p99 (ms), billing off: ${roundP99.off.map((t) => round(t, 1)).join(', ')}; billing on: ${roundP99.on.map((t) => round(t, 1)).join(', ')}; on/off of each round's pair, run back to back: ${pairs.map((ratio) => round(ratio)).join(', ')} (median ${round(median(pairs))}). The machine is shared and the p99 of a whole run follows its worst moment: the one-at-a-time and admission rows show the cost billing adds to each request more steadily.`,
        `"One at a time" rows: ${BURST} sequential grants of each after the rounds, while the member's earlier ones in the row are still held: the service time of one createLease under the scheduling lock, which a burst pays about ${BURST_REQUESTS} times over at its tail.`,
        `Where the time goes: billing adds two steps under the scheduling lock. Every createLease reads its member's plan and budgets (and whether the leader found a budget spent); only a request for which devices are free goes on to read what the quotas and budgets have used, the admission rows, before its grant. In a burst that is the ${BURST} grants: ${BURST} × (${round(cost.on.micros, 0)} − ${round(cost.off.micros, 0)}) µs = ${round((BURST * (cost.on.micros - cost.off.micros)) / 1000, 0)} ms, against ${round(p('on', 99) - p('off', 99), 0)} ms between the p99s; one at a time a grant with billing on takes ${round(median(sequential.on) - median(sequential.off), 2)} ms more. The admission of a metered member reads the farm's open leases once (at most a row per device: the devices held, the minutes used and the open cost of every budget come from it), their plan, their usage records this period and each budget's recorded spend; billing off reads the plan and finds no budget.`,
        `Admission rows: what a createLease for which devices are free runs under the scheduling lock before its grant (\`loadAdmission\` of server/src/billing/admission.ts read in full, in a transaction), called ${ADMISSION_CALLS} times in a row for each member from the bench process on the server's database file (better-sqlite3, the server's statement cache) while the metered member holds all ${BURST} devices, median of ${ADMISSION_ROUNDS} alternated rounds; each statement of billing on with its calls per admission and median time: ${cost.on.top.join('; ')}. Billing off: ${cost.off.top.join('; ')}.`,
      ],
    });
  } finally {
    await s.close();
  }
}

const ADMISSION_CALLS = 200;
const ADMISSION_ROUNDS = 5;

interface AdmissionCost {
  /** Per admission, begin and commit included. */
  micros: number;
  statements: number;
  /** Each statement: its calls per admission and median duration, slowest first. */
  top: string[];
}

/** The admission of each request, timed and its statements counted, on the SQLite database at `file`. */
async function admissionCost(file: string, requests: Record<'off' | 'on', AdmissionRequest>): Promise<Record<'off' | 'on', AdmissionCost>> {
  const sqlite = new BetterSqlite3(file, { readonly: true });
  sqlite.pragma('busy_timeout = 5000');
  let log: Map<string, number[]> | undefined;
  const db = new Kysely<DB>({
    dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
    log: (event) => {
      if (log === undefined) return;
      const text = event.query.sql.replace(/\s+/g, ' ');
      const times = log.get(text);
      if (times === undefined) log.set(text, [event.queryDurationMillis]);
      else times.push(event.queryDurationMillis);
    },
  });
  try {
    const admit = (request: AdmissionRequest) => db.transaction().execute((trx) => loadAdmission(trx, [request], new Date(), 'UTC'));
    for (const request of Object.values(requests)) for (let i = 0; i < ADMISSION_CALLS / 4; i++) await admit(request);
    const runs = { off: [] as number[], on: [] as number[] };
    const logs = { off: new Map<string, number[]>(), on: new Map<string, number[]>() };
    for (let r = 0; r < ADMISSION_ROUNDS; r++) {
      for (const side of ['off', 'on'] as const) {
        log = logs[side];
        runs[side].push(await ms(async () => {
          for (let i = 0; i < ADMISSION_CALLS; i++) await admit(requests[side]);
        }));
        log = undefined;
      }
    }
    const calls = ADMISSION_CALLS * ADMISSION_ROUNDS;
    const summary = (side: 'off' | 'on'): AdmissionCost => {
      const entries = [...logs[side]].sort((a, b) => median(b[1]) * b[1].length - median(a[1]) * a[1].length);
      return {
        micros: (median(runs[side]) / ADMISSION_CALLS) * 1000,
        statements: round(entries.reduce((sum, [, times]) => sum + times.length, 0) / calls, 1),
        top: entries.map(([text, times]) => `${round(times.length / calls, 1)}× ${Math.round(median(times) * 1000)} µs \`${text.length > 90 ? `${text.slice(0, 90)}…` : text}\``),
      };
    };
    return { off: summary('off'), on: summary('on') };
  } finally {
    await db.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------

const USAGE_ROWS = 1_000_000;
const USAGE_USERS = 20;
const USAGE_DEVICES = 50;
const USAGE_PROJECTS = 10;
const USAGE_MONTH = '2026-10';
const USAGE_DAYS = 31;
const REPORT_RUNS = 5;
const CLASSES = [
  { name: 'physical', price: 10 },
  { name: 'emulator', price: 2 },
  { name: 'flagship', price: 30 },
];
const DEFAULT_PLAN = 'pln_00000000000000000000000000';
const COLUMNS = [
  'id', 'lease_id', 'device_id', 'user_id', 'project', 'billing_class', 'plan_id', 'currency', 'price_per_minute',
  'started_at', 'ended_at', 'start_s', 'end_s', 'seconds', 'included_seconds', 'day', 'period', 'recorded_at',
] as const;
type UsageRow = (string | number | null)[];

/** A deterministic pseudo-random source (mulberry32), so that every run inserts the same records. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The usage records, in batches of `size`, in the column order of COLUMNS. */
function* usageRows(userIds: string[], size: number): Generator<UsageRow[]> {
  const next = random(13);
  const pick = (n: number) => Math.floor(next() * n);
  const leases = Array.from({ length: 5000 }, () => `lse_${ulid()}`);
  let batch: UsageRow[] = [];
  for (let i = 0; i < USAGE_ROWS; i++) {
    const day = 1 + Math.floor((i * USAGE_DAYS) / USAGE_ROWS);
    const dayStartS = Date.UTC(2026, 9, day) / 1000;
    const startS = dayStartS + pick(86_400 - 60);
    const endS = Math.min(startS + 60 + pick(3540), dayStartS + 86_400);
    const seconds = endS - startS;
    const device = pick(USAGE_DEVICES);
    const klass = CLASSES[device % CLASSES.length]!;
    const startedAt = new Date(startS * 1000).toISOString();
    const endedAt = new Date(endS * 1000).toISOString();
    batch.push([
      newId('use', startS * 1000), leases[pick(leases.length)]!, `dev_bench${String(device).padStart(22, '0')}`,
      userIds[pick(userIds.length)]!, `project-${pick(USAGE_PROJECTS)}`, klass.name, DEFAULT_PLAN, 'USD', klass.price,
      startedAt, endedAt, startS, endS, seconds, next() < 0.1 ? Math.min(seconds, 60) : 0,
      `${USAGE_MONTH}-${String(day).padStart(2, '0')}`, USAGE_MONTH, endedAt,
    ]);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

/** The database a report reads, written and queried directly: the baseline of the report over HTTP. */
interface Direct {
  insert(rows: UsageRow[]): Promise<void>;
  /** Runs `query` to the end (every row read). */
  query(query: string): Promise<unknown[]>;
  plan(query: string): Promise<string>;
  close(): Promise<void>;
}

function sqliteDirect(file: string): Direct {
  const db = new BetterSqlite3(file);
  db.pragma('busy_timeout = 10000');
  const insert = db.prepare(`insert into usage_records (${COLUMNS.join(', ')}) values (${COLUMNS.map(() => '?').join(', ')})`);
  const insertAll = db.transaction((rows: UsageRow[]) => {
    for (const row of rows) insert.run(row);
  });
  return {
    insert: async (rows) => void insertAll(rows),
    query: async (query) => {
      const statement = db.prepare(query);
      if (statement.reader) return statement.all();
      statement.run();
      return [];
    },
    plan: async (query) =>
      (db.prepare(`explain query plan ${query}`).all() as { detail: string }[]).map((row) => row.detail).join('; '),
    close: async () => {
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
    },
  };
}

async function postgresDirect(url: string): Promise<Direct> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const types = ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'bigint', 'text', 'text', 'bigint', 'bigint', 'bigint', 'bigint', 'text', 'text', 'text'];
  const insert = `insert into usage_records (${COLUMNS.join(', ')}) select * from unnest(${types.map((type, i) => `$${i + 1}::${type}[]`).join(', ')})`;
  return {
    async insert(rows) {
      await client.query(insert, COLUMNS.map((_, c) => rows.map((row) => row[c])));
    },
    query: async (query) => (await client.query(query)).rows,
    plan: async (query) =>
      (await client.query<{ 'QUERY PLAN': string }>(`explain ${query}`)).rows.map((row) => row['QUERY PLAN'].trim()).join('; '),
    close: () => client.end(),
  };
}

/** What the report's index costs: bytes on disk, and time to write a record with it and with the day index it replaced. */
interface IndexCost {
  tableBytes: number;
  indexBytes: number;
  dayIndexBytes: number;
  /** Microseconds per record written, in transactions of 10,000. */
  withIndex: number;
  withDayIndex: number;
}

const COST_BATCHES = 10;

interface ReportTimes {
  engine: string;
  insertSeconds: number;
  cost: IndexCost;
  count: number;
  sum: number;
  raw: { projectDay: number; user: number };
  http: { projectDay: number; user: number; csv: number };
  rows: { projectDay: number; user: number; csvBytes: number };
  plan: string;
}

const FROM = `${USAGE_MONTH}-01`;
const TO = `${USAGE_MONTH}-${USAGE_DAYS}`;

/** The aggregate the report runs, in plain SQL. */
function aggregate(columns: string[]): string {
  const group = [...columns, 'currency'].join(', ');
  return `select ${group}, sum(seconds) as seconds, sum(seconds - included_seconds) as billable, sum((seconds - included_seconds) * price_per_minute) as cost60 from usage_records where day >= '${FROM}' and day <= '${TO}' group by ${group}`;
}

async function measureReport(engine: 'sqlite' | 'postgres', postgres: BenchPostgres | undefined): Promise<ReportTimes> {
  const cluster: Cluster = await startCluster({
    engine,
    nodes: 1,
    virtualDevices: 0,
    ...(postgres === undefined ? {} : { databaseUrl: await postgres.createDatabase() }),
  });
  const pool = new Pool(cluster.nodes[0]!.url, { connections: 1 });
  let direct: Direct | undefined;
  try {
    const credentials = { username: 'admin', password: cluster.adminPassword };
    const token = expect(await call(pool, null, 'POST', '/v1/auth/login', credentials), 200, 'login').body.accessToken as string;
    const admin = { pool, token };
    const userIds: string[] = [];
    for (let u = 0; u < USAGE_USERS; u++) userIds.push((await createMember(admin, `usage-${u}`)).id);
    direct = engine === 'sqlite' ? sqliteDirect(join(cluster.dataDir, 'cloudphone.db')) : await postgresDirect(cluster.databaseUrl!);
    // The leader closes the periods before this one at start; records written after that leave it nothing to do.
    for (let i = 0; (await direct.query('select period from billing_periods')).length === 0; i++) {
      if (i === 100) throw new Error('the server did not close the last billing period within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const started = performance.now();
    for (const rows of usageRows(userIds, 10_000)) await direct.insert(rows);
    if (engine === 'postgres') await direct.query('analyze usage_records');
    const insertSeconds = (performance.now() - started) / 1000;

    const report = (query: string) => async () => {
      const res = await pool.request({ method: 'GET', path: `/v1/usage/report?from=${FROM}&to=${TO}&${query}`, headers: { authorization: `Bearer ${token}` } });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`report ${query}: ${res.statusCode} ${text}`);
      return text;
    };
    const reports = {
      projectDay: report('groupBy=project&groupBy=day'),
      user: report('groupBy=user'),
      csv: report('groupBy=project&groupBy=day&format=csv'),
    };
    const raw = { projectDay: () => direct!.query(aggregate(['project', 'day'])), user: () => direct!.query(aggregate(['user_id'])) };
    const counted = await direct.query('select count(*) as n, sum(seconds) as s from usage_records');
    const { n, s: total } = counted[0] as { n: number | string; s: number | string };
    if (Number(n) !== USAGE_ROWS) throw new Error(`${n} usage records instead of ${USAGE_ROWS}`);
    const projectDay = JSON.parse(await reports.projectDay()) as { rows: unknown[]; totals: { deviceSeconds: number }[] };
    if (projectDay.totals[0]?.deviceSeconds !== Number(total)) {
      throw new Error(`the report counts ${projectDay.totals[0]?.deviceSeconds} device-seconds, the table ${total}`);
    }
    const userRows = (JSON.parse(await reports.user()) as { rows: unknown[] }).rows.length;
    const csvBytes = (await reports.csv()).length;
    const timed = { count: [] as number[], sum: [] as number[], rawProjectDay: [] as number[], rawUser: [] as number[], projectDay: [] as number[], user: [] as number[], csv: [] as number[] };
    for (let r = 0; r < REPORT_RUNS; r++) {
      timed.count.push(await ms(() => direct!.query('select count(*) from usage_records')));
      timed.sum.push(await ms(() => direct!.query('select sum(seconds) from usage_records')));
      timed.rawProjectDay.push(await ms(raw.projectDay));
      timed.projectDay.push(await ms(reports.projectDay));
      timed.rawUser.push(await ms(raw.user));
      timed.user.push(await ms(reports.user));
      timed.csv.push(await ms(reports.csv));
    }
    const plan = await direct.plan(aggregate(['project', 'day']));
    const cost = await indexCost(engine, direct, userIds);
    return {
      engine,
      insertSeconds,
      cost,
      count: median(timed.count),
      sum: median(timed.sum),
      raw: { projectDay: median(timed.rawProjectDay), user: median(timed.rawUser) },
      http: { projectDay: median(timed.projectDay), user: median(timed.user), csv: median(timed.csv) },
      rows: { projectDay: projectDay.rows.length, user: userRows, csvBytes },
      plan,
    };
  } finally {
    await direct?.close();
    await pool.close();
    await cluster.stop();
  }
}

/**
 * After the reports: more records written with the report's index, then with the index on the day alone (migration
 * 0008's, which 0009 replaced) in its place, and the size of each index and of the table.
 */
async function indexCost(engine: 'sqlite' | 'postgres', direct: Direct, userIds: string[]): Promise<IndexCost> {
  const bytes = async (name: string) => {
    const query =
      engine === 'sqlite'
        ? `select sum(pgsize) as n from dbstat where name = '${name}'`
        : `select pg_relation_size('${name}') as n`;
    return Number(((await direct.query(query))[0] as { n: number | string }).n);
  };
  const write = async () => {
    const batches: UsageRow[][] = [];
    for (const rows of usageRows(userIds, 10_000)) if (batches.push(rows) === COST_BATCHES) break;
    const started = performance.now();
    for (const rows of batches) await direct.insert(rows);
    return ((performance.now() - started) * 1000) / (COST_BATCHES * 10_000);
  };
  const tableBytes = await bytes('usage_records');
  const indexBytes = await bytes('usage_records_report');
  const withIndex = await write();
  await direct.query('drop index usage_records_report');
  await direct.query('create index usage_records_day on usage_records (day)');
  const dayIndexBytes = await bytes('usage_records_day');
  const withDayIndex = await write();
  return { tableBytes, indexBytes, dayIndexBytes, withIndex, withDayIndex };
}

/** GET /v1/usage/report over a million usage records, against the same aggregate in SQL, on SQLite and PostgreSQL. */
export async function benchUsageReport(): Promise<BenchResult> {
  const { measured, failures } = await onEngines(measureReport);
  const label = (m: ReportTimes) => (m.engine === 'sqlite' ? 'SQLite' : 'PostgreSQL');
  const rows: Row[] = measured.flatMap((m) => [
    { metric: `${label(m)}: select count(*) from usage_records`, value: round(m.count, 1), unit: 'ms' },
    { metric: `${label(m)}: select sum(seconds) from usage_records`, value: round(m.sum, 1), unit: 'ms' },
    { metric: `${label(m)}: the report's aggregate by project and day, in SQL`, value: round(m.raw.projectDay, 1), unit: 'ms' },
    versus(`${label(m)}: GET /v1/usage/report groupBy=project&groupBy=day (${m.rows.projectDay} rows)`, m.http.projectDay, 'ms', m.raw.projectDay, 1),
    versus(`${label(m)}: the same as CSV (${Math.round(m.rows.csvBytes / 1024)} KiB)`, m.http.csv, 'ms', m.raw.projectDay, 1),
    { metric: `${label(m)}: the report's aggregate by user, in SQL`, value: round(m.raw.user, 1), unit: 'ms' },
    versus(`${label(m)}: GET /v1/usage/report groupBy=user (${m.rows.user} rows)`, m.http.user, 'ms', m.raw.user, 1),
    { metric: `${label(m)}: the report's index on disk (usage_records_report)`, value: round(m.cost.indexBytes / 2 ** 20, 1), unit: 'MiB' },
    versus(`${label(m)}: a record written, with the report's index`, m.cost.withIndex, 'µs', m.cost.withDayIndex, 1),
  ]);
  const slowest = Math.max(...measured.flatMap((m) => [m.http.projectDay, m.http.user, m.http.csv]));
  return saveResult({
    name: 'usage-report',
    title: 'Usage report over a million usage records',
    target: 'GET /v1/usage/report over 1,000,000 usage records of one month (groupBy project and day, user, and as CSV) answers in under 1 s, median, on each engine',
    pass: failures.length === 0 && slowest < 1000,
    baseline: "the report's aggregate as plain SQL straight to the same database (better-sqlite3 or pg from the bench process), and a bare count(*) and sum(seconds) over the table, in the same run",
    rows,
    notes: [
      ...failures,
      `A server from \`startCluster\` (server/test/helpers/cluster.ts, one node, no devices) on SQLite and on a private PostgreSQL (initdb, fsync off, loopback); ${USAGE_USERS} members created through the API, then ${USAGE_ROWS.toLocaleString('en')} usage records written straight to its database in transactions of 10,000 while it runs (SQLite: prepared inserts; PostgreSQL: insert … select from unnest, then ANALYZE as autovacuum would), spread evenly over the ${USAGE_DAYS} days of ${USAGE_MONTH} and at random over the users, ${USAGE_DEVICES} devices, ${USAGE_PROJECTS} projects and ${CLASSES.length} billing classes, 60 s to 1 h each, one in ten partly covered by included minutes.`,
      `Each report covers the whole month (from=${FROM}&to=${TO}), as admin over one undici keep-alive connection; the first of each is checked (its total device-seconds equal sum(seconds) of the table) and not timed, then ${REPORT_RUNS} alternated runs of everything, medians.`,
      ...measured.map((m) => `${label(m)} plan of the aggregate by project and day: ${m.plan}.`),
      `Where the time goes: the report's own work over HTTP (validation, the open leases, usernames, rounding, JSON or CSV) adds little to its aggregate, which takes the time. SQLite has no hash aggregation: a GROUP BY that no index delivers in order sorts every record of the range in a temporary b-tree. The report's index (migration 0009: day, currency, project, user_id, billing_class, device_id, price_per_minute, seconds, included_seconds) holds every column the aggregate reads, so SQLite reads no table rows and delivers the groups along it (day, currency, project, user, class) without sorting; for a grouping of those columns the server groups by the index's columns up to the last one asked for and adds the finer rows up (groupBy=user: ${(USAGE_DAYS * USAGE_PROJECTS * USAGE_USERS).toLocaleString('en')} rows of day, currency, project and user), and only a grouping by device sorts, narrow index entries. The plain aggregate by user in SQL (GROUP BY user_id, currency) is that sort, so the report beats its baseline there. PostgreSQL scans the table in parallel workers and aggregates by hashing whatever the grouping; it has the same index and does not use it for a month.`,
      ...measured.map(
        (m) =>
          `${label(m)} index cost: usage_records_report ${round(m.cost.indexBytes / 2 ** 20, 1)} MiB against ${round(m.cost.dayIndexBytes / 2 ** 20, 1)} MiB for the index on the day alone it replaced and ${round(m.cost.tableBytes / 2 ** 20, 1)} MiB for the table; after the reports, ${(COST_BATCHES * 10_000).toLocaleString('en')} more records written with it (${round(m.cost.withIndex, 1)} µs each), then it dropped and the day index created, ${(COST_BATCHES * 10_000).toLocaleString('en')} more (${round(m.cost.withDayIndex, 1)} µs each).`,
      ),
      `Records written: ${measured.map((m) => `${label(m)} ${round(m.insertSeconds, 1)} s`).join(', ')} for ${USAGE_ROWS.toLocaleString('en')} records.`,
    ],
  });
}
