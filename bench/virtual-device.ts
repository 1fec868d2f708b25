import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Adb } from '@yume-chan/adb';
import { startAdbHost, type AdbHost } from '../server/test/helpers/adb-host.js';
import { chunked, connectDirect, connectThroughServer, readAll } from '../server/test/helpers/yume-chan.js';
import { stop } from './lib/processes.js';
import { repoRoot, saveResult, type BenchResult } from './lib/results.js';
import { percentile, round } from './lib/stats.js';

const FILE_SIZE = 64 * 1024 * 1024;
const SHELL_CALLS = 200;
const REMOTE = '/data/local/tmp/bench.bin';

/** A node process that listens on a free port, prints it, and drains (or, with `echo`, echoes) every connection. */
const LOOPBACK_PEER = `
const net = require('node:net');
const echo = process.argv[1] === 'echo';
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (data) => (echo ? socket.write(data) : undefined));
  socket.on('end', () => socket.end('done'));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

function firstLine(child: ChildProcessWithoutNullStreams): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
  });
}

async function connect(port: number): Promise<Socket> {
  const socket = createConnection({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  return socket;
}

/** The baselines: the same bytes through a plain loopback TCP socket to another process, and a 1-byte echo. */
async function loopback(data: Buffer): Promise<{ mbps: number; p50: number }> {
  const sink = spawn(process.execPath, ['-e', LOOPBACK_PEER, 'sink']);
  const echo = spawn(process.execPath, ['-e', LOOPBACK_PEER, 'echo']);
  try {
    const sinkSocket = await connect(Number(await firstLine(sink)));
    const start = performance.now();
    const done = new Promise<void>((resolve) => sinkSocket.once('data', () => resolve()));
    for (let offset = 0; offset < data.length; offset += 256 * 1024) sinkSocket.write(data.subarray(offset, offset + 256 * 1024));
    sinkSocket.end();
    await done;
    const mbps = data.length / 1e6 / ((performance.now() - start) / 1000);
    sinkSocket.destroy();

    const echoSocket = await connect(Number(await firstLine(echo)));
    const times: number[] = [];
    for (let call = 0; call < SHELL_CALLS; call++) {
      const begin = performance.now();
      await new Promise<void>((resolve) => {
        echoSocket.once('data', () => resolve());
        echoSocket.write('x');
      });
      times.push(performance.now() - begin);
    }
    echoSocket.destroy();
    return { mbps, p50: percentile(times, 50) };
  } finally {
    await Promise.all([stop(sink), stop(echo)]);
  }
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await action();
  return (performance.now() - start) / 1000;
}

async function adbCli(host: AdbHost, ...args: string[]): Promise<void> {
  const result = await host.run(...args);
  if (result.code !== 0) throw new Error(`adb ${args.join(' ')}: ${result.stdout}${result.stderr}`);
}

async function shellTimes(adb: Adb): Promise<number[]> {
  const shell = adb.subprocess.shellProtocol!;
  await shell.spawnWaitText('echo warm');
  const times: number[] = [];
  for (let call = 0; call < SHELL_CALLS; call++) {
    const begin = performance.now();
    const { stdout } = await shell.spawnWaitText(`echo ${call}`);
    times.push(performance.now() - begin);
    if (stdout !== `${call}\n`) throw new Error(`echo ${call} answered ${JSON.stringify(stdout)}`);
  }
  return times;
}

/**
 * One virtual device in its own process (the built `cloudphone-server virtual-device`): push and pull of 64 MiB with
 * the real adb and with @yume-chan/adb directly over TCP, and the shell `echo` round trip.
 */
export async function benchVirtualDevice(): Promise<BenchResult> {
  const work = mkdtempSync(join(tmpdir(), 'cloudphone-bench-vd-'));
  const data = randomBytes(FILE_SIZE);
  const local = join(work, 'bench.bin');
  writeFileSync(local, data);
  const bin = join(repoRoot, 'server', 'bin', 'cloudphone-server.js');
  const device = spawn(process.execPath, [bin, 'virtual-device', '--base-port', '0', '--profile', 'pixel-8']);
  let host: AdbHost | undefined;
  let direct: Adb | undefined;
  let viaServer: Adb | undefined;
  try {
    const address = (await firstLine(device)).split(' ')[0]!;
    const port = Number(address.split(':')[1]);
    const baseline = await loopback(data);

    host = await startAdbHost();
    await adbCli(host, 'connect', address);
    await adbCli(host, '-s', address, 'wait-for-device');
    const adbPush = await timed(() => adbCli(host!, '-s', address, 'push', local, REMOTE));
    const adbPull = await timed(() => adbCli(host!, '-s', address, 'pull', REMOTE, join(work, 'pulled.bin')));
    if (!readFileSync(join(work, 'pulled.bin')).equals(data)) throw new Error('adb pull returned other bytes');

    direct = await connectDirect('127.0.0.1', port);
    const sync = await direct.sync();
    let back: Buffer = Buffer.alloc(0);
    const yumePush = await timed(() => sync.write({ filename: REMOTE, file: chunked(data) }));
    const yumePull = await timed(async () => {
      back = await readAll(sync.read(REMOTE));
    });
    await sync.dispose();
    if (!back.equals(data)) throw new Error('@yume-chan/adb read returned other bytes');

    const directTimes = await shellTimes(direct);
    viaServer = (await connectThroughServer(host.port, address)).adb;
    const serverTimes = await shellTimes(viaServer);

    const mbps = (seconds: number) => round(FILE_SIZE / 1e6 / seconds, 1);
    const vsLoopback = (seconds: number) => ({ baseline: round(baseline.mbps, 1), ratio: round(mbps(seconds) / baseline.mbps) });
    const shellRow = (metric: string, value: number) => ({
      metric,
      value: round(value),
      unit: 'ms',
      baseline: round(baseline.p50, 3),
      ratio: round(value / baseline.p50, 1),
    });
    const p50 = percentile(directTimes, 50);
    const slowestPush = Math.max(adbPush, yumePush);
    return saveResult({
      name: 'virtual-device',
      title: 'Virtual device',
      target: 'push of 64 MiB at ≥ 100 MB/s over loopback (real adb and @yume-chan/adb), shell `echo` round trip p50 < 5 ms',
      pass: mbps(slowestPush) >= 100 && p50 < 5,
      baseline:
        'a plain TCP copy of the same bytes to another node process over loopback (MB/s rows); a 1-byte TCP echo ' +
        'round trip (ms rows)',
      rows: [
        { metric: 'push 64 MiB, adb 29', value: mbps(adbPush), unit: 'MB/s', ...vsLoopback(adbPush) },
        { metric: 'pull 64 MiB, adb 29', value: mbps(adbPull), unit: 'MB/s', ...vsLoopback(adbPull) },
        { metric: 'push 64 MiB, @yume-chan/adb direct', value: mbps(yumePush), unit: 'MB/s', ...vsLoopback(yumePush) },
        { metric: 'pull 64 MiB, @yume-chan/adb direct', value: mbps(yumePull), unit: 'MB/s', ...vsLoopback(yumePull) },
        shellRow('shell echo p50, @yume-chan/adb direct', p50),
        shellRow('shell echo p99, @yume-chan/adb direct', percentile(directTimes, 99)),
        shellRow('shell echo p50, @yume-chan/adb via adb server', percentile(serverTimes, 50)),
        shellRow('shell echo p99, @yume-chan/adb via adb server', percentile(serverTimes, 99)),
      ],
      notes: [
        'The device runs in its own process (`cloudphone-server virtual-device --base-port 0 --profile pixel-8`).',
        'adb push/pull times include starting the adb client process; the adb server is private (own port and HOME).',
        `Shell round trips: ${SHELL_CALLS} sequential \`echo\` calls over the shell protocol after one warm-up call.`,
        'Pulled bytes are compared with the pushed ones.',
      ],
    });
  } finally {
    await direct?.close();
    await viaServer?.close();
    await host?.stop();
    await stop(device);
    rmSync(work, { recursive: true, force: true });
  }
}
