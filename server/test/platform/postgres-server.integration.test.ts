import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, freePort, type TestDatabase } from '../helpers/postgres.js';
import { buildServer, runServerBin, serverBin, serverEnv } from '../helpers/server-bin.js';

describe('cloudphone-server on PostgreSQL', () => {
  let dir: string;
  let database: TestDatabase;

  beforeAll(async () => {
    buildServer();
    dir = mkdtempSync(join(tmpdir(), 'cloudphone-pg-server-'));
    database = await createTestDatabase();
  }, 180_000);

  afterAll(async () => {
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrates, then starts and serves health, login and /v1/me over HTTP', async () => {
    const migrated = await runServerBin(['migrate', '--database-url', database.url]);
    expect(migrated).toMatchObject({ code: 0, stderr: '' });
    expect(migrated.stdout).toMatch(/^(Applied \d{4}_\w+\n){5,}$/);
    expect(migrated.stdout).toContain('Applied 0001_initial\n');
    expect(await runServerBin(['migrate', '--database-url', database.url])).toMatchObject({
      code: 0,
      stdout: 'The database is up to date.\n',
    });

    const args = ['start', '--port', '0', '--data-dir', join(dir, 'data'), '--log-level', 'warn'];
    const child = spawn(process.execPath, [serverBin, ...args], { env: { ...serverEnv, CLOUDPHONE_DATABASE_URL: database.url } });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let stderr = '';
      const { url, password } = await new Promise<{ url: string; password: string }>((resolve, reject) => {
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          stderr += chunk;
          const url = /listening on (http:\/\/\S+)\n/.exec(stderr)?.[1];
          const password = /Created user "admin" with password (\S+)\n/.exec(stderr)?.[1];
          if (url && password) resolve({ url, password });
        });
        void exited.then((code) => reject(new Error(`start exited with ${code}: ${stderr}`)));
      });

      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      const login = await fetch(`${url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'admin', password }),
      });
      expect(login.status).toBe(200);
      const { accessToken } = (await login.json()) as { accessToken: string };
      const me = await fetch(`${url}/v1/me`, { headers: { authorization: `Bearer ${accessToken}` } });
      expect(me.status).toBe(200);
      expect(await me.json()).toMatchObject({ username: 'admin', role: 'admin' });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses a backup in one line that names pg_dump, exit 2', async () => {
    const backup = await runServerBin(['backup', join(dir, 'copy.db')], { CLOUDPHONE_DATABASE_URL: database.url });
    expect(backup.code).toBe(2);
    expect(backup.stderr).toBe(
      'cloudphone-server: the database is PostgreSQL (CLOUDPHONE_DATABASE_URL): back it up with pg_dump, ' +
        'e.g. pg_dump --format=custom\n',
    );
  });

  it('names CLOUDPHONE_DATABASE_URL with the password masked when the password is wrong', async () => {
    const wrong = new URL(database.url);
    wrong.password = 'not-the-password';
    const masked = new URL(database.url);
    masked.password = '***';
    for (const args of [['migrate'], ['start', '--port', '0', '--data-dir', join(dir, 'data')]]) {
      const result = await runServerBin(args, { CLOUDPHONE_DATABASE_URL: wrong.href });
      expect(result).toMatchObject({
        code: 1,
        stderr: `cloudphone-server: CLOUDPHONE_DATABASE_URL ${masked.href}: cannot connect: the password was refused\n`,
      });
    }
  });

  it('names CLOUDPHONE_DATABASE_URL when nothing answers at the address', async () => {
    const port = await freePort();
    const url = `postgres://farm:secret@127.0.0.1:${port}/cloudphone`;
    const result = await runServerBin(['migrate'], { CLOUDPHONE_DATABASE_URL: url });
    expect(result).toMatchObject({
      code: 1,
      stderr:
        `cloudphone-server: CLOUDPHONE_DATABASE_URL postgres://farm:***@127.0.0.1:${port}/cloudphone: ` +
        'cannot connect: nothing answers at that address\n',
    });
  });

  it('names CLOUDPHONE_DATABASE_URL when the database does not exist', async () => {
    const missing = new URL(database.url);
    missing.pathname = '/cloudphone_no_such_database';
    const result = await runServerBin(['migrate'], { CLOUDPHONE_DATABASE_URL: missing.href });
    missing.password = '***';
    expect(result).toMatchObject({
      code: 1,
      stderr: `cloudphone-server: CLOUDPHONE_DATABASE_URL ${missing.href}: cannot connect: the database does not exist\n`,
    });
  });

  it('exits 2 with one line for a URL that is not PostgreSQL', async () => {
    const url = 'mysql://farm:secret@127.0.0.1/cloudphone';
    const result = await runServerBin(['start', '--port', '0'], { CLOUDPHONE_DATABASE_URL: url });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'CLOUDPHONE_DATABASE_URL: expected a PostgreSQL URL such as postgres://user:password@host:5432/database, ' +
        'got "mysql://farm:***@127.0.0.1/cloudphone"\n',
    );
  });
});
