import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/src/index.js';
import { CloudPhone } from '../../sdk/src/index.js';

const ADMIN_PASSWORD = 'admin-password-for-examples';
const MEMBER_PASSWORD = 'correct-horse-battery-staple';
const NOW = new Date('2026-11-20T09:00:00.000Z');
const DAY_MS = 86_400_000;

const EXAMPLES_DIR = fileURLToPath(new URL('..', import.meta.url));
/** tsx's command line, as `npx tsx` runs it, resolved from node_modules. */
const TSX_CLI = createRequire(import.meta.url).resolve('tsx/cli');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an example with `npx tsx`, talking to the server with `token`. */
function runExample(script: string, args: string[], token: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX_CLI, join(EXAMPLES_DIR, script), ...args], {
      cwd: EXAMPLES_DIR,
      env: { ...process.env, CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

let dataDir: string;
let server: RunningServer;
let admin: CloudPhone;
let adminToken: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-examples-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    virtualDevices: 1,
    clock: () => new Date(NOW),
    logStream: { write: () => undefined },
  });
  const anonymous = new CloudPhone({ baseUrl: server.url });
  const pair = await anonymous.auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  const token = await anonymous
    .withOptions({ token: pair.accessToken })
    .tokens.create({ name: 'examples', scopes: ['admin'] });
  adminToken = token.secret;
  admin = new CloudPhone({ baseUrl: server.url, token: adminToken });
});

afterAll(async () => {
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('examples/onboard-user.ts', () => {
  it('onboards a member with a CI token that authenticates as them, and refuses a repeat', async () => {
    const run = await runExample('onboard-user.ts', ['alice'], adminToken);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const lines = jsonLines(run.stdout);
    expect(lines.map((line) => line.step)).toEqual(['user', 'token', 'event', 'event']);
    const [userLine, tokenLine, ...eventLines] = lines as [Record<string, unknown>, Record<string, unknown>, ...Record<string, unknown>[]];

    // The example ends the member session it used to create the token.
    const sessions = [];
    for await (const event of admin.events.list({ type: ['auth.login_succeeded', 'auth.logged_out'] })) {
      if (event.actor.username === 'alice' && event.subject) sessions.push(`${event.type} ${event.subject.id}`);
    }
    expect(sessions).toEqual([expect.stringMatching(/^auth\.login_succeeded ses_/), expect.stringMatching(/^auth\.logged_out ses_/)]);
    expect(sessions[0]?.split(' ')[1]).toBe(sessions[1]?.split(' ')[1]);

    const alice = await admin.users.get(String(userLine.id));
    expect(alice).toMatchObject({ username: 'alice', role: 'member', displayName: 'alice', disabled: false });
    expect(userLine).toEqual({
      step: 'user',
      id: alice.id,
      username: 'alice',
      role: 'member',
      password: expect.any(String),
    });
    const login = await new CloudPhone({ baseUrl: server.url }).auth.login({
      username: 'alice',
      password: String(userLine.password),
    });
    expect(login.user.id).toBe(alice.id);

    expect(tokenLine).toEqual({
      step: 'token',
      id: expect.stringMatching(/^tok_/),
      scopes: ['read', 'write'],
      expiresAt: new Date(NOW.getTime() + 30 * DAY_MS).toISOString(),
      secret: expect.stringMatching(/^cpt_/),
    });
    const asAlice = new CloudPhone({ baseUrl: server.url, token: String(tokenLine.secret) });
    await expect(asAlice.me.get()).resolves.toMatchObject({
      id: alice.id,
      username: 'alice',
      authentication: { method: 'api_token', tokenId: tokenLine.id, scopes: ['read', 'write'] },
    });
    await expect(admin.tokens.get(String(tokenLine.id))).resolves.toMatchObject({ userId: alice.id, name: 'ci' });

    expect(eventLines).toEqual([
      { step: 'event', type: 'user.created', actor: 'admin', occurredAt: NOW.toISOString() },
      { step: 'event', type: 'token.created', actor: 'alice', occurredAt: NOW.toISOString() },
    ]);

    const again = await runExample('onboard-user.ts', ['alice'], adminToken);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('alice already exists');
    expect(again.stdout).toBe('');
    const named = [];
    for await (const user of admin.users.list({ q: 'alice' })) named.push(user.id);
    expect(named).toEqual([alice.id]);
  });

  it("refuses a member's token, exits 1 and creates nobody", async () => {
    await admin.users.create({ username: 'carol', password: MEMBER_PASSWORD, role: 'member' });
    const pair = await new CloudPhone({ baseUrl: server.url }).auth.login({
      username: 'carol',
      password: MEMBER_PASSWORD,
    });
    const memberToken = await new CloudPhone({ baseUrl: server.url, token: pair.accessToken }).tokens.create({
      name: 'carol-ci',
      scopes: ['read', 'write'],
    });

    const run = await runExample('onboard-user.ts', ['bob'], memberToken.secret);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('carol is a member; onboarding needs an admin token');
    expect(run.stdout).toBe('');
    expect((await admin.users.list({ q: 'bob' })).data).toEqual([]);
  });

  it('exits 2 with its usage when no username is given', async () => {
    const run = await runExample('onboard-user.ts', [], adminToken);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('usage: onboard-user.ts <username>');
    expect(run.stdout).toBe('');
  });
});

describe('examples/lease-and-shell.ts', () => {
  it('leases a device, runs a command, round-trips a file, takes a screenshot and releases the lease', async () => {
    const run = await runExample('lease-and-shell.ts', ['virtual'], adminToken);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const lines = jsonLines(run.stdout);
    expect(lines.map((line) => line.step)).toEqual(['lease', 'shell', 'files', 'screenshot', 'released']);
    expect(lines[1]).toEqual({ step: 'shell', exitCode: 0, model: 'Virtual Phone' });
    expect(lines[2]).toEqual({ step: 'files', pushed: 65_536, pulled: 65_536, identical: true });
    expect(Number(lines[3]?.bytes)).toBeGreaterThan(8);

    const lease = await admin.leases.get(String(lines[0]?.id));
    expect(lease.status).toBe('released');
    expect(lease.endReason).toBe('released');
  });
});
