import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Config } from '@oclif/core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, API_TOKEN, EXPIRED_ACCESS_TOKEN, FakeServer } from './fixtures/fake-server.js';

const cliRoot = resolve(import.meta.dirname, '..');
const bin = join(cliRoot, 'bin', 'run.js');
const forbidOclif = join(import.meta.dirname, 'fixtures', 'forbid-oclif.mjs');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let server: FakeServer;
let home: string;

interface RunOptions {
  input?: string;
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** Called with the child once it runs. */
  started?: (child: ChildProcess) => void;
}

/** Runs the built CLI without a terminal, the config in a temp dir, none of the caller's CLOUDPHONE_* variables. */
function run(args: string[], options: RunOptions = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, NO_COLOR: '1' };
  Object.assign(env, options.env);
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), bin, ...args], { env });
    options.started?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

const configFile = (): string => join(home, 'cloudphone', 'config.json');
const readConfigFile = (): { activeProfile?: string; profiles: Record<string, Record<string, string>> } =>
  JSON.parse(readFileSync(configFile(), 'utf8'));

function writeConfigFile(config: unknown): void {
  mkdirSync(join(home, 'cloudphone'), { recursive: true, mode: 0o700 });
  writeFileSync(configFile(), JSON.stringify(config), { mode: 0o600 });
}

/** A profile holding the seeded API token. */
function loggedInWithToken(): void {
  writeConfigFile({ activeProfile: 'default', profiles: { default: { apiUrl: server.url, username: 'admin', token: API_TOKEN } } });
}

beforeAll(() => {
  if (!existsSync(join(cliRoot, 'oclif.manifest.json'))) {
    throw new Error('The CLI is not built: run `npm run build` first.');
  }
});

beforeEach(async () => {
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-it-'));
  server = new FakeServer(7);
  await server.start();
});

afterEach(async () => {
  await server.stop();
  rmSync(home, { recursive: true, force: true });
});

describe('start-up', () => {
  let userAgent: string;
  beforeAll(async () => {
    const pjson = JSON.parse(readFileSync(join(cliRoot, 'package.json'), 'utf8'));
    const { loadOptions } = (await import(join(cliRoot, 'dist', 'load-options.js'))) as typeof import('../src/load-options.js');
    userAgent = (await Config.load(loadOptions(cliRoot, pjson))).userAgent;
  });

  it('answers --version and -v in oclif’s format without loading oclif', async () => {
    for (const flag of ['--version', '-v']) {
      const result = await run([flag], { nodeArgs: ['--import', forbidOclif] });
      expect(result).toEqual({ code: 0, stdout: `${userAgent}\n`, stderr: '' });
    }
  });

  it('goes through oclif for everything else', async () => {
    const blocked = await run(['--help'], { nodeArgs: ['--import', forbidOclif] });
    expect(blocked.code).not.toBe(0);
    expect(blocked.stderr).toContain('imported @oclif/core');
  });

  it('lists topics, environment variables and exit codes in the root help', async () => {
    for (const args of [['--help'], ['help']]) {
      const { code, stdout } = await run(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(/TOPICS\n {2}events +The durable event log/);
      expect(stdout).toMatch(/ {2}users +User accounts and roles/);
      expect(stdout).not.toMatch(/^ {2}auth /m);
      expect(stdout).toContain('EXIT CODES');
      expect(stdout).toMatch(/^ {2}4 +Not authenticated/m);
      expect(stdout).toContain('CLOUDPHONE_TOKEN');
    }
  });

  it('shows help for topics and commands from the manifest', async () => {
    const topic = await run(['users', '--help']);
    expect(topic.stdout).toMatch(/users list +List users/);
    const command = await run(['users', 'list', '--help']);
    expect(command.code).toBe(0);
    expect(command.stdout).toContain('$ cloudphone users list');
    expect(command.stdout).toContain('--role=<option>');
    expect(command.stdout).toContain('--all');
  });
});

describe('login and logout', () => {
  it('logs in with the password on stdin and saves the session privately', async () => {
    const result = await run(['login', '--api-url', server.url, '--username', 'admin', '--password-stdin'], {
      input: `${ADMIN_PASSWORD}\n`,
    });
    expect(result).toMatchObject({ code: 0, stdout: '' });
    expect(result.stderr).toBe(`Logged in to ${server.url} as admin (admin), profile default.\n`);
    expect(server.to('POST', '/v1/auth/login')[0]!.body).toEqual({ username: 'admin', password: ADMIN_PASSWORD });
    const config = readConfigFile();
    expect(config.activeProfile).toBe('default');
    expect(config.profiles.default).toMatchObject({ apiUrl: server.url, username: 'admin' });
    expect(config.profiles.default!.accessToken).toMatch(/^cpa_/);
    expect(config.profiles.default!.refreshToken).toMatch(/^cpr_/);
    expect(statSync(configFile()).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'cloudphone')).mode & 0o777).toBe(0o700);

    const me = await run(['whoami', '--json']);
    expect(me.code).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({ username: 'admin', authentication: { method: 'session' } });
  });

  it('prints the user with --json', async () => {
    const result = await run(['login', '--api-url', server.url, '-u', 'admin', '--password-stdin', '--json'], {
      input: ADMIN_PASSWORD,
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ id: server.users[0]!.id, username: 'admin', role: 'admin' });
  });

  it('refuses to prompt without a terminal (exit 2)', async () => {
    const result = await run(['login', '--api-url', server.url, '--username', 'admin']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--password-stdin');
    expect(server.requests).toEqual([]);
  });

  it('exits 4 on wrong credentials and saves nothing', async () => {
    const result = await run(['login', '--api-url', server.url, '--username', 'admin', '--password-stdin'], {
      input: 'wrong-password',
    });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/^Error: The username or password is wrong\. \(invalid_credentials, request req_\w+\)\n/);
    expect(existsSync(configFile())).toBe(false);
  });

  it('checks an API token before saving it in a named profile', async () => {
    const bad = await run(['login', '--api-url', server.url, '--profile', 'ci', '--token', 'cpt_wrong']);
    expect(bad.code).toBe(4);
    expect(existsSync(configFile())).toBe(false);

    const good = await run(['login', '--api-url', server.url, '--profile', 'ci', '--token', API_TOKEN]);
    expect(good.code).toBe(0);
    expect(readConfigFile()).toEqual({
      activeProfile: 'ci',
      profiles: { ci: { apiUrl: server.url, username: 'admin', token: API_TOKEN } },
    });
  });

  it('logs out: ends the session on the server and removes the credentials', async () => {
    writeConfigFile({
      activeProfile: 'default',
      profiles: { default: { apiUrl: server.url, username: 'admin', accessToken: 'cpa_x', refreshToken: 'cpr_seeded' } },
    });
    const result = await run(['logout']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`Logged out of ${server.url} (profile default).\n`);
    expect(server.to('POST', '/v1/auth/logout')[0]!.body).toEqual({ refreshToken: 'cpr_seeded' });
    expect(readConfigFile().profiles.default).toEqual({ apiUrl: server.url, username: 'admin' });

    const again = await run(['whoami']);
    expect(again.code).toBe(4);
    expect(again.stderr).toBe('Error: Not logged in (profile default). Run `cloudphone login` or set CLOUDPHONE_TOKEN.\n');
  });

  it('writes rotated tokens back to the profile', async () => {
    writeConfigFile({
      activeProfile: 'default',
      profiles: { default: { apiUrl: server.url, accessToken: EXPIRED_ACCESS_TOKEN, refreshToken: 'cpr_seeded' } },
    });
    const result = await run(['whoami', '--json']);
    expect(result.code).toBe(0);
    expect(server.to('POST', '/v1/auth/refresh')).toHaveLength(1);
    const profile = readConfigFile().profiles.default!;
    expect(profile.refreshToken).toMatch(/^cpr_0+\d+$/);
    expect(profile.accessToken).not.toBe(EXPIRED_ACCESS_TOKEN);
    expect(statSync(configFile()).mode & 0o777).toBe(0o600);
  });
});

describe('profiles', () => {
  it('lists profiles without secrets and switches the active one', async () => {
    writeConfigFile({
      activeProfile: 'a',
      profiles: { a: { apiUrl: 'http://a:1', username: 'alice', token: API_TOKEN }, b: { apiUrl: 'http://b:1' } },
    });
    const list = await run(['profiles', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([
      { name: 'a', apiUrl: 'http://a:1', username: 'alice', loggedIn: true, active: true },
      { name: 'b', apiUrl: 'http://b:1', username: null, loggedIn: false, active: false },
    ]);
    expect(list.stdout).not.toContain(API_TOKEN);

    expect((await run(['profiles', 'use', 'b'])).code).toBe(0);
    expect(readConfigFile().activeProfile).toBe('b');
    const table = await run(['profiles', 'list']);
    expect(table.stdout).toBe(
      ['NAME  API URL     USERNAME  LOGGED IN  ACTIVE', 'a     http://a:1  alice     true       false', 'b     http://b:1  -         false      true', ''].join('\n'),
    );

    const unknown = await run(['profiles', 'use', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('Error: No profile named nope. Profiles: a, b.\n');
  });
});

describe('generated commands', () => {
  beforeEach(loggedInWithToken);

  it('prints a table with the contract’s columns, or the items as JSON', async () => {
    const table = await run(['users', 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +USERNAME +ROLE +DISABLED +DISPLAY NAME +CREATED AT$/);
    expect(lines).toHaveLength(1 + server.users.length);
    expect(lines[1]).toMatch(/^usr_\w+ +admin +admin +false +Administrator +2026-11-20T09:00:00Z$/);

    const json = await run(['users', 'list', '--json', '--role', 'member']);
    const items = JSON.parse(json.stdout) as { role: string }[];
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((u) => u.role === 'member')).toBe(true);
    expect(server.to('GET', '/v1/users').at(-1)!.query.get('role')).toBe('member');
  });

  it('fetches pages up to --limit, or all of them with --all', async () => {
    const limited = await run(['users', 'list', '--limit', '3', '--json']);
    expect((JSON.parse(limited.stdout) as unknown[]).length).toBe(3);
    expect(server.to('GET', '/v1/users').at(-1)!.query.get('limit')).toBe('3');

    const table = await run(['users', 'list', '--limit', '3']);
    expect(table.stderr).toBe('Showing the first 3. There are more: use --limit <n> or --all.\n');

    server.requests.length = 0;
    const all = await run(['users', 'list', '--all', '--json']);
    expect((JSON.parse(all.stdout) as { id: string }[]).map((u) => u.id)).toEqual(server.users.map((u) => u.id));
    expect(server.to('GET', '/v1/users').map((r) => r.query.get('limit'))).toEqual(['200']);

    const both = await run(['users', 'list', '--limit', '3', '--all']);
    expect(both.code).toBe(2);
  });

  it('renders dotted columns and single resources', async () => {
    const events = await run(['events', 'list']);
    expect(events.stdout.split('\n')[0]).toMatch(/^ID +TYPE +OCCURRED AT +ACTOR USERNAME +SUBJECT TYPE +SUBJECT ID$/);
    expect(events.stdout.split('\n')[1]).toMatch(/ admin +user +usr_01JDX3N2Q8B7W6M4K9T5R1C001$/);

    const user = await run(['users', 'get', server.users[1]!.id]);
    expect(user.stdout).toMatch(/^id +usr_01JDX3N2Q8B7W6M4K9T5R1C001\nusername +user1\nrole +member\ndisabled +false\n/);
  });

  it('sends the body from flags and --data with an idempotency key', async () => {
    const dataFile = join(home, 'user.json');
    writeFileSync(dataFile, JSON.stringify({ username: 'carol', password: 'long-enough-password', role: 'viewer' }));
    const result = await run(['users', 'create', '--data', `@${dataFile}`, '--role', 'member', '--idempotency-key', 'key-12345678', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ username: 'carol', role: 'member' });
    const sent = server.to('POST', '/v1/users')[0]!;
    expect(sent.body).toEqual({ username: 'carol', password: 'long-enough-password', role: 'member' });
    expect(sent.headers['idempotency-key']).toBe('key-12345678');

    const stdin = await run(['users', 'create', '--data', '-', '--display-name', 'Dave D'], {
      input: '{"username":"dave","password":"long-enough-password","role":"viewer"}',
    });
    expect(stdin.code).toBe(0);
    expect(server.to('POST', '/v1/users')[1]!.body).toEqual({
      username: 'dave',
      password: 'long-enough-password',
      role: 'viewer',
      displayName: 'Dave D',
    });
    expect(server.to('POST', '/v1/users')[1]!.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('rejects missing input and bad flags before calling the server (exit 2)', async () => {
    const missing = await run(['users', 'create', '--username', 'erin']);
    expect(missing).toMatchObject({ code: 2, stderr: 'Error: Missing --password, --role (give them as flags or in --data)\n' });
    const badOption = await run(['users', 'list', '--role', 'owner']);
    expect(badOption.code).toBe(2);
    const unknown = await run(['users', 'list', '--bogus', '--json']);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { code: 'usage_error' } });
    const noArg = await run(['users', 'get']);
    expect(noArg.code).toBe(2);
    expect(server.requests).toEqual([]);
  });

  it('reports API errors with their code and request id (exit 1), as JSON with --json', async () => {
    const text = await run(['users', 'get', 'usr_missing']);
    expect(text.code).toBe(1);
    expect(text.stdout).toBe('');
    expect(text.stderr).toMatch(/^Error: No user usr_missing\. \(not_found, request req_\w+\)\n$/);

    const json = await run(['users', 'get', 'usr_missing', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({
      error: {
        type: 'https://cloudphone.dev/problems/not_found',
        title: 'Not found',
        status: 404,
        detail: 'No user usr_missing.',
        code: 'not_found',
        requestId: expect.stringMatching(/^req_/),
      },
    });

    const validation = await run(['users', 'create', '--data', '{"username":"x","password":"long-enough-password","role":"owner"}']);
    expect(validation.code).toBe(1);
    expect(validation.stderr).toMatch(
      /^Error: The request body is not valid\. \(validation_failed, request req_\w+\)\n {2}\/role: must be equal to one of the allowed values\n$/,
    );
  });

  it('exits 4 on a 401 from the server', async () => {
    const result = await run(['whoami'], { env: { CLOUDPHONE_TOKEN: 'cpt_revoked' } });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/^Error: The token is not valid\. \(invalid_token, request req_\w+\)\n/);
  });

  it('prefers CLOUDPHONE_TOKEN to the profile’s credentials', async () => {
    await run(['whoami'], { env: { CLOUDPHONE_TOKEN: 'cpt_other' } });
    expect(server.requests[0]!.headers.authorization).toBe('Bearer cpt_other');
  });

  it('refuses a destructive command without --yes when there is no terminal (exit 2)', async () => {
    const target = server.users[2]!.id;
    const refused = await run(['users', 'delete', target]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`Error: users delete ${target} cannot be undone: pass --yes to confirm (no terminal to ask on)\n`);
    expect(server.requests).toEqual([]);

    const done = await run(['users', 'delete', target, '--yes']);
    expect(done).toEqual({ code: 0, stdout: '', stderr: `users delete ${target}: done.\n` });
    expect(server.to('DELETE', `/v1/users/${target}`)).toHaveLength(1);
  });

  it('exits 130 when interrupted', async () => {
    const arrived = server.hold();
    const result = await run(['users', 'list'], {
      started: (child) => void arrived.then(() => child.kill('SIGINT')),
    });
    expect(result.code).toBe(130);
    expect(result.stdout).toBe('');
  });

  it('exits 1 when the server cannot be reached', async () => {
    const result = await run(['whoami', '--api-url', 'http://127.0.0.1:1', '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'connection_error' } });
  });
});
