import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudPhone, type ApiToken, type CreatedApiToken, type Event, type Me, type User } from '@cloudphone/sdk';
import { startServer, type RunningServer } from '@cloudphone/server';
import { beforeAll, describe, expect, test } from 'vitest';
import { updateConfig, type ConfigFile, type Profile } from '../src/lib/config.js';
import { assertBuilt, configFile, readConfigFile, runCli, type Result, type RunOptions } from './fixtures/cli.js';

/*
 * The built CLI against the real server. Each test gets a sandbox: the server started in-process on a random port
 * over a fresh data directory, with a clock that moves only when the test says so, and a config directory of its
 * own. Sandboxes share nothing, so the tests run concurrently.
 */

const ADMIN_PASSWORD = 'admin-password-for-cli-tests';
const PASSWORD = 'correct-horse-battery';
const ACCESS_TOKEN_TTL = 60;
const STARTED_AT = '2026-11-20T09:00:00.000Z';
/** A well-formed user id that no user has. */
const NO_SUCH_USER = 'usr_00000000000000000000000000';
const RELOGIN_HINT = 'Run `cloudphone login` to log in again, or check CLOUDPHONE_TOKEN.\n';
const NOT_LOGGED_IN = (profile: string): string =>
  `Not logged in (profile ${profile}). Run \`cloudphone login\` or set CLOUDPHONE_TOKEN.`;

class ManualClock {
  #ms = Date.parse(STARTED_AT);
  readonly now = (): Date => new Date(this.#ms);
  advance(seconds: number): void {
    this.#ms += seconds * 1000;
  }
}

interface Sandbox {
  server: RunningServer;
  /** The server's URL. */
  url: string;
  clock: ManualClock;
  /** HOME and XDG_CONFIG_HOME of every CLI run. */
  home: string;
  configFile: string;
  /** `METHOD /path?query` of every request the server received, in order. */
  requests: string[];
  /** Runs the built CLI in this sandbox. */
  run(args: string[], options?: RunOptions): Promise<Result>;
  config(): ConfigFile;
  profile(name: string): Profile;
  /**
   * Logs in through the SDK and saves the session as a profile, made the active one, as `login` does: set-up for
   * tests about something else goes through the SDK in-process rather than through one more CLI run.
   */
  saveLogin(name: string, username: string, password: string): Promise<CloudPhone>;
  /** The admin's session saved as the default profile; the client to set up data with. */
  adminProfile(): Promise<CloudPhone>;
}

async function openSandbox(): Promise<{ sandbox: Sandbox; close: () => Promise<void> }> {
  const home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-e2e-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-cli-e2e-data-'));
  const clock = new ManualClock();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    logLevel: 'silent',
    adminPassword: ADMIN_PASSWORD,
    accessTokenTtlSeconds: ACCESS_TOKEN_TTL,
    clock: clock.now,
  });
  const { url } = server;
  const requests: string[] = [];
  server.app.server.on('request', (req: { method?: string; url?: string }) => {
    requests.push(`${req.method} ${req.url}`);
  });
  const saveLogin = async (name: string, username: string, password: string): Promise<CloudPhone> => {
    const pair = await new CloudPhone({ baseUrl: url }).auth.login({ username, password });
    const { accessToken, refreshToken, accessTokenExpiresAt } = pair;
    updateConfig(configFile(home), (config) => {
      config.profiles[name] = { apiUrl: url, username, accessToken, refreshToken, accessTokenExpiresAt };
      config.activeProfile = name;
    });
    return new CloudPhone({ baseUrl: url, token: accessToken });
  };
  const sandbox: Sandbox = {
    server,
    url,
    clock,
    home,
    configFile: configFile(home),
    requests,
    run: (args, options) => runCli(home, args, options),
    config: () => readConfigFile(home),
    profile: (name) => readConfigFile(home).profiles[name]!,
    saveLogin,
    adminProfile: () => saveLogin('default', 'admin', ADMIN_PASSWORD),
  };
  const close = async (): Promise<void> => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  };
  return { sandbox, close };
}

const it = test.extend<{ sandbox: Sandbox }>({
  sandbox: async ({}, use) => {
    const { sandbox, close } = await openSandbox();
    await use(sandbox);
    await close();
  },
});

const json = <T>(result: Result): T => JSON.parse(result.stdout) as T;
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/** The first line the CLI prints for an API error: its detail, code and request id. */
const problemLine = (detail: string, code: string): RegExp =>
  new RegExp(`^Error: ${escape(detail)} \\(${code}, request req_[0-9A-Z]{26}\\)\\n`);
const createUserArgs = (username: string, role: User['role']): string[] =>
  ['users', 'create', '--username', username, '--password', PASSWORD, '--role', role];

/** Fails with the command's stderr in the message when it did not exit 0. */
function expectSuccess(result: Result): Result {
  expect(result.code, result.stderr).toBe(0);
  return result;
}

/** `key  value` lines, as single resources are printed, back into an object of strings. */
function parseKeyValue(text: string): Record<string, string> {
  const lines = text.trimEnd().split('\n');
  return Object.fromEntries(lines.map((line) => /^(\S+) +(.*)$/.exec(line)!.slice(1)));
}

/** The tests of a block run together, each spawning CLI processes: time enough for a busy machine. */
const CONCURRENT = { timeout: 90_000 };

beforeAll(assertBuilt);

describe.concurrent('a newcomer’s first session', CONCURRENT, () => {
  it('logs in as the admin with the password on standard input and keeps the profile private', async ({ sandbox }) => {
    const { run, url } = sandbox;
    expect(sandbox.server.initialAdmin).toEqual({ username: 'admin', password: ADMIN_PASSWORD });
    const result = await run(['login', '--api-url', url, '--username', 'admin', '--password-stdin'], {
      input: `${ADMIN_PASSWORD}\n`,
    });
    expect(result).toEqual({ code: 0, stdout: '', stderr: `Logged in to ${url} as admin (admin), profile default.\n` });
    expect(statSync(sandbox.configFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(sandbox.home, 'cloudphone')).mode & 0o777).toBe(0o700);
    const config = sandbox.config();
    expect(config.activeProfile).toBe('default');
    expect(config.profiles.default).toEqual({
      apiUrl: url,
      username: 'admin',
      accessToken: expect.stringMatching(/^cpa_/),
      refreshToken: expect.stringMatching(/^cpr_/),
      accessTokenExpiresAt: new Date(Date.parse(STARTED_AT) + ACCESS_TOKEN_TTL * 1000).toISOString(),
    });

    const me = json<Me>(expectSuccess(await run(['whoami', '--json'])));
    expect(me).toMatchObject({ username: 'admin', role: 'admin', authentication: { method: 'session' } });
  });

  it('creates a user, printed as a table and as the JSON that users get returns', async ({ sandbox }) => {
    const { run } = sandbox;
    await sandbox.adminProfile();
    const table = expectSuccess(await run(createUserArgs('alice', 'member')));
    expect(table.stderr).toBe('');
    const printed = parseKeyValue(table.stdout);
    const fields = ['id', 'username', 'role', 'displayName', 'disabled', 'createdAt', 'updatedAt'];
    expect(Object.keys(printed)).toEqual(fields);
    expect(printed).toMatchObject({ id: expect.stringMatching(/^usr_[0-9A-Z]{26}$/), username: 'alice' });
    expect(printed).toMatchObject({ role: 'member', disabled: 'false' });
    const alice = json<User>(expectSuccess(await run(['users', 'get', printed.id!, '--json'])));
    expect(Object.fromEntries(Object.entries(alice).map(([key, value]) => [key, String(value)]))).toEqual(printed);

    const bob = json<User>(expectSuccess(await run([...createUserArgs('bob', 'viewer'), '--json'])));
    expect(bob).toMatchObject({ username: 'bob', role: 'viewer', disabled: false, createdAt: STARTED_AT });
    expect(json<User>(expectSuccess(await run(['users', 'get', bob.id, '--json'])))).toEqual(bob);
  });

  it('logs alice in to a second profile on the same server, no --api-url needed', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const admin = sandbox.server.initialAdmin!;
    const adminLogin = ['login', '--api-url', url, '--username', admin.username, '--password-stdin'];
    expectSuccess(await run(adminLogin, { input: `${admin.password}\n` }));
    expectSuccess(await run(createUserArgs('alice', 'member')));

    const aliceLogin = ['login', '--profile', 'alice', '--username', 'alice', '--password-stdin'];
    const login = await run(aliceLogin, { input: PASSWORD });
    expect(login).toEqual({ code: 0, stdout: '', stderr: `Logged in to ${url} as alice (member), profile alice.\n` });
    const config = sandbox.config();
    expect(config.activeProfile).toBe('alice');
    expect(config.profiles.alice).toMatchObject({ apiUrl: url, username: 'alice' });
    expect(config.profiles.default).toMatchObject({ apiUrl: url, username: 'admin' });
    const me = json<Me>(expectSuccess(await run(['whoami', '--json'])));
    expect(me).toMatchObject({ username: 'alice', role: 'member' });
  });

  it('creates an API token whose secret is shown once and works through CLOUDPHONE_TOKEN', async ({ sandbox }) => {
    const { run } = sandbox;
    const admin = await sandbox.adminProfile();
    await admin.users.create({ username: 'alice', password: PASSWORD, role: 'member' });
    await sandbox.saveLogin('alice', 'alice', PASSWORD);
    const create = ['tokens', 'create', '--profile', 'alice', '--name', 'ci', '--scopes', 'read', '--scopes', 'write'];
    const created = expectSuccess(await run([...create, '--json']));
    const token = json<CreatedApiToken>(created);
    expect(token).toMatchObject({
      id: expect.stringMatching(/^tok_/),
      name: 'ci',
      scopes: ['read', 'write'],
      secret: expect.stringMatching(/^cpt_/),
    });
    expect(created.stdout.split(token.secret)).toHaveLength(2);

    const fetched = expectSuccess(await run(['tokens', 'get', token.id, '--profile', 'alice', '--json']));
    expect(json<ApiToken>(fetched)).not.toHaveProperty('secret');
    const listed = expectSuccess(await run(['tokens', 'list', '--profile', 'alice', '--json']));
    expect(json<ApiToken[]>(listed).map((t) => t.id)).toEqual([token.id]);
    for (const output of [fetched, listed]) expect(output.stdout).not.toContain(token.secret);

    const me = json<Me>(expectSuccess(await run(['whoami', '--json'], { env: { CLOUDPHONE_TOKEN: token.secret } })));
    expect(me).toMatchObject({ username: 'alice', authentication: { method: 'api_token', scopes: ['read', 'write'] } });
  });

  it('lists the event log as JSON, and only one family of types with --type', async ({ sandbox }) => {
    const { run } = sandbox;
    const admin = await sandbox.adminProfile();
    const alice = await admin.users.create({ username: 'alice', password: PASSWORD, role: 'member' });
    const asAlice = await sandbox.saveLogin('alice', 'alice', PASSWORD);
    const token = await asAlice.tokens.create({ name: 'ci', scopes: ['read'] });

    const events = json<Event[]>(expectSuccess(await run(['events', 'list', '--profile', 'default', '--json'])));
    expect(Array.isArray(events)).toBe(true);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'user.created',
        actor: expect.objectContaining({ username: 'admin' }),
        subject: { type: 'user', id: alice.id },
        data: { user: { id: alice.id, username: 'alice', role: 'member' } },
      }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'token.created',
        actor: expect.objectContaining({ username: 'alice' }),
        subject: expect.objectContaining({ id: token.id }),
      }),
    );

    const filtered = await run(['events', 'list', '--profile', 'default', '--type', 'user.*', '--json']);
    const userEvents = json<Event[]>(expectSuccess(filtered));
    expect(userEvents.length).toBeGreaterThan(0);
    expect(userEvents.every((event) => event.type.startsWith('user.'))).toBe(true);
    const expected = events.filter((event) => event.type.startsWith('user.'));
    expect(userEvents.map((event) => event.id)).toEqual(expected.map((event) => event.id));
  });

  it('shows the first items with --limit and fetches every page with --all', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const admin = await sandbox.adminProfile();
    const seeded = await Promise.all(
      Array.from({ length: 201 }, (_, i) =>
        admin.users.create({ username: `user-${i}`, password: PASSWORD, role: 'viewer' }),
      ),
    );
    const { id: adminId } = await admin.me.get();
    sandbox.requests.length = 0;

    const everyone = json<User[]>(expectSuccess(await run(['users', 'list', '--all', '--json'])));
    expect(everyone).toHaveLength(202);
    expect(new Set(everyone.map((u) => u.id))).toEqual(new Set([adminId, ...seeded.map((u) => u.id)]));
    const pages = sandbox.requests.map((request) => new URL(request.split(' ')[1]!, url).searchParams);
    expect(pages.map((query) => query.get('limit'))).toEqual(['200', '200']);
    expect(pages[0]!.get('cursor')).toBeNull();
    expect(pages[1]!.get('cursor')).toEqual(expect.any(String));

    sandbox.requests.length = 0;
    const first = expectSuccess(await run(['users', 'list', '--limit', '3']));
    expect(sandbox.requests).toEqual(['GET /v1/users?limit=3']);
    const rows = first.stdout.trimEnd().split('\n').slice(1);
    expect(rows.map((line) => line.split(' ')[0])).toEqual(everyone.slice(0, 3).map((u) => u.id));
    expect(first.stderr).toBe('Showing the first 3. There are more: use --limit <n> or --all.\n');

    const acrossPages = await run(['users', 'list', '--limit', '201', '--json']);
    expect(json<User[]>(acrossPages)).toEqual(everyone.slice(0, 201));

    const exactly = expectSuccess(await run(['users', 'list', '--limit', '202']));
    expect(exactly.stdout.trimEnd().split('\n')).toHaveLength(1 + 202);
    expect(exactly.stderr).toBe('');

    sandbox.requests.length = 0;
    const both = await run(['users', 'list', '--limit', '3', '--all']);
    expect(both.code).toBe(2);
    expect(sandbox.requests).toEqual([]);
  });

  it('exits 4 once the API token is revoked, and for a logged-out profile', async ({ sandbox }) => {
    const { run } = sandbox;
    const admin = await sandbox.adminProfile();
    await admin.users.create({ username: 'alice', password: PASSWORD, role: 'member' });
    const asAlice = await sandbox.saveLogin('alice', 'alice', PASSWORD);
    const token = await asAlice.tokens.create({ name: 'ci', scopes: ['read'] });
    const withToken = { env: { CLOUDPHONE_TOKEN: token.secret } };
    expectSuccess(await run(['whoami'], withToken));

    const revoke = await run(['tokens', 'revoke', token.id, '--yes']);
    expect(revoke).toEqual({ code: 0, stdout: '', stderr: `tokens revoke ${token.id}: done.\n` });
    const revoked = await run(['whoami'], withToken);
    expect(revoked.code).toBe(4);
    expect(revoked.stderr).toMatch(problemLine('The API token was revoked.', 'token_revoked'));
    expect(revoked.stderr.endsWith(`)\n${RELOGIN_HINT}`)).toBe(true);
    const revokedJson = await run(['whoami', '--json'], withToken);
    expect(revokedJson.code).toBe(4);
    expect(json(revokedJson)).toMatchObject({
      error: { status: 401, code: 'token_revoked', requestId: expect.stringMatching(/^req_/) },
    });

    expectSuccess(await run(['logout', '--profile', 'alice']));
    const loggedOut = await run(['whoami', '--profile', 'alice', '--json']);
    expect(loggedOut.code).toBe(4);
    expect(json(loggedOut)).toEqual({ error: { code: 'not_logged_in', title: NOT_LOGGED_IN('alice') } });
  });

  it('exits 1 for a missing user: the problem on stdout with --json, a line on stderr without', async ({ sandbox }) => {
    const { run } = sandbox;
    await sandbox.adminProfile();
    const asJson = await run(['users', 'get', NO_SUCH_USER, '--json']);
    expect(asJson).toMatchObject({ code: 1, stderr: '' });
    expect(json(asJson)).toEqual({
      error: {
        type: 'https://cloudphone.dev/problems/not_found',
        title: 'Not found',
        status: 404,
        detail: `No user ${NO_SUCH_USER}.`,
        code: 'not_found',
        requestId: expect.stringMatching(/^req_[0-9A-Z]{26}$/),
      },
    });

    const text = await run(['users', 'get', NO_SUCH_USER]);
    expect(text).toMatchObject({ code: 1, stdout: '' });
    expect(text.stderr).toMatch(new RegExp(`${problemLine(`No user ${NO_SUCH_USER}.`, 'not_found').source}$`));
  });

  it('exits 2 on usage errors without calling the server', async ({ sandbox }) => {
    const { run } = sandbox;
    await sandbox.adminProfile();
    sandbox.requests.length = 0;
    const missing = await run(['users', 'create', '--username', 'erin']);
    expect(missing).toEqual({
      code: 2,
      stdout: '',
      stderr: 'Error: Missing --password, --role (give them as flags or in --data)\n',
    });
    const missingJson = await run(['tokens', 'create', '--name', 'ci', '--json']);
    expect(missingJson.code).toBe(2);
    expect(json(missingJson)).toEqual({
      error: { code: 'usage_error', title: 'Missing --scopes (give it as flags or in --data)' },
    });
    expect((await run(['users', 'list', '--role', 'owner'])).code).toBe(2);
    const unknown = await run(['users', 'list', '--bogus', '--json']);
    expect(unknown.code).toBe(2);
    expect(json(unknown)).toMatchObject({ error: { code: 'usage_error' } });
    expect((await run(['users', 'get'])).code).toBe(2);
    expect(sandbox.requests).toEqual([]);
  });

  it('deletes a user only with --yes when there is no terminal to ask on', async ({ sandbox }) => {
    const { run } = sandbox;
    const admin = await sandbox.adminProfile();
    const bob = await admin.users.create({ username: 'bob', password: PASSWORD, role: 'viewer' });
    sandbox.requests.length = 0;
    const refused = await run(['users', 'delete', bob.id]);
    expect(refused).toEqual({
      code: 2,
      stdout: '',
      stderr: `Error: users delete ${bob.id} cannot be undone: pass --yes to confirm (no terminal to ask on)\n`,
    });
    expect(sandbox.requests).toEqual([]);
    expectSuccess(await run(['users', 'get', bob.id]));

    const deleted = await run(['users', 'delete', bob.id, '--yes']);
    expect(deleted).toEqual({ code: 0, stdout: '', stderr: `users delete ${bob.id}: done.\n` });
    const gone = await run(['users', 'get', bob.id, '--json']);
    expect(gone.code).toBe(1);
    expect(json(gone)).toMatchObject({ error: { status: 404, code: 'not_found' } });
  });

  it('logs out: ends the server session, keeps the URL and username; whoami then exits 4', async ({ sandbox }) => {
    const { run, url } = sandbox;
    await sandbox.adminProfile();
    const session = sandbox.profile('default');
    const result = await run(['logout']);
    expect(result).toEqual({ code: 0, stdout: '', stderr: `Logged out of ${url} (profile default).\n` });
    expect(sandbox.profile('default')).toEqual({ apiUrl: url, username: 'admin' });

    const ended = await run(['whoami'], { env: { CLOUDPHONE_TOKEN: session.accessToken! } });
    expect(ended.code).toBe(4);
    expect(ended.stderr).toMatch(problemLine('The session has ended; log in again.', 'token_revoked'));

    const again = await run(['whoami']);
    expect(again).toEqual({ code: 4, stdout: '', stderr: `Error: ${NOT_LOGGED_IN('default')}\n` });
    expect(await run(['logout'])).toEqual({ code: 0, stdout: '', stderr: 'Not logged in (profile default).\n' });
  });

  it('lists both profiles without a secret and switches the active one', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const admin = await sandbox.adminProfile();
    await admin.users.create({ username: 'alice', password: PASSWORD, role: 'member' });
    await sandbox.saveLogin('alice', 'alice', PASSWORD);
    const secrets = Object.values(sandbox.config().profiles).flatMap((p) => [p.accessToken!, p.refreshToken!]);
    expect(secrets).toHaveLength(4);

    const list = expectSuccess(await run(['profiles', 'list', '--json']));
    expect(json(list)).toEqual([
      { name: 'alice', apiUrl: url, username: 'alice', loggedIn: true, active: true },
      { name: 'default', apiUrl: url, username: 'admin', loggedIn: true, active: false },
    ]);
    const table = expectSuccess(await run(['profiles', 'list']));
    expect(table.stdout.split('\n')).toEqual([
      expect.stringMatching(/^NAME +API URL +USERNAME +LOGGED IN +ACTIVE$/),
      expect.stringMatching(new RegExp(`^alice +${escape(url)} +alice +true +true$`)),
      expect.stringMatching(new RegExp(`^default +${escape(url)} +admin +true +false$`)),
      '',
    ]);
    for (const output of [list.stdout, table.stdout]) {
      for (const secret of secrets) expect(output).not.toContain(secret);
      expect(output).not.toMatch(/cp[art]_/);
    }

    const use = await run(['profiles', 'use', 'default']);
    expect(use).toEqual({ code: 0, stdout: '', stderr: `Now using profile default (${url}).\n` });
    expect(sandbox.config().activeProfile).toBe('default');
    expect(json<Me>(expectSuccess(await run(['whoami', '--json'])))).toMatchObject({ username: 'admin' });

    const unknown = await run(['profiles', 'use', 'nope']);
    expect(unknown).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Error: No profile named nope. Profiles: alice, default.\n',
    });

    expectSuccess(await run(['logout', '--profile', 'alice']));
    // A profile written by hand, with a URL only.
    updateConfig(sandbox.configFile, (config) => {
      config.profiles.staging = { apiUrl: 'https://staging.example.com' };
    });
    const after = json<{ name: string }[]>(expectSuccess(await run(['profiles', 'list', '--json'])));
    expect(after).toEqual([
      { name: 'alice', apiUrl: url, username: 'alice', loggedIn: false, active: false },
      { name: 'default', apiUrl: url, username: 'admin', loggedIn: true, active: true },
      { name: 'staging', apiUrl: 'https://staging.example.com', username: null, loggedIn: false, active: false },
    ]);
    const rows = expectSuccess(await run(['profiles', 'list'])).stdout.split('\n');
    expect(rows).toContainEqual(expect.stringMatching(/^staging +https:\/\/staging\.example\.com +- +false +false$/));
  });

  it('renews an expired access token and writes the rotated tokens back to the profile', async ({ sandbox }) => {
    const { run, url } = sandbox;
    await sandbox.adminProfile();
    const before = sandbox.profile('default');
    sandbox.clock.advance(ACCESS_TOKEN_TTL + 1);
    sandbox.requests.length = 0;

    const me = json<Me>(expectSuccess(await run(['whoami', '--json'])));
    expect(me).toMatchObject({ username: 'admin', authentication: { method: 'session' } });
    expect(sandbox.requests).toEqual(['GET /v1/me', 'POST /v1/auth/refresh', 'GET /v1/me']);
    const after = sandbox.profile('default');
    expect(after).toEqual({
      apiUrl: url,
      username: 'admin',
      accessToken: expect.stringMatching(/^cpa_/),
      refreshToken: expect.stringMatching(/^cpr_/),
      accessTokenExpiresAt: new Date(sandbox.clock.now().getTime() + ACCESS_TOKEN_TTL * 1000).toISOString(),
    });
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(statSync(sandbox.configFile).mode & 0o777).toBe(0o600);

    sandbox.requests.length = 0;
    expectSuccess(await run(['whoami']));
    expect(sandbox.requests).toEqual(['GET /v1/me']);
    expect(sandbox.profile('default')).toEqual(after);
  });
});

describe.concurrent('login', CONCURRENT, () => {
  it('prints the user with --json', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const login = ['login', '--api-url', url, '-u', 'admin', '--password-stdin', '--json'];
    const result = await run(login, { input: ADMIN_PASSWORD });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const user = json<User>(result);
    expect(user).toMatchObject({ username: 'admin', role: 'admin' });
    expect(json<Me>(expectSuccess(await run(['whoami', '--json'])))).toMatchObject({ id: user.id });
  });

  it('refuses to prompt without a terminal (exit 2)', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const noPassword = await run(['login', '--api-url', url, '--username', 'admin']);
    expect(noPassword.code).toBe(2);
    expect(noPassword.stderr).toContain('--password-stdin');
    const noUsername = await run(['login', '--api-url', url, '--password-stdin'], { input: ADMIN_PASSWORD });
    expect(noUsername).toEqual({ code: 2, stdout: '', stderr: 'Error: Give --username (no terminal to ask on)\n' });
    expect(sandbox.requests).toEqual([]);
    expect(existsSync(sandbox.configFile)).toBe(false);
  });

  it('exits 4 on wrong credentials and saves nothing', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const login = ['login', '--api-url', url, '--username', 'admin', '--password-stdin'];
    const result = await run(login, { input: 'wrong-password' });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(problemLine('The username or password is wrong.', 'invalid_credentials'));
    expect(existsSync(sandbox.configFile)).toBe(false);
  });

  it('checks an API token before saving it in a named profile', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const admin = await sandbox.adminProfile();
    const token = await admin.tokens.create({ name: 'ci', scopes: ['read'] });

    const bad = await run(['login', '--api-url', url, '--profile', 'ci', '--token', 'cpt_wrong']);
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(problemLine('The token is not valid.', 'invalid_token'));
    expect(sandbox.config().profiles.ci).toBeUndefined();

    expectSuccess(await run(['login', '--api-url', url, '--profile', 'ci', '--token', token.secret]));
    const config = sandbox.config();
    expect(config.activeProfile).toBe('ci');
    expect(config.profiles.ci).toEqual({ apiUrl: url, username: 'admin', token: token.secret });
    const me = json<Me>(expectSuccess(await run(['whoami', '--json'])));
    expect(me).toMatchObject({ authentication: { method: 'api_token' } });

    expect(await run(['logout'])).toEqual({
      code: 0,
      stdout: '',
      stderr:
        `Logged out of ${url} (profile ci).\n` +
        'The API token itself still works; revoke it with `cloudphone tokens revoke <token-id>`.\n',
    });
    expectSuccess(await run(['whoami'], { env: { CLOUDPHONE_TOKEN: token.secret } }));
  });
});

describe.concurrent('generated commands', CONCURRENT, () => {
  it('prints a table with the contract’s columns, or the items as JSON', async ({ sandbox }) => {
    const { run } = sandbox;
    const admin = await sandbox.adminProfile();
    const alice = await admin.users.create({ username: 'alice', password: PASSWORD, role: 'member' });
    await admin.users.create({ username: 'bob', password: PASSWORD, role: 'viewer' });
    const table = expectSuccess(await run(['users', 'list']));
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +USERNAME +ROLE +DISABLED +DISPLAY NAME +CREATED AT$/);
    expect(lines).toHaveLength(4);
    const adminRow = `^usr_[0-9A-Z]{26} +admin +admin +false +Administrator +${escape(STARTED_AT)}$`;
    expect(lines[1]).toMatch(new RegExp(adminRow));

    const members = json<User[]>(expectSuccess(await run(['users', 'list', '--json', '--role', 'member'])));
    expect(members).toEqual([alice]);
  });

  it('renders dotted columns and single resources', async ({ sandbox }) => {
    const { run } = sandbox;
    const admin = await sandbox.adminProfile();
    const alice = await admin.users.create({ username: 'alice', password: PASSWORD, role: 'member' });
    const lines = expectSuccess(await run(['events', 'list'])).stdout.split('\n');
    expect(lines[0]).toMatch(/^ID +TYPE +OCCURRED AT +USERNAME +SUBJECT TYPE +SUBJECT ID$/);
    const byAdmin = new RegExp(`^evt_\\w+ +user\\.created +${escape(STARTED_AT)} +admin +user +${alice.id}$`);
    expect(lines).toContainEqual(expect.stringMatching(byAdmin));
    expect(lines).toContainEqual(expect.stringMatching(/^evt_\w+ +user\.created +\S+ +- +user +usr_\w+$/));

    const user = expectSuccess(await run(['users', 'get', alice.id]));
    expect(user.stdout).toMatch(new RegExp(`^id +${alice.id}\\nusername +alice\\nrole +member\\ndisabled +false\\n`));
  });

  it('sends the body from flags and --data, and replays a create with its --idempotency-key', async ({ sandbox }) => {
    const { run } = sandbox;
    await sandbox.adminProfile();
    const dataFile = join(sandbox.home, 'user.json');
    writeFileSync(dataFile, JSON.stringify({ username: 'carol', password: PASSWORD, role: 'viewer' }));
    const create = ['users', 'create', '--data', `@${dataFile}`, '--idempotency-key', 'key-12345678', '--json'];
    const carol = json<User>(expectSuccess(await run([...create, '--role', 'member'])));
    expect(carol).toMatchObject({ username: 'carol', role: 'member' });
    expect(json<User>(expectSuccess(await run([...create, '--role', 'member'])))).toEqual(carol);
    expect(json<User[]>(expectSuccess(await run(['users', 'list', '--q', 'carol', '--json'])))).toEqual([carol]);
    const reused = await run(create);
    expect(reused.code).toBe(1);
    expect(json(reused)).toMatchObject({ error: { status: 422, code: 'idempotency_key_reused' } });

    const dave = await run(['users', 'create', '--data', '-', '--display-name', 'Dave D', '--json'], {
      input: JSON.stringify({ username: 'dave', password: PASSWORD, role: 'viewer' }),
    });
    expect(json<User>(expectSuccess(dave))).toMatchObject({ username: 'dave', role: 'viewer', displayName: 'Dave D' });
  });

  it('lists the server’s field errors under the message', async ({ sandbox }) => {
    const { run } = sandbox;
    await sandbox.adminProfile();
    const body = JSON.stringify({ username: 'xavier', password: PASSWORD, role: 'owner' });
    const result = await run(['users', 'create', '--data', body]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    const detail = 'Invalid request body: /role must be one of: admin, member, viewer.';
    expect(result.stderr).toMatch(problemLine(detail, 'validation_failed'));
    expect(result.stderr.endsWith(')\n  /role: must be one of: admin, member, viewer\n')).toBe(true);
  });

  it('exits 4 on a 401 from the server', async ({ sandbox }) => {
    const { run, url } = sandbox;
    const env = { CLOUDPHONE_API_URL: url, CLOUDPHONE_TOKEN: 'cpt_not_a_real_token' };
    const result = await run(['whoami'], { env });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(problemLine('The token is not valid.', 'invalid_token'));
    expect(result.stderr.endsWith(`)\n${RELOGIN_HINT}`)).toBe(true);
  });
});
