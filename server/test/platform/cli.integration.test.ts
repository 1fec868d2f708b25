import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdbHost } from '../helpers/adb-host.js';
import { buildServer, root, runServerBin, serverBin, serverEnv, type Outcome } from '../helpers/server-bin.js';

interface Started {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
}

/** Spawns `start` and resolves once its standard error matches `ready`. */
function start(dataDir: string, ready: RegExp, ...flags: string[]): Promise<Started> {
  const child = spawn(
    process.execPath,
    [serverBin, 'start', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', ...flags],
    { env: serverEnv },
  );
  let stderr = '';
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      stderr += chunk;
      const url = /listening on (http:\/\/\S+)\n/.exec(stderr)?.[1];
      if (url && ready.test(stderr)) resolve({ child, url, stderr: () => stderr, stdout: () => stdout, exited });
    });
    void exited.then((code) => reject(new Error(`start exited with ${code}: ${stderr}`)));
  });
}

const run = (...args: string[]): Promise<Outcome> => runServerBin(args);

/** Runs a command line with `sh -c` in the checkout, `input` on its standard input, never asking the registry. */
function shell(
  command: string,
  input: string,
  extraEnv: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'sh',
      ['-c', command],
      { cwd: root, env: { ...serverEnv, ...extraEnv, npm_config_yes: 'false', npm_config_offline: 'true' }, timeout: 20_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
    child.stdin!.end(input);
  });
}

/** A plain TCP listener on a random loopback port, standing in for another server on that port. */
async function occupyPort(): Promise<Server & { port: number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

describe('cloudphone-server', () => {
  let dir: string;

  beforeAll(() => {
    buildServer();
    dir = mkdtempSync(join(tmpdir(), 'cloudphone-cli-'));
  }, 180_000);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the admin password on the first start only, backs up while running, and stops on signals', async () => {
    const dataDir = join(dir, 'data');
    const first = await start(dataDir, /Log in: .*\n/);
    try {
      const password = /Created user "admin" with password (\S+)\n/.exec(first.stderr())?.[1];
      expect(password).toBeDefined();
      expect(first.stderr()).toContain(`API reference: ${first.url}/docs\n`);
      // From the checkout (where the server was started), the hint works as printed, without a global install.
      const hint = `npx cloudphone login --api-url ${first.url} --username admin`;
      expect(first.stderr()).toContain(`Log in: ${hint}\n`);
      const configHome = mkdtempSync(join(dir, 'config-'));
      const loggedIn = await shell(`${hint} --password-stdin`, `${password}`, { XDG_CONFIG_HOME: configHome });
      expect(loggedIn).toMatchObject({ code: 0 });
      expect(loggedIn.stderr + loggedIn.stdout).toContain('Logged in to');

      const login = await fetch(`${first.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password }),
      });
      expect(login.status).toBe(200);

      const file = join(dir, 'backup.db');
      const backup = await run('backup', file, '--data-dir', dataDir);
      expect(backup).toMatchObject({ code: 0, stderr: '' });
      expect(backup.stdout).toMatch(/^Backed up .*cloudphone\.db to .*backup\.db \(\d+ pages\)\n$/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const copy = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
      try {
        expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(copy.prepare('select username, role from users').all()).toEqual([{ username: 'admin', role: 'admin' }]);
      } finally {
        copy.close();
      }

      const again = await run('backup', file, '--data-dir', dataDir);
      expect(again.code).toBe(1);
      expect(again.stderr).toBe(`cloudphone-server: ${file} exists; pass --force to replace it.\n`);
      expect((await run('backup', file, '--data-dir', dataDir, '--force')).code).toBe(0);
    } finally {
      first.child.kill('SIGTERM');
    }
    expect(await first.exited).toBe(0);

    const second = await start(
      dataDir,
      /API reference: \S+\n/,
      ...['--log-level', 'info', '--log-format', 'pretty', '--node-name', 'cp-7.rack_1'],
    );
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
    const lines = second.stdout().trimEnd().split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} cp-7\.rack_1 INFO  shutting down signal=SIGINT$/),
    );
    for (const line of lines) expect(line).toMatch(/^\d\d:\d\d:\d\d\.\d{3} cp-7\.rack_1 (INFO |WARN |ERROR) \S/);
    expect(second.stderr()).not.toContain('Created user');
    expect(second.stderr()).not.toContain('Log in:');
  });

  it('refuses a backup of a data directory without a database', async () => {
    const result = await run('backup', join(dir, 'none.db'), '--data-dir', join(dir, 'empty'));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^cloudphone-server: No database at .*cloudphone\.db\.\n$/);
    expect(existsSync(join(dir, 'empty'))).toBe(false);
  });

  it('replaces a file that is not a database with --force', async () => {
    const dataDir = join(dir, 'force');
    expect((await run('migrate', '--data-dir', dataDir)).code).toBe(0);
    const file = join(dir, 'not-a-database.db');
    writeFileSync(file, 'plain text');
    expect((await run('backup', file, '--data-dir', dataDir, '--force')).code).toBe(0);
    const copy = new BetterSqlite3(file, { readonly: true });
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    copy.close();
  });

  it('applies migrations and says what it applied', async () => {
    const dataDir = join(dir, 'migrate');
    expect(await run('migrate', '--data-dir', dataDir)).toEqual({
      code: 0,
      stdout: 'Applied 0001_initial\nApplied 0002_devices\nApplied 0003_apps\nApplied 0004_spent_refresh_tokens\nApplied 0005_login_failures\nApplied 0006_install_job_device_positions\nApplied 0007_work_owners\nApplied 0008_billing\nApplied 0009_usage_report_index\nApplied 0010_notifications\n',
      stderr: '',
    });
    expect(await run('migrate', '--data-dir', dataDir)).toEqual({
      code: 0,
      stdout: 'The database is up to date.\n',
      stderr: '',
    });
  });

  it('exits 2 with one line for a bad setting', async () => {
    const result = await run('start', '--port', 'abc', '--data-dir', join(dir, 'unused'));
    expect(result).toEqual({ code: 2, stdout: '', stderr: 'port: expected an integer from 0 to 65535, got "abc"\n' });
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });

  it('exits 2 with one line for a bad node name, from the flag or CLOUDPHONE_NODE_NAME', async () => {
    const expected = '1 to 63 letters, digits, dots, dashes or underscores';
    expect(await run('start', '--node-name', 'rack 1', '--data-dir', join(dir, 'unused'))).toEqual({
      code: 2,
      stdout: '',
      stderr: `nodeName: expected ${expected}, got "rack 1"\n`,
    });
    expect(
      await runServerBin(['start', '--data-dir', join(dir, 'unused')], { CLOUDPHONE_NODE_NAME: 'node/1' }),
    ).toEqual({ code: 2, stdout: '', stderr: `CLOUDPHONE_NODE_NAME: expected ${expected}, got "node/1"\n` });
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });

  describe('on a port another process holds', () => {
    let busy: Server & { port: number };

    beforeAll(async () => {
      busy = await occupyPort();
    });

    afterAll(async () => {
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    });

    async function expectPortInUse(...flags: string[]) {
      const dataDir = mkdtempSync(join(dir, 'busy-'));
      const began = Date.now();
      const result = await run('start', '--port', String(busy.port), '--data-dir', dataDir, ...flags);
      expect(Date.now() - began).toBeLessThan(5_000);
      expect(result.stderr).toBe(
        `cloudphone-server: 127.0.0.1:${busy.port} is already in use (set CLOUDPHONE_PORT or --port)\n`,
      );
      expect(result.code).toBe(1);
      // Nothing started: no host was tracked and no admin (whose password nobody saw) was created.
      expect(result.stdout).not.toContain('tracking');
      const db = new BetterSqlite3(join(dataDir, 'cloudphone.db'), { readonly: true });
      try {
        const tables = db.prepare("select name from sqlite_master where type = 'table' and name = 'users'").all();
        const users = tables.length === 0 ? 0 : (db.prepare('select count(*) as n from users').get() as { n: number }).n;
        expect(users).toBe(0);
      } finally {
        db.close();
      }
    }

    it('exits 1 at once with one line, before starting virtual devices', async () => {
      await expectPortInUse('--virtual-devices', '2');
    });

    it('exits 1 at once with one line while an ADB server is there to track', async () => {
      const adb = await startAdbHost();
      try {
        await expectPortInUse('--adb-servers', `127.0.0.1:${adb.port}`);
      } finally {
        await adb.stop();
      }
    });
  });

  it('exits 2 on usage errors', async () => {
    expect((await run('launch')).code).toBe(2);
    expect((await run('start', '--verbose')).code).toBe(2);
    expect((await run('--version')).code).toBe(0);
  });
});
