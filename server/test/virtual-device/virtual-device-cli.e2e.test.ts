import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';

// The built bin: `npx tsc -b server` first, as `npm test` does.
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'cloudphone-server.js');

interface Running {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  exited: Promise<number | null>;
}

/** Starts `cloudphone-server virtual-device …` and resolves once it has printed `count` device lines. */
function startCli(args: string[], count: number): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'virtual-device', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const lines = stdout.split('\n').filter((line) => line !== '');
      if (lines.length >= count) resolve({ child, lines, exited });
    });
    void exited.then((code) => reject(new Error(`virtual-device exited with ${code}: ${stderr}`)));
  });
}

function runCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'virtual-device', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

describe('cloudphone-server virtual-device', () => {
  let adb: AdbHost;
  let dir: string;

  beforeAll(async () => {
    adb = await startAdbHost();
    dir = await mkdtemp(join(tmpdir(), 'cloudphone-vd-cli-'));
  });

  afterAll(async () => {
    await adb?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('starts N devices on free ports, prints them, serves adb and stops on SIGTERM', async () => {
    const running = await startCli(['--count', '2', '--base-port', '0', '--profile', 'galaxy-s21'], 2);
    try {
      const parsed = running.lines.map((line) => /^(127\.0\.0\.1:\d+) (CPVIRT\d{4}) galaxy-s21$/.exec(line));
      expect(parsed.every((match) => match !== null)).toBe(true);
      const addresses = parsed.map((match) => match![1]!);
      expect(new Set(parsed.map((match) => match![2])).size).toBe(2);
      for (const address of addresses) {
        expect((await adb.run('connect', address)).stdout).toContain(`connected to ${address}`);
        expect((await adb.run('-s', address, 'wait-for-device')).code).toBe(0);
        expect((await adb.run('-s', address, 'shell', 'getprop', 'ro.product.model')).stdout).toBe('SM-G991B\n');
      }
      const serial = await adb.run('-s', addresses[1]!, 'shell', 'getprop', 'ro.serialno');
      expect(serial.stdout).toBe(`${parsed[1]![2]}\n`);
    } finally {
      running.child.kill('SIGTERM');
    }
    expect(await running.exited).toBe(0);
  });

  it('takes a JSON profile file', async () => {
    const file = join(dir, 'lab.json');
    await writeFile(
      file,
      JSON.stringify({
        serial: 'LAB0001',
        model: 'Lab Phone',
        product: 'lab',
        device: 'lab',
        manufacturer: 'Lab',
        brand: 'lab',
        release: '15',
        sdk: 35,
        abis: ['x86_64'],
        screen: { width: 720, height: 1280, density: 320 },
      }),
    );
    const running = await startCli(['--base-port', '0', '--profile-file', file], 1);
    try {
      expect(running.lines).toEqual([expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:\\d+ LAB0001 ${file}$`))]);
      const address = running.lines[0]!.split(' ')[0]!;
      await adb.run('connect', address);
      expect((await adb.run('-s', address, 'wait-for-device')).code).toBe(0);
      expect((await adb.run('-s', address, 'shell', 'wm', 'size')).stdout).toBe('Physical size: 720x1280\n');
    } finally {
      running.child.kill('SIGINT');
    }
    expect(await running.exited).toBe(0);
  });

  it('refuses bad options and profiles with one line', async () => {
    const badFile = join(dir, 'bad.json');
    await writeFile(badFile, JSON.stringify({ model: 'x' }));
    const results = await Promise.all([
      runCli(['--count', '0']),
      runCli(['--profile', 'nokia-3310']),
      runCli(['--base-port', '0', '--profile-file', badFile]),
      runCli(['--profile', 'pixel-8', '--profile-file', badFile]),
    ]);
    expect(results.map((result) => result.code)).toEqual([2, 1, 1, 1]);
    expect(results[0]!.stderr).toContain("option '--count <n>' argument '0' is invalid");
    expect(results[1]!.stderr).toBe(
      'cloudphone-server: unknown profile "nokia-3310"; built-in: virtual, pixel-8, pixel-6a, galaxy-s21, pixel-3, emulator-x86_64\n',
    );
    expect(results[2]!.stderr).toMatch(/^cloudphone-server: .*bad\.json: product: [^\n]*\n$/);
    expect(results[3]!.stderr).toBe('cloudphone-server: give --profile or --profile-file, not both\n');
  });
});
