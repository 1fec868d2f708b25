import { createHash } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { DATABASE_FILE } from '../../src/db/database.js';
import { startServer } from '../../src/index.js';
import { testEngine } from '../helpers/database.js';
import { startTestSmtp } from '../notifications/email/smtp.js';
import { LogCapture } from '../platform/fixtures.js';
import { eventually } from './device-helpers.js';
import { PASSWORD, startApi, uniqueUsername, type Api } from './harness.js';

let api: Api | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await api?.close();
  api = undefined;
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** A webhook receiver on loopback that answers 204 and keeps the headers of what it receives. */
async function startReceiver(): Promise<{ url: string; received: IncomingHttpHeaders[] }> {
  const received: IncomingHttpHeaders[] = [];
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      received.push(request.headers);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

function idempotencyRows(api: Api): Promise<Record<string, unknown>[]> {
  return api.database.db.selectFrom('idempotency_keys').selectAll().execute();
}

/**
 * What the database keeps: on SQLite every byte on disk (the main file and its write-ahead log), on PostgreSQL
 * every row of every table of the server's schema.
 */
async function storedText(api: Api): Promise<string> {
  const { dataDir } = api.server.config;
  if (testEngine === 'sqlite') {
    return readdirSync(dataDir)
      .filter((name) => name.startsWith(DATABASE_FILE))
      .map((name) => readFileSync(join(dataDir, name)).toString('latin1'))
      .join('');
  }
  return storedRows(api);
}

/** Every row of every table of the server's database, on either engine. */
async function storedRows(api: Api): Promise<string> {
  const { db } = api.database;
  const tables =
    testEngine === 'sqlite'
      ? await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(db)
      : await sql<{ name: string }>`
          select table_name as name from information_schema.tables where table_schema = current_schema()`.execute(db);
  const rows = await Promise.all(tables.rows.map(({ name }) => sql`select * from ${sql.table(name)}`.execute(db)));
  return JSON.stringify(rows.map((result) => result.rows));
}

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

describe('secrets at rest', () => {
  it('never stores the secret of a token created with an Idempotency-Key, and refuses to replay it', async () => {
    api = await startApi();
    const member = await api.addCaller('member');
    const request = { token: member.token, headers: { 'idempotency-key': 'create-ci-token-1' }, body: { name: 'ci', scopes: ['read'] } };
    const created = await api.call('createApiToken', request);
    expect(created.status).toBe(201);
    const { id, secret } = created.body as { id: string; secret: string };

    const rows = await idempotencyRows(api);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ operation_id: 'createApiToken', status: 201 });
    expect(JSON.stringify(rows)).not.toContain(secret);
    expect(JSON.parse(rows[0]!.response_body as string)).toMatchObject({ id, name: 'ci' });
    expect(JSON.parse(rows[0]!.response_body as string)).not.toHaveProperty('secret');
    expect(await storedText(api)).not.toContain(secret);

    const replay = await api.call('createApiToken', request);
    expect([replay.status, replay.body.code]).toEqual([409, 'idempotency_secret_not_replayable']);
    expect(replay.body.detail).toContain(id);
    expect(JSON.stringify(replay.body)).not.toContain(secret);
    const tokens = await api.call('listApiTokens', { token: member.token });
    expect(tokens.body.data.map((t: { id: string }) => t.id)).toEqual([id]);

    const other = await api.call('createApiToken', { ...request, body: { name: 'other', scopes: ['read'] } });
    expect([other.status, other.body.code]).toEqual([422, 'idempotency_key_reused']);
    const fresh = await api.call('createApiToken', { ...request, headers: { 'idempotency-key': 'create-ci-token-2' } });
    expect(fresh.status).toBe(201);
    expect(fresh.body.secret).not.toBe(secret);
  });

  it('keeps neither a password nor the Idempotency-Key of a created user in the clear, and still replays it', async () => {
    api = await startApi();
    const username = uniqueUsername();
    const password = 'a-password-nobody-should-read';
    const request = {
      token: api.admin.token,
      headers: { 'idempotency-key': 'onboard-user-key-7' },
      body: { username, password, role: 'member' },
    };
    const created = await api.call('createUser', request);
    expect(created.status).toBe(201);
    const stored = JSON.stringify(await idempotencyRows(api));
    expect(stored).not.toContain(password);
    expect(stored).not.toContain('onboard-user-key-7');
    expect(await storedText(api)).not.toContain(password);

    const replay = await api.call('createUser', request);
    expect([replay.status, replay.headers.get('idempotent-replayed')]).toEqual([201, 'true']);
    expect(replay.body).toEqual(created.body);
    const changed = await api.call('createUser', { ...request, body: { ...request.body, password: `${PASSWORD}!` } });
    expect([changed.status, changed.body.code]).toEqual([422, 'idempotency_key_reused']);
  });

  it('keeps webhook secrets, the current and the one rotated out, encrypted in the database and out of the log', async () => {
    const logs = new LogCapture();
    const receiver = await startReceiver();
    api = await startApi({ webhookAllowPrivate: true, logLevel: 'trace', logStream: logs });
    const member = await api.addCaller('member');
    const request = { token: member.token, headers: { 'idempotency-key': 'create-hook-1' }, body: { url: receiver.url, eventTypes: ['webhook.*'] } };
    const created = await api.call('createWebhookEndpoint', request);
    expect(created.status).toBe(201);
    const { id, secret: first } = created.body as { id: string; secret: string };
    expect(first).toMatch(/^whsec_/);
    const replay = await api.call('createWebhookEndpoint', request);
    expect([replay.status, replay.body.code]).toEqual([409, 'idempotency_secret_not_replayable']);
    const rotated = await api.call('rotateWebhookSecret', { token: member.token, path: { webhookId: id } });
    expect(rotated.status).toBe(200);
    const second = rotated.body.secret as string;
    expect(second).not.toBe(first);
    const test = await api.call('sendWebhookTestEvent', { token: member.token, path: { webhookId: id }, body: {} });
    expect(test.status).toBe(202);
    // Signed with both secrets while the first is still honoured: both were read back from the database.
    await eventually(async () => receiver.received.find((h) => h['webhook-id'] === test.body.eventId), 10_000, 'the test event delivered');
    expect(String(receiver.received.find((h) => h['webhook-id'] === test.body.eventId)!['webhook-signature']).split(' ')).toHaveLength(2);

    const [row] = await api.database.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).execute();
    expect(row!.secret).not.toBe('');
    expect(row!.previous_secret).not.toBeNull();
    const stored = await storedText(api);
    const logged = logs.text;
    expect(logged).toContain(id);
    for (const secret of [first, second]) {
      // The secret as given and its key (the part after `whsec_`), which is what signs.
      for (const text of [secret, secret.slice('whsec_'.length)]) {
        expect(stored).not.toContain(text);
        expect(logged).not.toContain(text);
      }
    }
  });

  it('keeps an email verification token only as its hash (its queued mail sealed), and out of the log', async () => {
    const smtp = await startTestSmtp();
    cleanups.push(() => smtp.close());
    const logs = new LogCapture();
    api = await startApi({ smtpUrl: smtp.url, logLevel: 'trace', logStream: logs });
    const member = await api.addCaller('member');
    const set = await api.call('setMyEmail', { token: member.token, body: { email: 'member@example.com' } });
    expect(set.status).toBe(202);
    const { mail } = await smtp.nth(1);
    const token = /\/v1\/email-verifications\?token=([A-Za-z0-9_-]+)/.exec(mail.text ?? '')![1]!;
    await eventually(
      async () => (await api!.database.db.selectFrom('email_messages').select('status').executeTakeFirst())?.status === 'sent' || undefined,
      10_000,
      'the verification mail recorded as sent',
    );

    const [row] = await api.database.db.selectFrom('user_emails').selectAll().where('user_id', '=', member.userId).execute();
    expect(row!.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
    // The queued mail held the link sealed, and only until it was sent: not even the database's bytes hold it.
    expect(await storedRows(api)).not.toContain(token);
    expect(await storedText(api)).not.toContain(token);
    expect(logs.text).not.toContain(token);

    const verified = await api.call('verifyEmail', { query: { token }, headers: { accept: 'text/html' } });
    expect(verified.status).toBe(200);
    expect(await storedText(api)).not.toContain(token);
    expect(logs.text).not.toContain(token);
  });

  it('keeps the data directory 0700 and the database files 0600 (none on PostgreSQL), and fixes them at start', async () => {
    api = await startApi();
    const { dataDir, databaseUrl } = api.server.config;
    await api.call('createApiToken', { token: api.admin.token, body: { name: 'ci', scopes: ['read'] } });
    const files = () => readdirSync(dataDir).filter((name) => name.startsWith(DATABASE_FILE));
    expect(files()).toEqual(
      testEngine === 'sqlite' ? expect.arrayContaining([DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`]) : [],
    );
    expect(mode(dataDir)).toBe('700');
    for (const name of files()) expect([name, mode(join(dataDir, name))]).toEqual([name, '600']);
    expect(mode(join(dataDir, 'adbkey'))).toBe('600');

    await api.server.close();
    chmodSync(dataDir, 0o755);
    for (const name of files()) chmodSync(join(dataDir, name), 0o644);
    const again = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
      logLevel: 'silent',
      localAdb: 'off',
    });
    try {
      expect(mode(dataDir)).toBe('700');
      for (const name of files()) expect([name, mode(join(dataDir, name))]).toEqual([name, '600']);
    } finally {
      await again.close();
    }
  });
});
