import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { inject } from 'vitest';

/**
 * A private PostgreSQL for the tests. The global setup (postgres-setup.ts) starts a broker on loopback; the first
 * test that asks for a database makes it start one cluster (initdb into a temp directory, pg_ctl on a random
 * loopback port, the socket in that directory), which serves every test file of the run and is removed at the end.
 * `CLOUDPHONE_TEST_POSTGRES_URL` (a superuser's URL) replaces the private cluster. Each test gets its own database.
 */

const run = promisify(execFile);

declare module 'vitest' {
  interface ProvidedContext {
    /**
     * The broker's URL: GET answers `{ url, prefix }` (a superuser's URL of the cluster, and how the names of this
     * run's databases begin) or `{ error }` (one line).
     */
    postgresBroker: string;
  }
}

export const INSTALL_HINT =
  'these tests need PostgreSQL and initdb was not found: apt-get install -y postgresql ' +
  '(or set CLOUDPHONE_TEST_POSTGRES_URL to a superuser URL)';

export interface Cluster {
  /** A superuser's URL, with its password, to the `postgres` database. */
  url: string;
  stop(): Promise<void>;
}

/** Where initdb is looked for: the `PATH` to search, then Debian's folder of versions. */
export interface Search {
  path?: string | undefined;
  versions?: string;
}

/** The directory of initdb and pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/<version>/bin. */
async function binDir({ path = process.env.PATH, versions: root = '/usr/lib/postgresql' }: Search): Promise<string> {
  try {
    const { stdout } = await run('/bin/sh', ['-c', 'command -v initdb'], { env: { PATH: path ?? '' } });
    if (stdout.trim() !== '') return join(stdout.trim(), '..');
  } catch {
    // Not on PATH: Debian keeps it under /usr/lib/postgresql.
  }
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a)).find((v) => existsSync(join(root, v, 'bin', 'initdb')));
  if (newest === undefined) throw new Error(INSTALL_HINT);
  return join(root, newest, 'bin');
}

/** A loopback port nothing listened on a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a throwaway cluster. As root, it runs as the `postgres` user (PostgreSQL refuses to run as root). */
export async function startCluster(search: Search = {}): Promise<Cluster> {
  const bin = await binDir(search);
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'cloudphone-pg-'));
  const password = randomBytes(16).toString('hex');
  const as = async (command: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, command), ...args]) : run(join(bin, command), args);
  const data = join(dir, 'data');
  try {
    writeFileSync(join(dir, 'password'), `${password}\n`, { mode: 0o600 });
    if (asRoot) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: group } = await run('id', ['-g', 'postgres']);
      for (const path of [dir, join(dir, 'password')]) chownSync(path, Number(stdout), Number(group));
    }
    await as('initdb', [
      ...['-D', data, '-U', 'postgres', `--pwfile=${join(dir, 'password')}`],
      ...['--auth-local=trust', '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-sync'],
    ]);
    const port = await freePort();
    const options = [
      `-p ${port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${dir}`,
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c max_connections=300',
    ].join(' ');
    await as('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '30', '-o', options, 'start']);
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      async stop() {
        await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const { stderr } = error as { stderr?: string };
    throw new Error(`could not start a private PostgreSQL: ${(stderr || String(error)).trim().split('\n')[0]}`);
  }
}

/** The cluster, from the broker (which starts it on the first call of the run). */
async function cluster(): Promise<{ url: string; prefix: string }> {
  const response = await fetch(inject('postgresBroker'));
  const answer = (await response.json()) as { url?: string; prefix: string; error?: string };
  if (answer.url === undefined) throw new Error(answer.error);
  return { url: answer.url, prefix: answer.prefix };
}

export interface TestDatabase {
  /** A superuser's URL to this test's own database (or schema). */
  url: string;
  drop(): Promise<void>;
}

/** Runs statements over a connection of its own to `url`; the rows of the last one. */
export async function execute(url: string, ...statements: string[]): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let rows: Record<string, unknown>[] = [];
    for (const statement of statements) rows = (await client.query(statement)).rows;
    return rows;
  } finally {
    await client.end();
  }
}

/** A new empty database on the test cluster, for one test file (creating one takes a few hundred ms). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const { url: admin, prefix } = await cluster();
  const name = `${prefix}${randomBytes(6).toString('hex')}`;
  await execute(admin, `create database ${name}`);
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    drop: async () => {
      await execute(admin, `drop database if exists ${name} with (force)`);
    },
  };
}

/** This process's database for schemas, created on first use. */
let schemaHome: Promise<TestDatabase> | undefined;

/**
 * A new empty schema for one test, reached through a URL whose connections have it as their only search path:
 * as good as a database of its own for the server, and created in milliseconds rather than hundreds.
 */
export async function createTestSchema(): Promise<TestDatabase> {
  schemaHome ??= createTestDatabase();
  const home = (await schemaHome).url;
  const name = `test_${randomBytes(6).toString('hex')}`;
  await execute(home, `create schema ${name}`);
  const url = new URL(home);
  url.searchParams.set('options', `-c search_path=${name}`);
  return {
    url: url.href,
    drop: async () => {
      await execute(home, `drop schema if exists ${name} cascade`);
    },
  };
}
