import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Adb } from '@yume-chan/adb';
import { PackageManager } from '@yume-chan/android-bin';
import { Pool } from 'undici';
import { inspectApk } from '../server/dist/apps/apk.js';
import { APKS } from '../server/test/helpers/apk-fixtures.js';
import { chunked, connectDirect } from '../server/test/helpers/yume-chan.js';
import { call, expect, login, ms, rssMb, serverFor, setup, versus, type Reply, type Setup } from './devices.js';
import { freePort, stop, waitForHttp } from './lib/processes.js';
import { benchDir, saveResult, type BenchResult } from './lib/results.js';
import { median, round } from './lib/stats.js';

const UPLOAD_SERVERS = 3;
const PARSE_RUNS = 20;
const INSTALL_DEVICES = 16;
const INSTALL_ROUNDS = 3;
const RSS_EVERY_MS = 100;

/** POSTs `bytes` as application/octet-stream over `pool` and returns the parsed JSON answer. */
async function post(pool: Pool, path: string, bytes: Buffer, token?: string): Promise<Reply> {
  const res = await pool.request({
    method: 'POST',
    path,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      'content-type': 'application/octet-stream',
      'content-length': String(bytes.length),
    },
    body: bytes,
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : null };
}

/** The 18 MB APK over loopback to fresh servers, against a plain node:http sink that writes + hashes; and inspectApk. */
export async function benchAppUpload(): Promise<BenchResult> {
  const apk = readFileSync(APKS.uiautomator2);
  const small = readFileSync(APKS.settings);
  const mb = apk.length / 1e6;

  // Parse time in this process: the first call (cold: yauzl, the parsers and the JIT not warm), then warm runs.
  const cold = await ms(() => inspectApk(APKS.uiautomator2));
  const parse: number[] = [];
  for (let i = 0; i < PARSE_RUNS; i++) parse.push(await ms(() => inspectApk(APKS.uiautomator2)));

  const sinkPort = await freePort();
  const sink = spawn(process.execPath, [join(benchDir, 'lib', 'sink-server.mjs'), String(sinkPort)], { stdio: 'ignore' });
  const sinkPool = new Pool(`http://127.0.0.1:${sinkPort}`, { connections: 1 });
  const baseline: number[] = [];
  const first: number[] = [];
  const again: number[] = [];
  try {
    await waitForHttp(`http://127.0.0.1:${sinkPort}/`, sink);
    const toSink = async () => {
      const reply = await post(sinkPool, '/', apk);
      if (reply.status !== 201 || reply.body.size !== apk.length) throw new Error(`sink answered ${reply.status}`);
    };
    await toSink(); // warm-up, untimed
    for (let i = 0; i < UPLOAD_SERVERS; i++) {
      baseline.push(await ms(toSink));
      const server = await serverFor([]);
      const pool = new Pool(server.url, { connections: 1 });
      try {
        const token = await login(pool, server);
        // Warms the upload route and the parser on this server with another (small) APK; the 18 MB bytes are new to it.
        expect(await post(pool, '/v1/apps?fileName=settings.apk', small, token), 201, 'warm-up upload');
        let reply: Reply | undefined;
        first.push(await ms(async () => (reply = await post(pool, '/v1/apps?fileName=uia2.apk', apk, token))));
        expect(reply!, 201, 'first upload');
        if (reply!.body.size !== apk.length) throw new Error(`server stored ${reply!.body.size} bytes`);
        // The same bytes again by the same uploader: transfer + hash, no parse (dedupe), 200.
        again.push(await ms(async () => (reply = await post(pool, '/v1/apps?fileName=uia2.apk', apk, token))));
        expect(reply!, 200, 'repeated upload');
      } finally {
        await pool.close();
        await server.close();
      }
    }
  } finally {
    await sinkPool.close();
    await stop(sink);
  }
  const rate = (millis: number) => mb / (millis / 1000);
  const sinkMbps = rate(median(baseline));
  const warm = median(parse);
  return saveResult({
    name: 'app-upload',
    title: 'App upload: 18 MB APK',
    target: 'inspectApk on the 18 MB APK in < 50 ms (warm median); upload MB/s reported against a plain node:http sink',
    pass: warm < 50,
    baseline: 'the same bytes POSTed to a plain node:http server (own process) that streams the body to a file while hashing it (SHA-256)',
    rows: [
      { metric: 'plain node:http sink, write + hash (median)', value: round(sinkMbps, 1), unit: 'MB/s' },
      versus('POST /v1/apps, first upload on a fresh server (median)', rate(median(first)), 'MB/s', sinkMbps, 1),
      versus('POST /v1/apps, same bytes again (dedupe, 200; median)', rate(median(again)), 'MB/s', sinkMbps, 1),
      { metric: 'POST /v1/apps, first upload (median)', value: round(median(first), 1), unit: 'ms' },
      { metric: 'inspectApk, warm (median of 20)', value: round(warm, 1), unit: 'ms' },
      { metric: 'inspectApk, cold (first call in the process)', value: round(cold, 1), unit: 'ms' },
    ],
    notes: [
      `APK: appium-uiautomator2-server 10.6.6 (${apk.length} bytes), sent from memory with undici (one keep-alive connection) over loopback.`,
      `${UPLOAD_SERVERS} fresh servers (fresh data dir each), each measured once for the first upload of these bytes (transfer + hash + parse + icon + rows), after a login and an untimed upload of another small APK that warms the route; the sink is measured before each, after one untimed warm-up.`,
      `First-upload times (ms): ${first.map((t) => Math.round(t)).join(', ')}; repeated (dedupe): ${again.map((t) => Math.round(t)).join(', ')}; sink: ${baseline.map((t) => Math.round(t)).join(', ')}.`,
      `inspectApk runs in the bench process from server/dist on the fixture file; warm runs (ms): min ${round(Math.min(...parse), 1)}, max ${round(Math.max(...parse), 1)}.`,
    ],
  });
}

interface Job {
  id: string;
  status: string;
  devices: { deviceId: string; status: string; reason: string | null }[];
}

/** POST install, then long-poll the job until it is no longer pending/running; throws unless it succeeded. */
async function installAndWait(s: Setup, appId: string, body: object): Promise<Job> {
  const created = await call(s.pool, s.token, 'POST', `/v1/apps/${appId}/install`, body, { 'idempotency-key': randomUUID() });
  let job = expect(created, 202, 'install').body as Job;
  while (job.status === 'pending' || job.status === 'running') {
    job = expect(await call(s.pool, s.token, 'GET', `/v1/install-jobs/${job.id}?waitSeconds=60`), 200, 'install job').body as Job;
  }
  if (job.status !== 'succeeded') {
    const failed = job.devices.filter((d) => d.status !== 'installed');
    throw new Error(`install job ${job.id} ${job.status}: ${JSON.stringify(failed.slice(0, 3))}`);
  }
  return job;
}

/** User + system CPU time of `pid` so far, in ms (from /proc/<pid>/stat, USER_HZ 100). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Samples the VmRSS of `pid` every 100 ms while `action` runs; answers the action's time and the highest sample. */
async function withRss(pid: number, action: () => Promise<unknown>): Promise<{ millis: number; peak: number }> {
  let peak = rssMb(pid);
  let running = true;
  const sampler = (async () => {
    while (running) {
      peak = Math.max(peak, rssMb(pid));
      await new Promise((resolve) => setTimeout(resolve, RSS_EVERY_MS));
    }
  })();
  try {
    const millis = await ms(action);
    return { millis, peak: Math.max(peak, rssMb(pid)) };
  } finally {
    running = false;
    await sampler;
  }
}

/** The APK installed straight through @yume-chan/adb from this process, from memory: no server, no HTTP, no file. */
async function installDirect(adbs: Adb[], apk: Buffer): Promise<void> {
  await Promise.all(
    adbs.map((adb) => new PackageManager(adb).installStream(apk.length, chunked(apk, adb.maxPayloadSize))),
  );
}

/** Installing the 18 MB APK on 1 leased device against all 16 in one job. */
export async function benchAppInstall(): Promise<BenchResult> {
  const apk = readFileSync(APKS.uiautomator2);
  const s = await setup(INSTALL_DEVICES);
  const direct: Adb[] = [];
  try {
    for (const address of s.farm.addresses) {
      const [host, port] = address.split(':') as [string, string];
      direct.push(await connectDirect(host, Number(port)));
    }
    const pid = s.server.process.pid!;
    const leased = await call(s.pool, s.token, 'POST', '/v1/leases', { count: INSTALL_DEVICES }, { 'idempotency-key': randomUUID() });
    const lease = expect(leased, 201, 'lease').body as { id: string; devices: { id: string }[] };
    if (lease.devices.length !== INSTALL_DEVICES) throw new Error(`lease holds ${lease.devices.length} devices`);
    const uploaded = expect(await post(s.pool, '/v1/apps?fileName=uia2.apk', apk, s.token), 201, 'upload');
    const appId = uploaded.body.id as string;
    const one = { deviceIds: [lease.devices[0]!.id] };
    const all = { leaseId: lease.id };

    await installAndWait(s, appId, one); // warm-up, untimed
    await installDirect(direct.slice(0, 1), apk);
    const oneTimes: number[] = [];
    const allTimes: number[] = [];
    const directOne: number[] = [];
    const directAll: number[] = [];
    const before: number[] = [];
    const peaks: number[] = [];
    const devicePid = s.farm.pids[0]!;
    const cpu = { oneServer: 0, oneDevices: 0, allServer: 0, allDevices: 0 };
    for (let r = 0; r < INSTALL_ROUNDS; r++) {
      let [server0, devices0] = [cpuMs(pid), cpuMs(devicePid)];
      oneTimes.push(await ms(() => installAndWait(s, appId, one)));
      cpu.oneServer += cpuMs(pid) - server0;
      cpu.oneDevices += cpuMs(devicePid) - devices0;
      await new Promise((resolve) => setTimeout(resolve, 300)); // let the heap settle before the "before" sample
      before.push(rssMb(pid));
      [server0, devices0] = [cpuMs(pid), cpuMs(devicePid)];
      const { millis, peak } = await withRss(pid, async () => {
        const job = await installAndWait(s, appId, all);
        if (job.devices.length !== INSTALL_DEVICES) throw new Error(`job covered ${job.devices.length} devices`);
      });
      cpu.allServer += cpuMs(pid) - server0;
      cpu.allDevices += cpuMs(devicePid) - devices0;
      allTimes.push(millis);
      peaks.push(peak);
      directOne.push(await ms(() => installDirect(direct.slice(0, 1), apk)));
      directAll.push(await ms(() => installDirect(direct, apk)));
    }
    const oneMed = median(oneTimes);
    const allMed = median(allTimes);
    const directOneMed = median(directOne);
    const directAllMed = median(directAll);
    const above = peaks.map((p, i) => p - before[i]!);
    const worstAbove = Math.max(...above);
    const timeOk = allMed <= 3 * oneMed;
    const rssOk = worstAbove < 200;
    const mb = apk.length / 1e6;
    return saveResult({
      name: 'app-install',
      title: 'App install: 1 device against 16 in one job',
      target: 'installing the 18 MB APK on 16 leased devices in one job takes ≤ 3x the time of one device, with server RSS < 200 MB above its level just before',
      pass: timeOk && rssOk,
      baseline: 'the same APK installed on 1 device of the same lease, same server, alternated with the 16-device jobs',
      rows: [
        { metric: 'install on 1 device (median)', value: round(oneMed), unit: 'ms' },
        versus('install on 16 devices, one job (median)', allMed, 'ms', oneMed),
        { metric: 'floor: 1 device straight through @yume-chan/adb, no server (median)', value: round(directOneMed), unit: 'ms' },
        versus('floor: 16 devices straight through @yume-chan/adb, no server (median)', directAllMed, 'ms', directOneMed),
        versus('16 devices through the server against the same 16 with no server', allMed, 'ms', directAllMed),
        { metric: '16 devices: aggregate throughput', value: round((INSTALL_DEVICES * mb) / (allMed / 1000), 1), unit: 'MB/s' },
        { metric: '1 device: throughput', value: round(mb / (oneMed / 1000), 1), unit: 'MB/s' },
        { metric: 'server RSS just before a 16-device install (median)', value: round(median(before), 1), unit: 'MB' },
        { metric: 'server RSS above that during the install (worst of 3)', value: round(worstAbove, 1), unit: 'MB' },
        { metric: 'peak RSS since start (VmHWM)', value: round(rssMb(pid, 'VmHWM'), 1), unit: 'MB' },
      ],
      notes: [
        `Per target: time (16 devices ≤ 3x one) ${timeOk ? 'met' : 'not met'}; memory (< 200 MB above the level before) ${rssOk ? 'met' : 'not met'}.`,
        `${INSTALL_DEVICES} virtual devices in their own process, reached directly (CLOUDPHONE_ADB_DEVICES, CLOUDPHONE_LOCAL_ADB=off); one lease of all ${INSTALL_DEVICES}; the APK (appium-uiautomator2-server, ${apk.length} bytes) uploaded once.`,
        `Time from POST /v1/apps/{id}/install (replace, the default) until GET /v1/install-jobs/{id}?waitSeconds=60 answers a succeeded job; one untimed 1-device install, then ${INSTALL_ROUNDS} rounds of 1 device ({deviceIds}) then all ${INSTALL_DEVICES} ({leaseId}).`,
        `The virtual devices (one process for all ${INSTALL_DEVICES}, 2 shared cores) receive and parse each APK as a phone would; they compete with the server for the CPU.`,
        `VmRSS from /proc every ${RSS_EVERY_MS} ms during each 16-device job, against a sample just before it; per round (MB above): ${above.map((a) => round(a, 1)).join(', ')}.`,
        `CPU per job (mean of ${INSTALL_ROUNDS}, /proc stat): 1 device — server ${Math.round(cpu.oneServer / INSTALL_ROUNDS)} ms, virtual devices ${Math.round(cpu.oneDevices / INSTALL_ROUNDS)} ms; 16 devices — server ${Math.round(cpu.allServer / INSTALL_ROUNDS)} ms, virtual devices ${Math.round(cpu.allDevices / INSTALL_ROUNDS)} ms (wall ${Math.round(allMed)} ms on ${cpus().length} cores).`,
        `The floor: each round also installs the APK from the bench process's memory straight through @yume-chan/adb (its own connections to the same devices, one read per ADB packet), on 1 device and on all ${INSTALL_DEVICES} at once. It is what the machine allows with the server taken out, and shows how much of the 16-device time is the server's.`,
        `Why ${INSTALL_DEVICES} devices cannot take ≤ 3x one here: a virtual device installs as fast as it receives, so one install already keeps both cores busy (server and device process), and ${INSTALL_DEVICES} installs are ${INSTALL_DEVICES} times the bytes on the same 2 cores. With no server at all the floor is ${round(directAllMed / directOneMed, 1)}x; the server adds ${round(allMed / directAllMed, 2)}x to it. With real phones, the receiving side and the install work run on the phones, not on the server's cores.`,
        `Run times (ms): 1 device ${oneTimes.map((t) => Math.round(t)).join(', ')}; 16 devices ${allTimes.map((t) => Math.round(t)).join(', ')}; floor 1 device ${directOne.map((t) => Math.round(t)).join(', ')}; floor 16 devices ${directAll.map((t) => Math.round(t)).join(', ')}.`,
      ],
    });
  } finally {
    await Promise.all(direct.map((adb) => adb.close()));
    await s.close();
  }
}
