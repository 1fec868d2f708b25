import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudPhone, type Lease, type ShellResult } from '@cloudphone/sdk';
import { startServer, type RunningServer } from '@cloudphone/server';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startAdbHost, type AdbHost } from '../../server/test/helpers/adb-host.js';
import { assertBuilt, cliRoot, runCli, type Result, type RunOptions } from './fixtures/cli.js';

/*
 * The built CLI's device commands against the real server with one in-process virtual device: lease it, use it
 * (shell, files, screenshot, logcat, labels, input, the ADB tunnel with the real adb), release it.
 */

const ADMIN_PASSWORD = 'admin-password-for-cli-device-tests';
const LOG_LINE = /^\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} +\d+ +\d+ [VDIWEF] [^:]*: /;

let server: RunningServer;
let dataDir: string;
let home: string;
let work: string;
/** A member's token: device commands need a lease (admins may use any device). */
let token: string;
let adminToken: string;
let lease: Lease;
let device: string;

function cli(args: string[], options: RunOptions = {}): Promise<Result> {
  return runCli(home, args, { ...options, env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token, ...options.env } });
}

/** Starts the CLI and resolves with the child once its standard output has a full line, and that line. */
function startCli(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; line: string; done: Promise<Result> }> {
  return new Promise((resolve, reject) => {
    let child!: ChildProcess;
    const done = cli(args, {
      env,
      started: (started) => {
        child = started;
        let out = '';
        started.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const newline = out.indexOf('\n');
          if (newline !== -1) resolve({ child, line: out.slice(0, newline), done });
        });
      },
    });
    void done.then((result) => reject(new Error(`the CLI exited early: ${JSON.stringify(result)}`)));
  });
}

beforeAll(async () => {
  assertBuilt();
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-cli-devices-data-'));
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-devices-'));
  work = mkdtempSync(join(tmpdir(), 'cloudphone-cli-devices-files-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    virtualDevices: 1,
    logStream: { write: () => undefined },
  });
  const pair = await new CloudPhone({ baseUrl: server.url }).auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  adminToken = pair.accessToken;
  const admin = new CloudPhone({ baseUrl: server.url, token: adminToken });
  await admin.users.create({ username: 'device-user', password: 'correct-horse-battery', role: 'member' });
  token = (await admin.auth.login({ username: 'device-user', password: 'correct-horse-battery' })).accessToken;
  const deadline = Date.now() + 30_000;
  while ((await admin.devices.list({ available: true })).data.length < 1) {
    if (Date.now() > deadline) throw new Error('the virtual device did not come online');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 60_000);

afterAll(async () => {
  await server?.close();
  for (const dir of [dataDir, home, work]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.sequential('device commands against the real server', () => {
  test('leases create --json grants one device', async () => {
    const result = await cli(['leases', 'create', '--count', '1', '--ttl', '600', '--json']);
    expect(result.code, result.stderr).toBe(0);
    lease = JSON.parse(result.stdout) as Lease;
    expect(lease).toMatchObject({ status: 'granted', count: 1 });
    expect(lease.devices).toHaveLength(1);
    device = lease.devices[0]!.id;
  });

  test('leases create without --wait fails at once when nothing is free; with --wait it times out with 69', async () => {
    const busy = await cli(['leases', 'create', '--json']);
    expect(busy.code).toBe(1);
    expect(JSON.parse(busy.stdout)).toMatchObject({ error: { code: 'no_devices_available', status: 409 } });
    const waited = await cli(['leases', 'create', '--wait', '1']);
    expect(waited.code).toBe(69);
    expect(waited.stdout).toMatch(/^status +(timed_out|queued)$/m);
  });

  test('shell prints the output and exits with the command exit code', async () => {
    expect(await cli(['devices', 'shell', device, '--', 'echo', 'hi'])).toEqual({ code: 0, stdout: 'hi\n', stderr: '' });
    const failed = await cli(['devices', 'shell', device, '--', 'false']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('');
    const viaEnv = await cli(['devices', 'shell', '--command', 'echo via env'], { env: { CLOUDPHONE_DEVICE: device } });
    expect(viaEnv).toEqual({ code: 0, stdout: 'via env\n', stderr: '' });
    // Whatever the device's exit code and stderr, the CLI passes them on as they are.
    const json = JSON.parse((await cli(['devices', 'shell', device, '--json', '--', 'ls', '/nonexistent'])).stdout) as ShellResult;
    expect(json.exitCode).toBeGreaterThan(0);
    const plain = await cli(['devices', 'shell', device, '--', 'ls', '/nonexistent']);
    expect(plain).toEqual({ code: json.exitCode, stdout: json.stdout, stderr: json.stderr });
  });

  test('shell --json prints the ShellResult; --stdin sends standard input', async () => {
    const result = await cli(['devices', 'shell', '-s', device, '--json', '--', 'echo', 'a  b']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout) as ShellResult).toMatchObject({ exitCode: 0, stdout: 'a  b\n', timedOut: false });
    const piped = await cli(['devices', 'shell', device, '--stdin', '--', 'cat'], { input: 'from stdin\n' });
    expect(piped).toMatchObject({ code: 0, stdout: 'from stdin\n' });
  });

  test('shell without a command and without a terminal is a usage error', async () => {
    const result = await cli(['devices', 'shell', device]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Give the command after --');
  });

  test('shell -i runs the piped lines in one device shell and exits with the code exit gives', async () => {
    const typed = 'echo hi\nX=2; echo $X | wc -c\nls /nope\nexit 3\necho never\n';
    const result = await cli(['devices', 'shell', device, '-i'], { input: typed });
    expect(result).toEqual({ code: 3, stdout: 'hi\n2\n', stderr: 'ls: /nope: No such file or directory\n' });
    const ended = await cli(['devices', 'shell', device, '-i'], { input: 'echo a > /sdcard/i.txt\ncat /sdcard/i.txt\n' });
    expect(ended).toEqual({ code: 0, stdout: 'a\n', stderr: '' });
    expect((await cli(['devices', 'shell', device, '-i'], { input: 'false\n' })).code).toBe(1);
  });

  test('shell on a terminal prompts like a phone, echoes what is typed and exits with the code', async () => {
    // `script` gives the CLI a pty, so the shell is interactive.
    const command = [process.execPath, join(cliRoot, 'bin', 'run.js'), 'devices', 'shell', device].join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, NO_COLOR: '1', CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token },
    });
    let screen = '';
    child.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const prompts = async (count: number): Promise<void> => {
      while (screen.split('virtual:/ $ ').length <= count) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    await prompts(1);
    child.stdin.write('echo hi\r');
    await prompts(2);
    child.stdin.write('exit 5\r');
    expect(await exited).toBe(5);
    // The terminal `script` opens adds its own CR before each LF: compare without CRs.
    expect(screen.replace(/\r/g, '')).toContain('virtual:/ $ echo hi\nhi\nvirtual:/ $ exit 5\n');
  });

  test('push and pull are byte-exact', async () => {
    const bytes = randomBytes(300_000);
    const local = join(work, 'random.bin');
    writeFileSync(local, bytes);
    const pushed = await cli(['devices', 'push', device, local, '/data/local/tmp/random.bin', '--json']);
    expect(pushed.code, pushed.stdout).toBe(0);
    expect(JSON.parse(pushed.stdout)).toEqual({ path: '/data/local/tmp/random.bin', size: bytes.length });
    const back = join(work, 'back.bin');
    const pulled = await cli(['devices', 'pull', device, '/data/local/tmp/random.bin', back]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stdout).toBe(`${back}\n`);
    expect(readFileSync(back).equals(bytes)).toBe(true);
    // Default name in the current directory is not tested (the spawned CLI's cwd is the repo); `-` is stdout.
    writeFileSync(join(work, 'hello.txt'), 'hello file\n');
    await cli(['devices', 'push', join(work, 'hello.txt'), '/data/local/tmp/hello.txt'], { env: { CLOUDPHONE_DEVICE: device } });
    expect(await cli(['devices', 'pull', '/data/local/tmp/hello.txt', '-'], { env: { CLOUDPHONE_DEVICE: device } })).toMatchObject({
      code: 0,
      stdout: 'hello file\n',
    });
    // Piped standard input is the file, never taken for the optional DEVICE argument.
    const piped = await cli(['devices', 'push', '-', '/data/local/tmp/piped.txt'], { input: 'piped in\n', env: { CLOUDPHONE_DEVICE: device } });
    expect(piped.code, piped.stderr).toBe(0);
    expect((await cli(['devices', 'pull', device, '/data/local/tmp/piped.txt', '-'])).stdout).toBe('piped in\n');
    const missing = await cli(['devices', 'pull', device, '/data/local/tmp/nope', join(work, 'nope'), '--json']);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: 'file_not_found' } });
  });

  test('screenshot writes a PNG and prints its path', async () => {
    const file = join(work, 'screen.png');
    const result = await cli(['devices', 'screenshot', device, '-o', file]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${file}\n`);
    expect(readFileSync(file).subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  });

  test('logcat prints threadtime lines, --json the entries', async () => {
    const json = await cli(['devices', 'logcat', device, '--tail', '20', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const entries = JSON.parse(json.stdout) as unknown[];
    expect(Array.isArray(entries)).toBe(true);
    const text = await cli(['devices', 'logcat', device, '--tail', '20']);
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(entries.length);
    for (const line of lines) expect(line).toMatch(LOG_LINE);
  });

  test('logcat --follow runs until Ctrl-C (130)', async () => {
    let child!: ChildProcess;
    const running = cli(['devices', 'logcat', device, '-f', '--json'], { started: (c) => (child = c) });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    child.kill('SIGINT');
    const result = await running;
    expect(result.code, result.stderr).toBe(130);
    for (const line of result.stdout.split('\n').filter(Boolean)) expect(JSON.parse(line)).toHaveProperty('tag');
  });

  test('label sets and removes labels (admins only)', async () => {
    const env = { CLOUDPHONE_TOKEN: adminToken };
    expect(await cli(['devices', 'label', device, 'team=qa', 'rack=b2'], { env })).toMatchObject({ code: 0, stdout: 'rack=b2\nteam=qa\n' });
    expect(await cli(['devices', 'label', device, 'rack-'], { env })).toMatchObject({ code: 0, stdout: 'team=qa\n' });
    expect((await cli(['devices', 'label', device, 'oops'], { env })).code).toBe(2);
    expect((await cli(['devices', 'label', device, 'x=1'])).code).toBe(1);
  });

  test('input sends actions', async () => {
    expect(await cli(['devices', 'input', device, 'tap', '10', '20'])).toMatchObject({ code: 0, stdout: '' });
    expect((await cli(['devices', 'input', device, 'swipe', '0', '0', '100', '100', '--duration', '50'])).code).toBe(0);
    expect((await cli(['devices', 'input', device, 'text', 'hello', 'world'])).code).toBe(0);
    expect((await cli(['devices', 'input', device, 'key', 'HOME'])).code).toBe(0);
    expect((await cli(['devices', 'input', device, 'tap', '10'])).code).toBe(2);
  });

  describe('connect', () => {
    let adb: AdbHost | undefined;
    afterAll(async () => {
      await adb?.stop();
    });

    test('tunnels the real adb to the device until Ctrl-C (exit 130)', async () => {
      const { child, line, done } = await startCli(['devices', 'connect', device]);
      expect(line).toMatch(/^127\.0\.0\.1:\d+$/);
      adb = await startAdbHost();
      const connected = await adb.run('connect', line);
      expect(connected.stdout).toContain(`connected to ${line}`);
      expect((await adb.run('-s', line, 'wait-for-device')).code).toBe(0);
      expect(await adb.run('-s', line, 'shell', 'echo', 'hi')).toMatchObject({ code: 0, stdout: 'hi\n' });
      await adb.run('disconnect', line);
      child.kill('SIGINT');
      const result = await done;
      expect(result.code, result.stderr).toBe(130);
      expect(result.stderr).toContain(`adb connect ${line}`);
    });
  });

  test('a waiting leases create gets the device when the lease holding it is released; connect then exits 1', async () => {
    const tunnel = await startCli(['devices', 'connect', device]);
    const adb = await startAdbHost();
    try {
      expect((await adb.run('connect', tunnel.line)).stdout).toContain('connected to');
      expect((await adb.run('-s', tunnel.line, 'wait-for-device')).code).toBe(0);
      expect(await adb.run('-s', tunnel.line, 'shell', 'echo', 'again')).toMatchObject({ code: 0, stdout: 'again\n' });
      const waiting = cli(['leases', 'create', '--wait', '30', '--json']);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const released = await cli(['leases', 'release', lease.id, '--json']);
      expect(released.code, released.stdout).toBe(0);
      expect(JSON.parse(released.stdout)).toMatchObject({ status: 'released' });

      const ended = await tunnel.done;
      expect(ended.code).toBe(1);
      expect(ended.stderr).toContain('ended (lease ended): the ADB tunnel is closed');

      const granted = await waiting;
      expect(granted.code, granted.stderr).toBe(0);
      const next = JSON.parse(granted.stdout) as Lease;
      expect(next).toMatchObject({ status: 'granted' });
      expect(next.devices.map((d) => d.id)).toEqual([device]);
      expect((await cli(['leases', 'release', next.id])).code).toBe(0);
    } finally {
      await adb.stop();
    }
    const after = await cli(['devices', 'shell', device, '--json', '--', 'echo', 'hi']);
    expect(after.code).toBe(1);
    expect(JSON.parse(after.stdout)).toMatchObject({ error: { status: 403, code: 'lease_required' } });
  });

  test('a bad token exits 4', async () => {
    const result = await cli(['devices', 'shell', device, '--', 'true'], { env: { CLOUDPHONE_TOKEN: 'cpt_not-a-real-token' } });
    expect(result.code).toBe(4);
  });
});
