import { CloudPhone } from '@cloudphone/sdk';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { Pool } from 'undici';
import { startCluster, type Cluster, type ClusterOptions } from '../server/test/helpers/cluster.js';
import { load, mean, type Load } from './api-throughput.js';
import { call, expect, waitForDevices, type Reply } from './devices.js';
import { startPostgres, type BenchPostgres } from './lib/postgres.js';
import { saveResult, type BenchResult, type Row } from './lib/results.js';
import { percentile, round } from './lib/stats.js';

const DEVICES = 50;
const REQUESTS = 200;
const ROUNDS = 3;
/** How long each holder keeps its device before releasing it. */
const HOLD_MS = 100;
/** What each lease request waits in the queue at most; the bench fails long before. */
const WAIT_SECONDS = 300;
const POLL_SECONDS = 60;
const ME_ROUNDS = 2;
const ME_SECONDS = 8;

interface Configuration {
  label: string;
  engine: ClusterOptions['engine'];
  nodes: number;
}

const CONFIGURATIONS: Configuration[] = [
  { label: 'SQLite, 1 node', engine: 'sqlite', nodes: 1 },
  { label: 'PostgreSQL, 1 node', engine: 'postgres', nodes: 1 },
  { label: 'PostgreSQL, 3 nodes', engine: 'postgres', nodes: 3 },
];

/** A cluster of the built server, on a database of the bench's private PostgreSQL when the engine is PostgreSQL. */
async function launch(configuration: Configuration, postgres: BenchPostgres, virtualDevices: number): Promise<Cluster> {
  const options: ClusterOptions = { engine: configuration.engine, nodes: configuration.nodes, virtualDevices };
  if (configuration.engine === 'postgres') options.databaseUrl = await postgres.createDatabase();
  return startCluster(options);
}

async function loginOn(pool: Pool, cluster: Cluster): Promise<string> {
  const credentials = { username: 'admin', password: cluster.adminPassword };
  return expect(await call(pool, null, 'POST', '/v1/auth/login', credentials), 200, 'login').body.accessToken as string;
}

/** Milliseconds since the epoch, comparable with the server's timestamps (same machine). */
const wallClock = () => performance.timeOrigin + performance.now();

interface Hold {
  leaseId: string;
  device: string;
  /** Queued (202) before its grant, rather than granted at once (201). */
  queued: boolean;
  /** Wall clock: when the holder saw its grant, and when it sent its release. */
  grantedAt: number;
  releasedAt: number;
}

interface Round {
  /** Milliseconds from sending each createLease until its grant was seen (201, or a long poll answering granted). */
  toGrant: number[];
  holds: Hold[];
  /** From the first request sent until the last release answered. */
  drainMs: number;
}

/**
 * One burst: REQUESTS concurrent createLease (count 1) spread round-robin over the nodes; a queued lease is
 * long-polled on the node that queued it; each holder releases through that node after HOLD_MS.
 */
async function burst(pools: Pool[], token: string): Promise<Round> {
  const holds: Hold[] = [];
  const started = performance.now();
  const toGrant = await Promise.all(
    Array.from({ length: REQUESTS }, async (_, i) => {
      const pool = pools[i % pools.length]!;
      const sent = performance.now();
      const created = await call(pool, token, 'POST', '/v1/leases', { count: 1, waitSeconds: WAIT_SECONDS }, {
        'idempotency-key': randomUUID(),
      });
      if (created.status !== 201 && created.status !== 202) {
        throw new Error(`createLease answered ${created.status} ${JSON.stringify(created.body)}`);
      }
      let lease = created.body as { id: string; status: string; devices: { id: string }[] };
      while (lease.status === 'queued') {
        const polled: Reply = await call(pool, token, 'GET', `/v1/leases/${lease.id}?waitSeconds=${POLL_SECONDS}`);
        lease = expect(polled, 200, 'getLease').body;
      }
      const seen = performance.now();
      const grantedAt = wallClock();
      if (lease.status !== 'granted' || lease.devices.length !== 1) {
        throw new Error(`lease ${lease.id} ended ${lease.status} with ${lease.devices.length} devices instead of granted`);
      }
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
      const releasedAt = wallClock();
      expect(await call(pool, token, 'POST', `/v1/leases/${lease.id}/release`), 200, 'release');
      holds.push({ leaseId: lease.id, device: lease.devices[0]!.id, queued: created.status === 202, grantedAt, releasedAt });
      return seen - sent;
    }),
  );
  if (holds.length !== REQUESTS) throw new Error(`${holds.length} of ${REQUESTS} leases were granted and released`);
  return { toGrant, holds, drainMs: performance.now() - started };
}

interface Measured {
  toGrant: number[];
  /** From a holder sending its release until the device's next holder saw its grant. */
  handover: number[];
  /** Of the handover, the server's part from the lease's end until the device's reset finished. */
  reset: number[];
  /** Of the handover, from the device's reset finishing until the server granted it to the next lease. */
  scheduling: number[];
  /** From the server granting a queued lease until its long-polling holder saw the grant. */
  wakeUp: number[];
  roundP99: number[];
  immediate: number[];
  drainMs: number[];
  /** PostgreSQL: the nodes' connections during the bursts, on average, by what they were doing. */
  connections?: Record<string, number>;
  /** CPU time the node processes used during the bursts, per node, as a share of the bursts' wall time. */
  nodeBusy: number;
  /** The same for the process serving the virtual devices. */
  devicesBusy: number;
}

interface Tally {
  totals: Record<string, number>;
  samples: number;
}

/**
 * How the nodes' pooled connections spend a burst, sampled from pg_stat_activity every 25 ms until `stop`; the
 * cluster's own connections (LISTEN, NOTIFY, the leadership lock and its check) are left out.
 */
function sampleConnections(databaseUrl: string, tally: Tally): { stop(): Promise<void> } {
  const client = new pg.Client({ connectionString: databaseUrl });
  let running = true;
  const sampling = (async () => {
    await client.connect();
    while (running) {
      const { rows } = await client.query<{ what: string; n: number }>(
        `select case when wait_event = 'advisory' then 'waiting on the scheduling lock'
                     when state like 'idle in transaction%' then 'in a transaction, between statements'
                     when state = 'active' then 'running a statement'
                     else 'idle in the pool' end as what, count(*)::int as n
           from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'
            and query not ilike '%pg_advisory_lock(%' and query not ilike 'listen %'
            and query not ilike '%pg_notify(%' and query <> 'select 1'
          group by 1`,
      );
      tally.samples++;
      for (const { what, n } of rows) tally.totals[what] = (tally.totals[what] ?? 0) + n;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return {
    async stop() {
      running = false;
      await sampling.finally(() => client.end());
    },
  };
}

interface ServerLease {
  grantedAt: string;
  endedAt: string;
  devices: { id: string; reset: { finishedAt: string } | null }[];
}

/**
 * Splits each handover with the server's own timestamps: the lease's end, its device's reset, the next grant.
 * Throws if a device was seen granted before its previous holder sent the release (in two leases at once).
 */
async function account(round: Round, pool: Pool, token: string, into: Measured): Promise<void> {
  const server = new Map<string, ServerLease>();
  for (const hold of round.holds) {
    server.set(hold.leaseId, expect(await call(pool, token, 'GET', `/v1/leases/${hold.leaseId}`), 200, 'getLease').body);
  }
  const byDevice = new Map<string, Hold[]>();
  for (const hold of round.holds) byDevice.set(hold.device, [...(byDevice.get(hold.device) ?? []), hold]);
  for (const [device, list] of byDevice) {
    list.sort((a, b) => a.grantedAt - b.grantedAt);
    for (let k = 1; k < list.length; k++) {
      const [previous, next] = [list[k - 1]!, list[k]!];
      if (next.grantedAt < previous.releasedAt) throw new Error(`device ${device} was granted while still held`);
      into.handover.push(next.grantedAt - previous.releasedAt);
      const ended = server.get(previous.leaseId)!;
      const reset = ended.devices[0]?.reset;
      if (reset) {
        into.reset.push(Date.parse(reset.finishedAt) - Date.parse(ended.endedAt));
        into.scheduling.push(Date.parse(server.get(next.leaseId)!.grantedAt) - Date.parse(reset.finishedAt));
      }
    }
  }
  for (const hold of round.holds) {
    if (hold.queued) into.wakeUp.push(hold.grantedAt - Date.parse(server.get(hold.leaseId)!.grantedAt));
  }
}

async function measureLeases(cluster: Cluster): Promise<Measured> {
  const perNode = Math.ceil(REQUESTS / cluster.nodes.length) + 1;
  const pools = cluster.nodes.map((node) => new Pool(node.url, { connections: perNode, pipelining: 1 }));
  try {
    const token = await loginOn(pools[0]!, cluster);
    for (const pool of pools) await waitForDevices(pool, token, DEVICES, '&available=true', 120);
    const measured: Measured = { toGrant: [], handover: [], reset: [], scheduling: [], wakeUp: [], roundP99: [], immediate: [], drainMs: [], nodeBusy: 0, devicesBusy: 0 };
    const devices = childrenRunning('virtual-device');
    let [busyMs, devicesMs, wallMs] = [0, 0, 0];
    const tally: Tally = { totals: {}, samples: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      const sampler = cluster.databaseUrl === undefined ? undefined : sampleConnections(cluster.databaseUrl, tally);
      const cpuBefore = cluster.nodes.reduce((sum, node) => sum + cpuMs(node.pid), 0);
      const devicesBefore = devices.reduce((sum, pid) => sum + cpuMs(pid), 0);
      const round = await burst(pools, token).finally(() => sampler?.stop());
      busyMs += cluster.nodes.reduce((sum, node) => sum + cpuMs(node.pid), 0) - cpuBefore;
      devicesMs += devices.reduce((sum, pid) => sum + cpuMs(pid), 0) - devicesBefore;
      wallMs += round.drainMs;
      measured.toGrant.push(...round.toGrant);
      measured.roundP99.push(percentile(round.toGrant, 99));
      measured.immediate.push(round.holds.filter((hold) => !hold.queued).length);
      measured.drainMs.push(round.drainMs);
      await waitForDevices(pools[0]!, token, DEVICES, '&available=true', 60);
      await account(round, pools[0]!, token, measured);
    }
    measured.nodeBusy = busyMs / wallMs / cluster.nodes.length;
    measured.devicesBusy = devicesMs / wallMs / Math.max(devices.length, 1);
    if (tally.samples > 0) {
      measured.connections = Object.fromEntries(Object.entries(tally.totals).map(([what, n]) => [what, n / tally.samples]));
    }
    return measured;
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
  }
}

function oneLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

/** The lease burst on SQLite (1 node), PostgreSQL (1 node) and PostgreSQL (3 nodes), in one run. */
export async function benchLeaseBurstEngines(): Promise<BenchResult> {
  const postgres = await startPostgres();
  const results = new Map<string, Measured>();
  const failures: string[] = [];
  try {
    for (const configuration of CONFIGURATIONS) {
      process.stderr.write(`  ${configuration.label}…\n`);
      let cluster: Cluster | undefined;
      try {
        cluster = await launch(configuration, postgres, DEVICES);
        results.set(configuration.label, await measureLeases(cluster));
      } catch (error) {
        failures.push(`${configuration.label}: failed, ${oneLine(error)}`);
      } finally {
        await cluster?.stop();
      }
    }
  } finally {
    await postgres.stop();
  }
  const base = results.get(CONFIGURATIONS[0]!.label);
  const rows: Row[] = [];
  for (const { label } of CONFIGURATIONS) {
    const m = results.get(label);
    if (!m) continue;
    const row = (metric: string, unit: string, pick: (of: Measured) => number): Row => {
      const value = pick(m);
      if (!base || m === base) return { metric: `${label}: ${metric}`, value: round(value, unit === 's' ? 2 : 0), unit };
      const baseline = pick(base);
      const digits = unit === 's' ? 2 : 0;
      const compared: Row = { metric: `${label}: ${metric}`, value: round(value, digits), unit, baseline: round(baseline, digits) };
      // A baseline of 0 (a step that took no measurable time on SQLite) has no ratio.
      return round(baseline, digits) === 0 ? compared : { ...compared, ratio: round(value / baseline) };
    };
    rows.push(
      row('time to grant p50', 'ms', (of) => percentile(of.toGrant, 50)),
      row('time to grant p99', 'ms', (of) => percentile(of.toGrant, 99)),
      row('handover p50 (release sent → next holder sees its grant)', 'ms', (of) => percentile(of.handover, 50)),
      row('of which the device reset, p50', 'ms', (of) => percentile(of.reset, 50)),
      row('of which reset finished → next grant recorded, p50', 'ms', (of) => percentile(of.scheduling, 50)),
      row('wake-up p99 (queued lease granted → its long poll answers)', 'ms', (of) => percentile(of.wakeUp, 99)),
      row('burst drained (median of rounds)', 's', (of) => percentile(of.drainMs, 50) / 1000),
      row('node process CPU during the bursts, per node', '% of a core', (of) => of.nodeBusy * 100),
      row('virtual-device process CPU during the bursts', '% of a core', (of) => of.devicesBusy * 100),
    );
  }
  const p99Ratios = CONFIGURATIONS.slice(1).map(({ label }) => {
    const m = results.get(label);
    return m && base ? percentile(m.toGrant, 99) / percentile(base.toGrant, 99) : Infinity;
  });
  const perRound = CONFIGURATIONS.filter(({ label }) => results.has(label)).map(({ label }) => {
    const m = results.get(label)!;
    return `${label}: p99 ${m.roundP99.map((t) => round(t, 1)).join(', ')} ms, granted at once ${m.immediate.join(', ')}`;
  });
  const connections = CONFIGURATIONS.filter(({ label }) => results.get(label)?.connections).map(({ label }) => {
    const spent = Object.entries(results.get(label)!.connections!).sort((a, b) => b[1] - a[1]);
    return `${label}: ${spent.map(([what, n]) => `${round(n, 1)} ${what}`).join(', ')}`;
  });
  return saveResult({
    name: 'lease-burst-engines',
    title: 'Lease burst on SQLite and PostgreSQL, one node and three',
    target: `all ${REQUESTS} queued leases for ${DEVICES} devices granted, none on a held device, in every configuration; on PostgreSQL (1 or 3 nodes) time-to-grant p99 ≤ 2x single-node SQLite`,
    pass: failures.length === 0 && p99Ratios.every((ratio) => ratio <= 2),
    baseline: 'the same burst against one node on SQLite, in the same run',
    rows,
    notes: [
      ...failures,
      `Each configuration: the built server (\`startCluster\` of server/test/helpers/cluster.ts: one process per node, every node reaching the same ${DEVICES} virtual devices of a separate \`cloudphone-server virtual-device\` process); PostgreSQL is a private cluster on loopback started by the bench (initdb, fsync off), a fresh database per configuration.`,
      `${ROUNDS} rounds per configuration: ${REQUESTS} concurrent POST /v1/leases (count 1, waitSeconds ${WAIT_SECONDS}, own Idempotency-Key), spread round-robin over the nodes; a 202 is long-polled (GET /v1/leases/{id}?waitSeconds=${POLL_SECONDS}) on the node that queued it; each holder keeps its device ${HOLD_MS} ms and releases it through that node, so the queue drains in about ${REQUESTS / DEVICES} waves, each a hold plus the released device's reset.`,
      'Time to grant: from sending POST /v1/leases until the grant is seen (the 201, or the long poll answering granted); it includes queueing behind earlier holders, so p50 and p99 are dominated by the waves. Every round checks that all leases were granted and that no device was seen granted before its previous holder had sent its release.',
      "Handover: from a holder sending its release until the device's next holder sees its grant, split with the server's timestamps from GET /v1/leases/{id}: the device reset (lease endedAt → the reset's finishedAt: about eight ADB round trips to a device whose process serves all 50), the scheduling (the reset's finishedAt → the next lease's grantedAt) and the wake-up (the next lease's grantedAt → its long poll answering, on whichever node it waits). On three nodes a grant made by one node wakes a long poll on another.",
      'Where the handover goes differs by engine (the reset and scheduling rows): on SQLite the grants and releases of a wave land together, so its resets run at the same time and each takes longer, and a device is granted again as soon as its reset ends; on PostgreSQL the scheduling lock spreads them out, so each reset is shorter and a freed device waits for its turn to be granted.',
      'CPU rows: user and system time from /proc of each node process and of the one process serving the 50 virtual devices, over the bursts, as a share of their wall time (100% is one core busy throughout; the machine has 2).',
      'The nodes write their JSON request logs to a pipe that the bench process reads (cluster.ts keeps them for error messages), and the machine is shared with other work: compare the ratios within the run, not the absolute times with other entries.',
      `Per round: ${perRound.join('; ')}.`,
      ...(connections.length
        ? [`Where the PostgreSQL time goes: the nodes' pooled connections during the bursts, on average (pg_stat_activity every 25 ms, all nodes together): ${connections.join('; ')}. Every transaction that grants or ends leases takes the one scheduling lock (pg_advisory_xact_lock), and each node lets one of its own at a time wait for it, so the farm's lease changes happen one after another: on PostgreSQL each holds the lock over several round trips to the database, on SQLite over calls in the process; the scheduling rows show how long a freed device waited for its next grant.`]
        : []),
    ],
  });
}

/** The processes this one started whose command line holds `word`, e.g. the cluster's virtual-device process. */
function childrenRunning(word: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return parent === process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(word);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** CPU time (user and system) the process `pid` has used so far, in ms (/proc counts ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** What one load run cost: CPU of the node and (PostgreSQL) of its database sessions, and transactions committed. */
interface Cost {
  nodeCpuMs: number;
  databaseCpuMs: number;
  commits: number;
  requests: number;
}

/** Runs `run` and measures what it cost the node `pid` and, given a client of its database, the database. */
async function costOf(pid: number, database: pg.Client | undefined, run: () => Promise<Load>): Promise<{ load: Load; cost: Cost }> {
  const backends = database
    ? (
        await database.query<{ pid: number }>(
          "select pid from pg_stat_activity where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()",
        )
      ).rows.map((row) => row.pid)
    : [];
  const commits = async () =>
    database
      ? Number((await database.query<{ n: string }>('select xact_commit as n from pg_stat_database where datname = current_database()')).rows[0]!.n)
      : 0;
  const databaseCpu = () => backends.reduce((sum, backend) => sum + cpuMs(backend), 0);
  const before = { node: cpuMs(pid), database: databaseCpu(), commits: await commits() };
  const load = await run();
  const cost: Cost = {
    nodeCpuMs: cpuMs(pid) - before.node,
    databaseCpuMs: databaseCpu() - before.database,
    commits: (await commits()) - before.commits,
    requests: load.total,
  };
  return { load, cost };
}

/** Authenticated GET /v1/me on PostgreSQL against SQLite, one node each, both running, rounds interleaved. */
export async function benchApiThroughputEngines(): Promise<BenchResult> {
  const postgres = await startPostgres();
  try {
    return await measureApiThroughput(postgres);
  } catch (error) {
    return saveResult({ ...ME_RESULT, pass: false, rows: [], notes: [`The run failed: ${oneLine(error)}`] });
  } finally {
    await postgres.stop();
  }
}

const ME_RESULT = {
  name: 'api-throughput-engines',
  title: 'API throughput on PostgreSQL: authenticated GET /v1/me',
  target: "on PostgreSQL at least 0.5x the req/s of SQLite at 50 connections, p99 at most 2x SQLite's",
  baseline: 'the same server on SQLite, running beside it in the same run',
};

async function measureApiThroughput(postgres: BenchPostgres): Promise<BenchResult> {
  const clusters: Cluster[] = [];
  const databases: pg.Client[] = [];
  try {
    const targets: { url: string; auth: Record<string, string>; pid: number; database?: pg.Client }[] = [];
    for (const configuration of CONFIGURATIONS.slice(0, 2)) {
      const cluster = await launch(configuration, postgres, 0);
      clusters.push(cluster);
      const url = cluster.nodes[0]!.url;
      const anonymous = new CloudPhone({ baseUrl: url });
      const session = await anonymous.auth.login({ username: 'admin', password: cluster.adminPassword });
      const token = await anonymous.withOptions({ token: session.accessToken }).tokens.create({ name: 'bench', scopes: ['read'] });
      const target: (typeof targets)[number] = { url: `${url}/v1/me`, auth: { authorization: `Bearer ${token.secret}` }, pid: cluster.nodes[0]!.pid };
      if (cluster.databaseUrl !== undefined) {
        target.database = new pg.Client({ connectionString: cluster.databaseUrl });
        await target.database.connect();
        databases.push(target.database);
      }
      targets.push(target);
    }
    for (const t of targets) await load(t.url, t.auth, 2);
    const runs = targets.map(() => [] as Load[]);
    const costs = targets.map(() => [] as Cost[]);
    for (let r = 0; r < ME_ROUNDS; r++) {
      for (const [i, t] of targets.entries()) {
        const { load: measured, cost } = await costOf(t.pid, t.database, () => load(t.url, t.auth, ME_SECONDS));
        runs[i]!.push(measured);
        costs[i]!.push(cost);
      }
    }
    const perRequest = (list: Cost[], pick: (cost: Cost) => number) =>
      list.reduce((sum, cost) => sum + pick(cost), 0) / list.reduce((sum, cost) => sum + cost.requests, 0);
    const [sqliteCost, pgCost] = costs as [Cost[], Cost[]];
    const nodeUs = (list: Cost[]) => perRequest(list, (cost) => cost.nodeCpuMs) * 1000;
    const failed = runs.flat().reduce((n, run) => n + run.non2xx, 0);
    if (failed > 0) throw new Error(`${failed} requests to /v1/me failed during the benchmark`);
    const [onSqlite, onPostgres] = runs.map((list) => ({
      rps: mean(list.map((run) => run.rps)),
      p50: mean(list.map((run) => run.p50)),
      p99: Math.max(...list.map((run) => run.p99)),
    })) as [{ rps: number; p50: number; p99: number }, { rps: number; p50: number; p99: number }];
    const ratio = onPostgres.rps / onSqlite.rps;
    return saveResult({
      ...ME_RESULT,
      pass: ratio >= 0.5 && onPostgres.p99 <= 2 * onSqlite.p99,
      rows: [
        { metric: 'SQLite: GET /v1/me', value: Math.round(onSqlite.rps), unit: 'req/s' },
        { metric: 'PostgreSQL: GET /v1/me', value: Math.round(onPostgres.rps), unit: 'req/s', baseline: Math.round(onSqlite.rps), ratio: round(ratio) },
        { metric: 'SQLite: p50 latency', value: round(onSqlite.p50), unit: 'ms' },
        { metric: 'PostgreSQL: p50 latency', value: round(onPostgres.p50), unit: 'ms', baseline: round(onSqlite.p50), ratio: round(onPostgres.p50 / onSqlite.p50) },
        { metric: 'SQLite: p99 latency (worst round)', value: onSqlite.p99, unit: 'ms' },
        { metric: 'PostgreSQL: p99 latency (worst round)', value: onPostgres.p99, unit: 'ms', baseline: onSqlite.p99, ratio: round(onPostgres.p99 / onSqlite.p99) },
        { metric: 'SQLite: server CPU per request', value: round(nodeUs(sqliteCost), 0), unit: 'µs' },
        { metric: 'PostgreSQL: server CPU per request', value: round(nodeUs(pgCost), 0), unit: 'µs', baseline: round(nodeUs(sqliteCost), 0), ratio: round(nodeUs(pgCost) / nodeUs(sqliteCost)) },
        { metric: 'PostgreSQL: database CPU per request', value: round(perRequest(pgCost, (cost) => cost.databaseCpuMs) * 1000, 0), unit: 'µs' },
        { metric: 'PostgreSQL: transactions committed per request', value: round(perRequest(pgCost, (cost) => cost.commits)), unit: '' },
      ],
      notes: [
        `autocannon, 50 connections, ${ME_ROUNDS} interleaved rounds of ${ME_SECONDS} s against each after a 2 s warm-up; an API token (read scope) looked up by hash on every request; request logging on, its JSON lines read and dropped by the bench process.`,
        'Both servers are one node each from `startCluster` (server/test/helpers/cluster.ts), started from the built binary; PostgreSQL is the bench\'s private cluster on loopback (initdb, fsync off) on the same 2 cores as the servers and the load generator.',
        'CPU rows: user and system time of the node process from /proc, and on PostgreSQL of the database sessions its pool holds, over the measured rounds, divided by the requests answered; transactions from pg_stat_database (each statement outside a transaction commits one). Where the PostgreSQL time goes: the queries of each request (the transactions row) leave the process through the pg driver and a socket, where SQLite answers them in-process, which costs the node more CPU per request, and the database spends CPU of its own on the same 2 cores.',
      ],
    });
  } finally {
    for (const database of databases) await database.end();
    for (const cluster of clusters) await cluster.stop();
  }
}
