import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Adb } from '@yume-chan/adb';
import { Pool } from 'undici';
import { startAdbHost, type AdbHost } from '../server/test/helpers/adb-host.js';
import { chunked, connectDirect } from '../server/test/helpers/yume-chan.js';
import { startCloudphoneServer, stop, type BenchServer } from './lib/processes.js';
import { repoRoot, saveResult, type BenchResult, type Row } from './lib/results.js';
import { median, percentile, round } from './lib/stats.js';

const MIB = 1024 * 1024;
const PUSH_BYTES = 64 * MIB;
const PUSH_ROUNDS = 5;
const SHELL_CALLS = 300;
const SHELL_WARMUP = 30;
const SHELL_BLOCK = 50;
export const BURST = 50;
export const BURST_REQUESTS = 200;
const BURST_ROUNDS = 3;
const RSS_DEVICES = 100;
const RSS_SECONDS = 10;
const RSS_EVERY_MS = 500;
/** `cloudphone-server virtual-device --count` takes at most this many. */
const DEVICES_PER_PROCESS = 64;

// ---------------------------------------------------------------------------------------------------------------
// Shared setup: virtual devices in their own processes, a cloudphone server reaching them directly, an admin token.

export interface DeviceFarm {
  addresses: string[];
  /** The virtual-device processes. */
  pids: number[];
  close(): Promise<void>;
}

function lines(child: ChildProcessWithoutNullStreams, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const got = out.split('\n').filter((line) => line.trim());
      if (out.endsWith('\n') && got.length >= count) {
        child.stdout.off('data', onData);
        resolve(got.slice(0, count));
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`virtual-device exited with ${code} before printing ${count} devices`)));
  });
}

/** `count` virtual devices (ADB daemons on free ports) in separate processes of at most 64 devices each. */
export async function startDevices(count: number): Promise<DeviceFarm> {
  const bin = join(repoRoot, 'server', 'bin', 'cloudphone-server.js');
  const children: ChildProcessWithoutNullStreams[] = [];
  const addresses: string[] = [];
  try {
    for (let left = count; left > 0; left -= DEVICES_PER_PROCESS) {
      const n = Math.min(left, DEVICES_PER_PROCESS);
      const child = spawn(process.execPath, [bin, 'virtual-device', '--count', String(n), '--base-port', '0']);
      child.stderr.resume();
      children.push(child);
      for (const line of await lines(child, n)) addresses.push(line.split(' ')[0]!);
    }
  } catch (error) {
    await Promise.all(children.map(stop));
    throw error;
  }
  return { addresses, pids: children.map((c) => c.pid!), close: async () => void (await Promise.all(children.map(stop))) };
}

export function serverFor(addresses: string[]): Promise<BenchServer> {
  return startCloudphoneServer({
    CLOUDPHONE_LOCAL_ADB: 'off',
    CLOUDPHONE_ADB_SERVERS: '',
    CLOUDPHONE_VIRTUAL_DEVICES: '0',
    CLOUDPHONE_ADB_DEVICES: addresses.join(','),
  });
}

export interface Reply {
  status: number;
  body: any;
}

/** One JSON request over `pool` (keep-alive). */
export async function call(
  pool: Pool,
  token: string | null,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const res = await pool.request({
    method,
    path,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : null };
}

export function expect(reply: Reply, status: number, what: string): Reply {
  if (reply.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${reply.status} ${JSON.stringify(reply.body)}`);
  }
  return reply;
}

export async function login(pool: Pool, server: BenchServer): Promise<string> {
  const credentials = { username: 'admin', password: server.adminPassword };
  return expect(await call(pool, null, 'POST', '/v1/auth/login', credentials), 200, 'login').body.accessToken as string;
}

export interface DeviceView {
  id: string;
  serial: string;
  state: string;
  available: boolean;
}

async function listDevices(pool: Pool, token: string, query = ''): Promise<DeviceView[]> {
  const reply = await call(pool, token, 'GET', `/v1/devices?limit=200${query}`);
  return expect(reply, 200, 'list devices').body.data as DeviceView[];
}

/** Polls until `count` devices match `query` (by default: online), within `seconds`. */
export async function waitForDevices(
  pool: Pool,
  token: string,
  count: number,
  query = '&state=online',
  seconds = 60,
): Promise<DeviceView[]> {
  const deadline = Date.now() + seconds * 1000;
  let seen = 0;
  while (Date.now() < deadline) {
    const devices = await listDevices(pool, token, query);
    seen = devices.length;
    if (seen >= count) return devices;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`only ${seen} of ${count} devices matched ${query} after ${seconds} s`);
}

export interface Setup {
  farm: DeviceFarm;
  server: BenchServer;
  pool: Pool;
  token: string;
  devices: DeviceView[];
  /** Seconds from the server's start until every device was online. */
  onlineAfter: number;
  close(): Promise<void>;
}

export async function setup(deviceCount: number, connections = 1): Promise<Setup> {
  const farm = await startDevices(deviceCount);
  let server: BenchServer | undefined;
  let pool: Pool | undefined;
  try {
    const started = performance.now();
    server = await serverFor(farm.addresses);
    pool = new Pool(server.url, { connections, pipelining: 1 });
    const token = await login(pool, server);
    const devices = await waitForDevices(pool, token, deviceCount);
    const onlineAfter = (performance.now() - started) / 1000;
    const [s, p] = [server, pool];
    return {
      farm,
      server,
      pool,
      token,
      devices,
      onlineAfter,
      async close() {
        await p.close();
        await s.close();
        await farm.close();
      },
    };
  } catch (error) {
    await pool?.close();
    await server?.close();
    await farm.close();
    throw error;
  }
}

async function lease(s: Setup): Promise<string> {
  const reply = await call(s.pool, s.token, 'POST', '/v1/leases', { count: 1 }, { 'idempotency-key': randomUUID() });
  return expect(reply, 201, 'lease').body.id as string;
}

export async function ms(action: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await action();
  return performance.now() - start;
}

/** A row compared with its baseline from the same run. */
export function versus(metric: string, value: number, unit: string, baseline: number, digits = 2): Row {
  return { metric, value: round(value, digits), unit, baseline: round(baseline, digits), ratio: round(value / baseline) };
}

// ---------------------------------------------------------------------------------------------------------------

/** 64 MiB to one virtual device: `adb push` (adb 29, private server) against PUT …/files/content, alternated. */
export async function benchDevicePush(): Promise<BenchResult> {
  const work = mkdtempSync(join(tmpdir(), 'cloudphone-bench-push-'));
  const local = join(work, 'push.bin');
  const data = randomBytes(PUSH_BYTES);
  writeFileSync(local, data);
  let opened: Setup | undefined;
  let host: AdbHost | undefined;
  let yume: Adb | undefined;
  // One path for all three: each push replaces the file, so the device's 64 MiB of storage holds it.
  const remote = '/data/local/tmp/bench.bin';
  try {
    const s = (opened = await setup(1));
    const address = s.farm.addresses[0]!;
    const deviceId = s.devices[0]!.id;
    await lease(s);
    host = await startAdbHost();
    const adb = async (...args: string[]) => {
      const result = await host!.run(...args);
      if (result.code !== 0) throw new Error(`adb ${args.join(' ')}: ${result.stdout}${result.stderr}`);
    };
    await adb('connect', address);
    await adb('-s', address, 'wait-for-device');

    const api = async (): Promise<void> => {
      const res = await s.pool.request({
        method: 'PUT',
        path: `/v1/devices/${deviceId}/files/content?path=${encodeURIComponent(remote)}`,
        headers: {
          authorization: `Bearer ${s.token}`,
          'content-type': 'application/octet-stream',
          'content-length': String(PUSH_BYTES),
        },
        body: createReadStream(local, { highWaterMark: 256 * 1024 }),
      });
      const text = await res.body.text();
      if (res.statusCode !== 201) throw new Error(`push: ${res.statusCode} ${text}`);
      const size = (JSON.parse(text) as { size: number }).size;
      if (size !== PUSH_BYTES) throw new Error(`push reported ${size} bytes, sent ${PUSH_BYTES}`);
    };
    // Reference, not the baseline: the library the server uses, from this process straight to the device.
    const [deviceHost, devicePort] = address.split(':') as [string, string];
    yume = await connectDirect(deviceHost, Number(devicePort));
    const sync = await yume.sync();
    const library = () => sync.write({ filename: remote, file: chunked(data) });
    const direct: number[] = [];
    const viaApi: number[] = [];
    const viaLibrary: number[] = [];
    // One untimed run of each first: the same warm start (JIT, page cache, device files) for all three.
    await adb('-s', address, 'push', local, remote);
    await api();
    await library();
    for (let i = 0; i < PUSH_ROUNDS; i++) {
      direct.push(await ms(() => adb('-s', address, 'push', local, remote)));
      viaApi.push(await ms(api));
      viaLibrary.push(await ms(library));
    }
    await sync.dispose();
    const mbps = (millis: number) => round(PUSH_BYTES / 1e6 / (millis / 1000), 1);
    const directMbps = mbps(median(direct));
    const apiMbps = mbps(median(viaApi));
    const libraryMbps = mbps(median(viaLibrary));
    const ratio = round(apiMbps / directMbps);
    return saveResult({
      name: 'device-push',
      title: 'Device push through the API',
      target: 'PUT /v1/devices/{id}/files/content of 64 MiB at ≥ 0.8x the MB/s of `adb push` to the same device',
      pass: median(direct) / median(viaApi) >= 0.8, // unrounded: 0.796 is not 0.8
      baseline: '`adb push` (Debian adb 29, private adb server, `adb connect`) of the same file to the same virtual device',
      rows: [
        { metric: 'adb push 64 MiB (median)', value: directMbps, unit: 'MB/s' },
        versus('API push 64 MiB (median)', apiMbps, 'MB/s', directMbps, 1),
        versus('@yume-chan/adb sync push from the bench process (median, reference)', libraryMbps, 'MB/s', directMbps, 1),
        { metric: 'adb push, best run', value: round(PUSH_BYTES / 1e6 / (Math.min(...direct) / 1000), 1), unit: 'MB/s' },
        { metric: 'API push, best run', value: round(PUSH_BYTES / 1e6 / (Math.min(...viaApi) / 1000), 1), unit: 'MB/s' },
      ],
      notes: [
        `One virtual device in its own process; the server (own process, CLOUDPHONE_ADB_DEVICES, CLOUDPHONE_LOCAL_ADB=off) reaches it over ADB-over-TCP; one untimed warm-up run of each, then ${PUSH_ROUNDS} alternated runs of each, medians.`,
        '`adb push` time includes starting the adb client process; the API push streams a file ReadStream with undici (keep-alive) and checks the 201 PushResult size.',
        'Reference row: @yume-chan/adb (the library the server uses) pushing the same bytes from memory straight to the device, to separate the library from the HTTP path.',
        `API run times (ms): ${viaApi.map((t) => Math.round(t)).join(', ')}; adb: ${direct.map((t) => Math.round(t)).join(', ')}.`,
      ],
    });
  } finally {
    await yume?.close();
    await host?.stop();
    await opened?.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** `echo hi` round trips: @yume-chan/adb straight to the device against POST /v1/devices/{id}/shell, interleaved blocks. */
export async function benchDeviceShell(): Promise<BenchResult> {
  const s = await setup(1);
  let direct: Adb | undefined;
  try {
    const [host, port] = s.farm.addresses[0]!.split(':') as [string, string];
    const deviceId = s.devices[0]!.id;
    await lease(s);
    direct = await connectDirect(host, Number(port));
    const shell = direct.subprocess.shellProtocol!;
    const viaDirect = async () => {
      const { stdout } = await shell.spawnWaitText(['echo', 'hi']);
      if (stdout !== 'hi\n') throw new Error(`direct echo answered ${JSON.stringify(stdout)}`);
    };
    const viaApi = async () => {
      const reply = await call(s.pool, s.token, 'POST', `/v1/devices/${deviceId}/shell`, { argv: ['echo', 'hi'] });
      if (reply.status !== 200 || reply.body.stdout !== 'hi\n' || reply.body.exitCode !== 0) {
        throw new Error(`API echo answered ${reply.status} ${JSON.stringify(reply.body)}`);
      }
    };
    for (let i = 0; i < SHELL_WARMUP; i++) {
      await viaDirect();
      await viaApi();
    }
    const directTimes: number[] = [];
    const apiTimes: number[] = [];
    for (let done = 0; done < SHELL_CALLS; done += SHELL_BLOCK) {
      for (let i = 0; i < SHELL_BLOCK; i++) directTimes.push(await ms(viaDirect));
      for (let i = 0; i < SHELL_BLOCK; i++) apiTimes.push(await ms(viaApi));
    }
    const d50 = percentile(directTimes, 50);
    const a50 = percentile(apiTimes, 50);
    const added = a50 - d50;
    return saveResult({
      name: 'device-shell',
      title: 'Device shell through the API',
      target: 'POST /v1/devices/{id}/shell `echo hi` adds < 3 ms at p50 over a direct ADB shell-protocol round trip',
      pass: added < 3,
      baseline: '@yume-chan/adb over TCP straight to the same virtual device (shell protocol, `spawnWaitText`)',
      rows: [
        { metric: 'direct shell echo p50', value: round(d50), unit: 'ms' },
        { metric: 'direct shell echo p99', value: round(percentile(directTimes, 99)), unit: 'ms' },
        versus('API shell echo p50', a50, 'ms', d50),
        versus('API shell echo p99', percentile(apiTimes, 99), 'ms', percentile(directTimes, 99)),
        { metric: 'added by the API, p50', value: round(added), unit: 'ms' },
      ],
      notes: [
        `${SHELL_CALLS} sequential calls each after ${SHELL_WARMUP} warm-up calls each, interleaved in blocks of ${SHELL_BLOCK}; the API calls use one undici keep-alive connection and an admin bearer token holding a lease.`,
        'The server reaches the device (its own process) directly over ADB-over-TCP, like the baseline does.',
      ],
    });
  } finally {
    await direct?.close();
    await s.close();
  }
}

export interface Burst {
  /** Milliseconds from sending each request until its answer. */
  times: number[];
  replies: Reply[];
}

/** `requests` calls of `request` at once, each timed on its own. */
export async function burst(requests: number, request: () => Promise<Reply>): Promise<Burst> {
  const times: number[] = [];
  const replies = await Promise.all(
    Array.from({ length: requests }, async () => {
      const start = performance.now();
      const reply = await request();
      times.push(performance.now() - start);
      return reply;
    }),
  );
  return { times, replies };
}

/** POST /v1/leases for one device that may not wait, with its own Idempotency-Key. */
export function createLease(s: Setup, token = s.token, body: Record<string, unknown> = {}): Promise<Reply> {
  return call(s.pool, token, 'POST', '/v1/leases', { count: 1, waitSeconds: 0, ...body }, { 'idempotency-key': randomUUID() });
}

/**
 * Checks a lease burst for `devices` free devices: exactly `devices` granted, the rest `409 no_devices_available`,
 * and the granted leases on distinct devices; then releases them and waits until every device is available again
 * (after its reset). Returns the seconds from the first release until then.
 */
export async function checkAndRelease(s: Setup, replies: Reply[], devices: number, what: string): Promise<number> {
  const granted = replies.filter((reply) => reply.status === 201);
  const isRefusal = (reply: Reply) => reply.status === 409 && reply.body?.code === 'no_devices_available';
  const refused = replies.filter(isRefusal);
  if (granted.length !== devices || refused.length !== replies.length - devices) {
    const other = replies.filter((reply) => reply.status !== 201 && !isRefusal(reply));
    throw new Error(`${what}: ${granted.length}×201, ${refused.length}×409 no_devices_available, others ${JSON.stringify(other.slice(0, 3).map((o) => [o.status, o.body?.code ?? o.body]))}`);
  }
  const listed = await call(s.pool, s.token, 'GET', '/v1/leases?allUsers=true&status=granted&limit=200');
  const leases = expect(listed, 200, 'list leases').body.data as { id: string; devices: { id: string }[] }[];
  const held = leases.flatMap((l) => l.devices.map((d) => d.id));
  if (leases.length !== devices || held.length !== devices || new Set(held).size !== devices) {
    throw new Error(`${what}: ${leases.length} granted leases hold ${held.length} devices, ${new Set(held).size} distinct`);
  }
  const releaseStart = performance.now();
  const released = await Promise.all(leases.map((l) => call(s.pool, s.token, 'POST', `/v1/leases/${l.id}/release`)));
  if (released.some((reply) => reply.status !== 200)) throw new Error(`${what}: a release failed`);
  await waitForDevices(s.pool, s.token, devices, '&available=true', 60);
  return (performance.now() - releaseStart) / 1000;
}

/** 200 concurrent lease requests for 50 free devices, against 200 concurrent GET /v1/me on the same server. */
export async function benchLeaseBurst(): Promise<BenchResult> {
  const s = await setup(BURST, BURST_REQUESTS);
  try {
    const me = () => call(s.pool, s.token, 'GET', '/v1/me');
    const leaseNow = () => createLease(s);

    await burst(BURST_REQUESTS, me); // opens the 200 connections and warms the route
    const meTimes: number[] = [];
    const leaseTimes: number[] = [];
    const roundP99: number[] = [];
    const meRoundP99: number[] = [];
    const waitsForRelease: number[] = [];
    for (let r = 0; r < BURST_ROUNDS; r++) {
      const base = await burst(BURST_REQUESTS, me);
      if (base.replies.some((reply) => reply.status !== 200)) throw new Error('GET /v1/me failed during the baseline burst');
      meTimes.push(...base.times);
      meRoundP99.push(percentile(base.times, 99));

      const { times, replies } = await burst(BURST_REQUESTS, leaseNow);
      leaseTimes.push(...times);
      roundP99.push(percentile(times, 99));
      waitsForRelease.push(await checkAndRelease(s, replies, BURST, `round ${r + 1}`));
    }
    // Diagnosis: the service time of one request when nothing else runs, granted and refused, and of /v1/me.
    const seqMe: number[] = [];
    const seqGranted: number[] = [];
    const seqRefused: number[] = [];
    const seqIds: string[] = [];
    for (let i = 0; i < BURST; i++) seqMe.push(await ms(me));
    for (let i = 0; i < BURST; i++) {
      const granted = async () => seqIds.push(expect(await leaseNow(), 201, 'sequential lease').body.id as string);
      seqGranted.push(await ms(granted));
    }
    for (let i = 0; i < BURST; i++) seqRefused.push(await ms(async () => expect(await leaseNow(), 409, 'sequential refusal')));
    for (const id of seqIds) expect(await call(s.pool, s.token, 'POST', `/v1/leases/${id}/release`), 200, 'release');

    const p99 = percentile(leaseTimes, 99);
    const meP99 = percentile(meTimes, 99);
    return saveResult({
      name: 'lease-burst',
      title: 'Lease burst: 200 concurrent leases for 50 devices',
      target: 'each of 200 concurrent POST /v1/leases for 50 free devices answers (exactly 50×201, 150×409) with p99 < 100 ms',
      pass: p99 < 100,
      baseline: '200 concurrent authenticated GET /v1/me on the same server, same client, same round',
      rows: [
        { metric: 'GET /v1/me burst p50', value: round(percentile(meTimes, 50)), unit: 'ms' },
        { metric: 'GET /v1/me burst p99', value: round(meP99), unit: 'ms' },
        versus('POST /v1/leases burst p50', percentile(leaseTimes, 50), 'ms', percentile(meTimes, 50)),
        versus('POST /v1/leases burst p99', p99, 'ms', meP99),
        versus('POST /v1/leases p99, worst round', Math.max(...roundP99), 'ms', Math.max(...meRoundP99)),
        { metric: 'one at a time: GET /v1/me p50', value: round(median(seqMe)), unit: 'ms' },
        versus('one at a time: POST /v1/leases granted p50', median(seqGranted), 'ms', median(seqMe)),
        versus('one at a time: POST /v1/leases refused (409) p50', median(seqRefused), 'ms', median(seqMe)),
        { metric: 'release 50 leases until all available again (median)', value: round(median(waitsForRelease), 2), unit: 's' },
      ],
      notes: [
        `${BURST} virtual devices in their own process, reached directly (CLOUDPHONE_ADB_DEVICES); ${BURST_ROUNDS} rounds, each a /v1/me burst then a lease burst over ${BURST_REQUESTS} undici keep-alive connections, every lease request with its own Idempotency-Key and waitSeconds 0.`,
        'Every round: exactly 50 granted and 150 `409 no_devices_available`; GET /v1/leases?allUsers=true&status=granted shows 50 leases on 50 distinct devices. Between rounds every lease is released and the bench waits until all 50 devices are available again (after their reset).',
        `Per-round lease p99 (ms): ${roundP99.map((t) => round(t, 1)).join(', ')}; /v1/me: ${meRoundP99.map((t) => round(t, 1)).join(', ')}. All 50 devices online ${round(s.onlineAfter, 1)} s after the server started.`,
        `"One at a time" rows: ${BURST} sequential requests each after the rounds (the 50 grants, then 50 refusals); a burst of ${BURST_REQUESTS} cannot finish before about ${BURST_REQUESTS} × the one-at-a-time time when the server handles them one after another.`,
      ],
    });
  } finally {
    await s.close();
  }
}

export function rssMb(pid: number, field = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no ${field} for ${pid}`);
  return kb / 1024;
}

async function sampleRss(pid: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < (RSS_SECONDS * 1000) / RSS_EVERY_MS; i++) {
    samples.push(rssMb(pid));
    await new Promise((resolve) => setTimeout(resolve, RSS_EVERY_MS));
  }
  return samples;
}

/** The server's RSS with 100 online devices, against the same server idle without devices. */
export async function benchDeviceRss(): Promise<BenchResult> {
  const idle = await serverFor([]);
  let idleSamples: number[];
  try {
    const pool = new Pool(idle.url, { connections: 1 });
    const token = await login(pool, idle);
    await listDevices(pool, token);
    await pool.close();
    idleSamples = await sampleRss(idle.process.pid!);
  } finally {
    await idle.close();
  }
  const s = await setup(RSS_DEVICES);
  try {
    const pid = s.server.process.pid!;
    const samples = await sampleRss(pid);
    const online = (await listDevices(s.pool, s.token, '&state=online')).length;
    if (online !== RSS_DEVICES) throw new Error(`${online} of ${RSS_DEVICES} devices online after sampling`);
    const hwm = rssMb(pid, 'VmHWM');
    const max = Math.max(...samples);
    const med = median(samples);
    const idleMed = median(idleSamples);
    const idleMax = Math.max(...idleSamples);
    return saveResult({
      name: 'device-rss',
      title: 'Server memory with 100 devices',
      target: 'server RSS < 250 MB with 100 online devices',
      pass: max < 250,
      baseline: 'the same server started idle without devices in the same run',
      rows: [
        { metric: 'idle RSS, no devices (median)', value: round(idleMed, 1), unit: 'MB' },
        versus('RSS with 100 devices, max', max, 'MB', idleMax, 1),
        versus('RSS with 100 devices, median', med, 'MB', idleMed, 1),
        { metric: 'per device, above idle', value: round(((med - idleMed) * 1024) / RSS_DEVICES, 0), unit: 'KB' },
        { metric: 'peak RSS since start (VmHWM)', value: round(hwm, 1), unit: 'MB' },
      ],
      notes: [
        `${RSS_DEVICES} virtual devices in ${Math.ceil(RSS_DEVICES / DEVICES_PER_PROCESS)} separate processes (\`virtual-device --count\` takes at most ${DEVICES_PER_PROCESS}), reached directly over ADB-over-TCP (CLOUDPHONE_ADB_DEVICES, CLOUDPHONE_LOCAL_ADB=off).`,
        `VmRSS of the server process from /proc, every ${RSS_EVERY_MS} ms for ${RSS_SECONDS} s once all devices were online (${round(s.onlineAfter, 1)} s after start); the idle baseline is sampled the same way after a login and one device listing.`,
      ],
    });
  } finally {
    await s.close();
  }
}
