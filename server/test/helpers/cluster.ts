import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { builtInProfile } from '../../src/virtual-device/index.js';
import { createTestSchema, type TestDatabase } from './postgres.js';
import { buildServer, serverBin, serverEnv } from './server-bin.js';

/**
 * A farm of real `cloudphone-server` processes on one machine: nodes (`start`) sharing one database and one data
 * directory, and virtual devices (`virtual-device`) in processes of their own that every node reaches over TCP, as
 * a multi-node deployment reaches its device hosts. Used by the multi-node tests and the benchmarks.
 */

export interface ClusterNode {
  /** The node's name (`--node-name`), `node-1`, `node-2`, … unless given. */
  name: string;
  /** Its base URL on loopback, e.g. `http://127.0.0.1:40123`. */
  url: string;
  port: number;
  pid: number;
  /** Sends `signal` (SIGTERM by default) and resolves once the process has exited; the node leaves `nodes`. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface Cluster {
  engine: 'sqlite' | 'postgres';
  /** The live nodes, in start order. */
  nodes: ClusterNode[];
  /** Every virtual device, as its process printed it. */
  devices: { address: string; serial: string }[];
  /** The nodes' CLOUDPHONE_DATABASE_URL (PostgreSQL only). */
  databaseUrl: string | undefined;
  /** The data directory every node shares (the ADB key, the app store; SQLite's database). */
  dataDir: string;
  /** The password of the `admin` user. */
  adminPassword: string;
  /**
   * Starts one more node on the same database and data directory, ready and serving; on SQLite, only when no other
   * node runs (a node started again after `kill`).
   */
  startNode(name?: string): Promise<ClusterNode>;
  /** Stops every node and device process (SIGTERM, SIGKILL after 10 s), drops the schema it made, removes the dir. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  engine: 'sqlite' | 'postgres';
  /** How many nodes to start at once; SQLite allows one. */
  nodes: number;
  /** How many virtual devices to run; every node connects to each. */
  virtualDevices: number;
  /** The PostgreSQL database to use as it is (and leave in place); by default a fresh schema of the test cluster. */
  databaseUrl?: string;
  /** Receives every line the processes write, prefixed with the process's name. */
  log?: (line: string) => void;
  /** More settings for every node, e.g. `{ CLOUDPHONE_WEBHOOK_ALLOW_PRIVATE: 'true' }`. */
  env?: Record<string, string>;
}

/** Devices one `virtual-device` process runs at most. */
const DEVICES_PER_PROCESS = 64;
/** How long a node may take to answer /readyz, and the devices to come online. */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const SQLITE_ONE_NODE = 'a SQLite database serves one node: start several nodes on PostgreSQL';
/** Lines of each process's output kept to explain a failed start. */
const TAIL_LINES = 40;

/**
 * Loaded first in every process started here: the process kills itself when its parent is gone (its parent id
 * changes), so that not even a test process killed with SIGKILL leaves a server behind.
 */
const ORPHAN_GUARD =
  'data:text/javascript,const p=process.ppid;' +
  'setInterval(()=>{if(process.ppid!==p)process.kill(process.pid,"SIGKILL")},250).unref();';

/** Every process started here and still running: killed when the test process exits, however it exits. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

interface Spawned {
  child: ChildProcess;
  exited: Promise<void>;
  /** Calls `listener` with every further line of the process's output; returns how to stop. */
  onLine(listener: (line: string, stream: 'stdout' | 'stderr') => void): () => void;
  /** The last lines of its output, for error messages. */
  tail(): string;
}

function spawnServer(name: string, args: string[], env: Record<string, string>, log?: (line: string) => void): Spawned {
  installExitHook();
  const child = spawn(process.execPath, ['--import', ORPHAN_GUARD, serverBin, ...args], {
    env: { ...serverEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const lines: string[] = [];
  const listeners = new Set<(line: string, stream: 'stdout' | 'stderr') => void>();
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    createInterface({ input: child[stream]! }).on('line', (line) => {
      lines.push(line);
      if (lines.length > TAIL_LINES) lines.shift();
      log?.(`[${name}] ${line}`);
      for (const listener of listeners) listener(line, stream);
    });
  }
  return {
    child,
    exited,
    onLine(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    tail: () => lines.join('\n'),
  };
}

/** Resolves with the first further line of `stream` matching `pattern`; rejects if the process exits first. */
function firstLine(spawned: Spawned, stream: 'stdout' | 'stderr', pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const off = spawned.onLine((line, from) => {
      const match = from === stream ? pattern.exec(line) : null;
      if (match === null) return;
      off();
      resolve(match);
    });
    void spawned.exited.then(() => {
      off();
      const status = spawned.child.exitCode ?? spawned.child.signalCode;
      reject(new Error(`${what} exited (${status}) before it was ready:\n${spawned.tail()}`));
    });
  });
}

async function stopProcess(spawned: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) return;
  spawned.child.kill(signal);
  const timer = setTimeout(() => spawned.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await spawned.exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts `count` virtual devices in one process; `index` keeps their serials apart from other processes' ones. */
async function startDeviceProcess(
  index: number,
  count: number,
  dataDir: string,
  log?: (line: string) => void,
): Promise<{ spawned: Spawned; devices: { address: string; serial: string }[] }> {
  const args = ['virtual-device', '--count', String(count), '--base-port', '0', '--host', '127.0.0.1'];
  if (index > 0) {
    // Each process numbers its serials from CPVIRT0001: the later ones get a serial stem of their own.
    const file = join(dataDir, `virtual-devices-${index + 1}.json`);
    writeFileSync(file, JSON.stringify({ ...builtInProfile('virtual'), serial: `CPVIRT-P${index + 1}` }));
    args.push('--profile-file', file);
  }
  const spawned = spawnServer(`devices-${index + 1}`, args, {}, log);
  const devices: { address: string; serial: string }[] = [];
  const line = /^(\S+:\d+) (\S+) /;
  await new Promise<void>((resolve, reject) => {
    const off = spawned.onLine((text, stream) => {
      const match = stream === 'stdout' ? line.exec(text) : null;
      if (match === null) return;
      devices.push({ address: match[1]!, serial: match[2]! });
      if (devices.length < count) return;
      off();
      resolve();
    });
    void spawned.exited.then(() => {
      off();
      reject(new Error(`virtual-device exited before its devices were up:\n${spawned.tail()}`));
    });
  });
  return { spawned, devices };
}

async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Waits until `url`'s /readyz answers 200. */
async function waitReady(url: string, spawned: Spawned, name: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) {
      throw new Error(`${name} exited before it was ready:\n${spawned.tail()}`);
    }
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // Not answering yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`${name}: /readyz did not answer 200 within ${START_TIMEOUT_MS} ms:\n${spawned.tail()}`);
    }
    await sleep(50);
  }
}

/** Waits until `count` devices are online in `GET /v1/devices` of `url`. */
async function waitOnline(url: string, adminPassword: string, count: number): Promise<void> {
  const login = await json(`${url}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: adminPassword }),
  });
  if (login.status !== 200) throw new Error(`admin login: ${login.status} ${JSON.stringify(login.body)}`);
  const headers = { authorization: `Bearer ${login.body.accessToken as string}` };
  const deadline = Date.now() + START_TIMEOUT_MS;
  let online = 0;
  for (;;) {
    online = 0;
    let cursor: string | null = null;
    do {
      const query: string = `state=online&limit=200${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const page = await json(`${url}/v1/devices?${query}`, { headers });
      if (page.status !== 200) throw new Error(`listDevices: ${page.status} ${JSON.stringify(page.body)}`);
      online += (page.body.data as unknown[]).length;
      cursor = page.body.nextCursor as string | null;
    } while (cursor !== null);
    if (online >= count) return;
    if (Date.now() > deadline) throw new Error(`${online} of ${count} devices online after ${START_TIMEOUT_MS} ms`);
    await sleep(100);
  }
}

/**
 * Starts the virtual devices, then `nodes` server nodes at once (as a deployment does: their concurrent
 * migrations and first-admin creation must be safe), each ready (/readyz 200), then waits until every device is
 * online. On PostgreSQL without `databaseUrl`, the nodes share a fresh schema of the test cluster.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { engine, log } = options;
  if (engine === 'sqlite' && options.nodes > 1) {
    throw new Error(SQLITE_ONE_NODE);
  }
  buildServer();
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-cluster-'));
  const adminPassword = randomBytes(12).toString('hex');
  const deviceProcesses: Spawned[] = [];
  const nodeProcesses = new Map<ClusterNode, Spawned>();
  let schema: TestDatabase | undefined;
  let sequence = 0;
  /** Nodes started and not yet ready. */
  let starting = 0;

  const cluster: Cluster = {
    engine,
    nodes: [],
    devices: [],
    databaseUrl: undefined,
    dataDir,
    adminPassword,
    async startNode(name = `node-${sequence + 1}`) {
      // A SQLite database serves one node at a time: a node may start again once the last one is gone.
      if (engine === 'sqlite' && nodeProcesses.size + starting > 0) throw new Error(SQLITE_ONE_NODE);
      sequence += 1;
      starting += 1;
      const env: Record<string, string> = {
        CLOUDPHONE_DATA_DIR: dataDir,
        CLOUDPHONE_ADMIN_PASSWORD: adminPassword,
        CLOUDPHONE_LOG_FORMAT: 'json',
        CLOUDPHONE_LOCAL_ADB: 'off',
        ...options.env,
      };
      if (cluster.databaseUrl !== undefined) env.CLOUDPHONE_DATABASE_URL = cluster.databaseUrl;
      const args = ['start', '--port', '0', '--host', '127.0.0.1', '--node-name', name];
      if (cluster.devices.length > 0) args.push('--adb-devices', cluster.devices.map((device) => device.address).join(','));
      const spawned = spawnServer(name, args, env, log);
      try {
        const [, url] = await firstLine(spawned, 'stderr', /^cloudphone server listening on (http:\/\/\S+)$/, name);
        await waitReady(url!, spawned, name);
        const node: ClusterNode = {
          name,
          url: url!,
          port: Number(new URL(url!).port),
          pid: spawned.child.pid!,
          async kill(signal: NodeJS.Signals = 'SIGTERM') {
            cluster.nodes = cluster.nodes.filter((live) => live !== node);
            nodeProcesses.delete(node);
            await stopProcess(spawned, signal);
          },
        };
        nodeProcesses.set(node, spawned);
        cluster.nodes.push(node);
        return node;
      } catch (error) {
        await stopProcess(spawned, 'SIGKILL');
        throw error;
      } finally {
        starting -= 1;
      }
    },
    async stop() {
      const nodes = [...nodeProcesses.values()];
      nodeProcesses.clear();
      cluster.nodes = [];
      await Promise.all(nodes.map((spawned) => stopProcess(spawned)));
      await Promise.all(deviceProcesses.splice(0).map((spawned) => stopProcess(spawned)));
      await schema?.drop();
      schema = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };

  try {
    if (engine === 'postgres') {
      if (options.databaseUrl === undefined) schema = await createTestSchema();
      cluster.databaseUrl = options.databaseUrl ?? schema!.url;
    }
    for (let index = 0; index * DEVICES_PER_PROCESS < options.virtualDevices; index++) {
      const count = Math.min(DEVICES_PER_PROCESS, options.virtualDevices - index * DEVICES_PER_PROCESS);
      const started = await startDeviceProcess(index, count, dataDir, log);
      deviceProcesses.push(started.spawned);
      cluster.devices.push(...started.devices);
    }
    const names = Array.from({ length: options.nodes }, (_, index) => `node-${index + 1}`);
    const started = await Promise.allSettled(names.map((name) => cluster.startNode(name)));
    const failed = started.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    // In start order, whichever answered first.
    cluster.nodes.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
    if (options.virtualDevices > 0) await waitOnline(cluster.nodes[0]!.url, adminPassword, options.virtualDevices);
    return cluster;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}
