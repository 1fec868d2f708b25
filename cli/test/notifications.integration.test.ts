import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudPhone, type Event, type Notification } from '@cloudphone/sdk';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { assertBuilt, runCli, type Result, type RunOptions } from './fixtures/cli.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

/*
 * The built CLI's notification commands against the real server with one virtual device: events follow prints
 * events as they are appended, inbox lists and marks notifications, webhooks listen forwards live events to a
 * loopback receiver, signed as Standard Webhooks.
 */

let server: TestServer;
let admin: CloudPhone;
let home: string;
let users = 0;

function cli(args: string[], options: RunOptions = {}): Promise<Result> {
  return runCli(home, args, { ...options, env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: server.adminToken, ...options.env } });
}

interface Running {
  child: ChildProcess;
  /** Standard output and error so far. */
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first line of standard output that `match` accepts. */
  line: (match: (line: string) => boolean) => Promise<string>;
  done: Promise<Result>;
}

/** Starts the CLI for a command that runs until interrupted. */
function start(args: string[]): Running {
  let out = '';
  let err = '';
  const waiting: { match: (line: string) => boolean; found: (line: string) => void }[] = [];
  const check = (): void => {
    const lines = out.split('\n').slice(0, -1);
    for (const wait of waiting.splice(0)) {
      const found = lines.find(wait.match);
      if (found === undefined) waiting.push(wait);
      else wait.found(found);
    }
  };
  let child!: ChildProcess;
  const done = cli(args, {
    started: (started) => {
      child = started;
      started.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        check();
      });
      started.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
    },
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    line: (match) =>
      new Promise((found, fail) => {
        waiting.push({ match, found });
        check();
        void done.then((result) => fail(new Error(`the CLI exited: ${JSON.stringify(result)}`)));
      }),
    done,
  };
}

/** Appends a `user.created` event. */
async function createUser(): Promise<string> {
  users += 1;
  return (await admin.users.create({ username: `notified-${users}`, password: 'correct-horse-battery', role: 'member' })).id;
}

/** Creates users until `until` settles: for commands that start with the next event, once they are connected. */
async function createUsersUntil<T>(until: Promise<T>): Promise<T> {
  let settled = false;
  const result = until.finally(() => (settled = true));
  while (!settled) {
    await createUser();
    await Promise.race([result.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 300))]);
  }
  return result;
}

async function interrupt(running: Running): Promise<Result> {
  running.child.kill('SIGINT');
  return running.done;
}

beforeAll(async () => {
  assertBuilt();
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-notifications-'));
  server = await startTestServer('cli-notifications', 1);
  admin = new CloudPhone({ baseUrl: server.url, token: server.adminToken });
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('events follow', () => {
  test('prints a line per event from --since-id on, until Ctrl-C (130)', async () => {
    const [latest] = (await admin.events.list({ order: 'desc', limit: 1 })).data;
    const running = start(['events', 'follow', '--since-id', latest!.id, '--type', 'user.*']);
    const userId = await createUser();
    const line = await running.line((l) => l.includes(userId));
    expect(line).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z  user\\.created +${userId}  admin$`));
    const result = await interrupt(running);
    expect(result.code, result.stderr).toBe(130);
    // Only user events passed the filter, each once.
    const lines = result.stdout.split('\n').filter(Boolean);
    for (const l of lines) expect(l).toMatch(/Z  user\./);
    expect(lines.filter((l) => l.includes(userId))).toHaveLength(1);
  });

  test('--json prints one Event per line, starting with the next event appended', async () => {
    const running = start(['events', 'follow', '--json', '--type', 'user.created']);
    const first = await createUsersUntil(running.line(() => true));
    const event = JSON.parse(first) as Event;
    expect(event).toMatchObject({ type: 'user.created', actor: { username: 'admin' }, subject: { type: 'user' } });
    expect(event.id).toMatch(/^evt_/);
    const result = await interrupt(running);
    expect(result.code).toBe(130);
    for (const l of result.stdout.split('\n').filter(Boolean)) expect(JSON.parse(l)).toHaveProperty('type', 'user.created');
  });

  test('ends with exit 4 when the credential is refused, and 1 for an unknown --since-id', async () => {
    const refused = await cli(['events', 'follow'], { env: { CLOUDPHONE_TOKEN: 'cpt_not_a_real_token' } });
    expect(refused.code, refused.stderr).toBe(4);
    const unknown = await cli(['events', 'follow', '--since-id', 'evt_00000000000000000000000000', '--json']);
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { status: 404, code: 'not_found' } });
  });
});

describe('inbox', () => {
  let granted: Notification;

  // A lease granted after waiting in the queue is news for its holder: the only device is held, then let go.
  beforeAll(async () => {
    const holding = await admin.leases.create({ count: 1, ttlSeconds: 600 });
    const waiting = admin.leases.create({ count: 1, ttlSeconds: 600, waitSeconds: 60 });
    while ((await admin.leases.list({ status: ['queued'] })).data.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    await holding.release();
    const lease = await waiting;
    await lease.release();
    const all = (await admin.inbox.list({ status: 'all', limit: 100 })).data;
    granted = all.find((n) => n.kind === 'lease.granted' && n.subject?.id === lease.id)!;
    expect(granted, JSON.stringify(all)).toBeDefined();
  });

  test('lists notifications unread first, as a table or JSON', async () => {
    const json = await cli(['inbox', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const listed = JSON.parse(json.stdout) as Notification[];
    expect(listed.map((n) => n.id)).toContain(granted.id);
    const firstRead = listed.findIndex((n) => n.read);
    if (firstRead !== -1) expect(listed.slice(firstRead).every((n) => n.read)).toBe(true);

    const text = await cli(['inbox']);
    expect(text.code).toBe(0);
    const [header, ...rows] = text.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID +TIME +KIND +TITLE +READ$/);
    const row = rows.find((r) => r.startsWith(granted.id));
    expect(row).toMatch(new RegExp(`^${granted.id}  ${granted.createdAt}  lease\\.granted +.+  no$`));
  });

  test('read <id> marks one read; --unread no longer lists it', async () => {
    const read = await cli(['inbox', 'read', granted.id, '--json']);
    expect(read.code, read.stderr).toBe(0);
    expect(JSON.parse(read.stdout)).toMatchObject({ id: granted.id, read: true });
    const unread = JSON.parse((await cli(['inbox', '--unread', '--json'])).stdout) as Notification[];
    expect(unread.map((n) => n.id)).not.toContain(granted.id);
    expect(unread.every((n) => !n.read)).toBe(true);
    const text = await cli(['inbox', 'read', granted.id]);
    expect(text).toMatchObject({ code: 0, stdout: '' });
    expect(text.stderr).toContain(`${granted.id} marked read`);
  });

  test('read --all marks every unread notification read', async () => {
    await admin.inbox.markUnread(granted.id);
    const before = (await admin.inbox.countUnread()).unread;
    expect(before).toBeGreaterThan(0);
    const all = await cli(['inbox', 'read', '--all', '--json']);
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout)).toEqual({ updated: before });
    expect((await admin.inbox.countUnread()).unread).toBe(0);
    expect(await cli(['inbox', '--unread'])).toMatchObject({ code: 0, stdout: '', stderr: 'No unread notifications.\n' });
  });

  test('read wants an id or --all, not both (exit 2); an unknown id is 404 (exit 1)', async () => {
    expect((await cli(['inbox', 'read'])).code).toBe(2);
    expect((await cli(['inbox', 'read', granted.id, '--all'])).code).toBe(2);
    const unknown = await cli(['inbox', 'read', 'ntf_00000000000000000000000000']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('not_found');
  });
});

describe('webhooks listen', () => {
  let receiver: Server;
  let url: string;
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  let status = 200;

  beforeAll(async () => {
    receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push({ headers: request.headers, body });
        response.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });

  afterAll(async () => {
    receiver?.closeAllConnections();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  /** The deliveries received since `from`, once there is one. */
  async function deliveriesSince(from: number): Promise<typeof received> {
    while (received.length <= from) await new Promise((resolve) => setTimeout(resolve, 50));
    return received.slice(from);
  }

  test('forwards each event signed with --secret and prints the status and latency', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const from = received.length;
    status = 202;
    const running = start(['webhooks', 'listen', '--forward-to', url, '--type', 'user.created', '--secret', secret]);
    const [delivery] = await createUsersUntil(deliveriesSince(from));
    const event = new Webhook(secret).verify(delivery!.body, delivery!.headers as Record<string, string>) as Event;
    expect(event.type).toBe('user.created');
    expect(delivery!.headers['webhook-id']).toBe(event.id);
    expect(Math.abs(Number(delivery!.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    expect(await admin.events.get(event.id)).toEqual(event);
    const line = await running.line((l) => l.includes(event.id));
    expect(line).toMatch(new RegExp(`^${event.occurredAt}  user\\.created +${event.id}  → 202 \\(\\d+ ms\\)$`));
    const result = await interrupt(running);
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).toContain(`Forwarding events to ${url} (Ctrl-C to stop). Signing secret: ${secret}`);
  });

  test('signs with a new secret printed at the start, and reports what the receiver answered as JSON lines', async () => {
    const from = received.length;
    status = 500;
    const running = start(['webhooks', 'listen', '--forward-to', url, '--type', 'user.*', '--json']);
    const [delivery] = await createUsersUntil(deliveriesSince(from));
    const secret = /Signing secret: (whsec_\S+)/.exec(running.stderr())?.[1];
    expect(secret).toBeDefined();
    const event = new Webhook(secret!).verify(delivery!.body, delivery!.headers as Record<string, string>) as Event;
    const line = JSON.parse(await running.line((l) => l.includes(event.id)));
    expect(line).toMatchObject({ eventId: event.id, type: event.type, occurredAt: event.occurredAt, status: 500 });
    expect(line.latencyMs).toBeGreaterThanOrEqual(0);
    expect((await interrupt(running)).code).toBe(130);
  });

  test('refuses a --forward-to that is not http(s) and a malformed --secret (exit 2)', async () => {
    expect((await cli(['webhooks', 'listen', '--forward-to', 'ftp://127.0.0.1/hook'])).code).toBe(2);
    expect((await cli(['webhooks', 'listen', '--forward-to', url, '--secret', 'not-a-secret'])).code).toBe(2);
  });
});
