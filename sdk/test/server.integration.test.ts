import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/src/index.js';
import {
  APIError,
  AuthenticationError,
  BadRequestError,
  CloudPhone,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  UnprocessableEntityError,
  type Event,
  type Role,
  type TokenPair,
  type User,
} from '../src/index.js';

const ADMIN_PASSWORD = 'admin-password-for-sdk-tests';
const PASSWORD = 'correct-horse-battery-staple';
const ACCESS_TOKEN_TTL = 300;
const REFRESH_TOKEN_TTL = 3600;
const DAY_MS = 86_400_000;

/** The server's time: it moves only when a test advances it. */
let nowMs = Date.parse('2026-11-20T09:00:00.000Z');
const clock = (): Date => new Date(nowMs);
const advance = (seconds: number): void => {
  nowMs += seconds * 1000;
};
const isoIn = (ms: number): string => new Date(nowMs + ms).toISOString();

let dataDir: string;
let server: RunningServer;
/** No credentials: for logging in and refreshing. */
let anonymous: CloudPhone;
/** The first admin, through an admin API token (which no clock advance expires). */
let admin: CloudPhone;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    accessTokenTtlSeconds: ACCESS_TOKEN_TTL,
    refreshTokenTtlSeconds: REFRESH_TOKEN_TTL,
    clock,
    logStream: { write: () => undefined },
  });
  anonymous = new CloudPhone({ baseUrl: server.url });
  const pair = await anonymous.auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  const token = await anonymous.withOptions({ token: pair.accessToken }).tokens.create({
    name: 'sdk-integration',
    scopes: ['admin'],
  });
  admin = new CloudPhone({ baseUrl: server.url, token: token.secret });
});

afterAll(async () => {
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

let sequence = 0;

function uniqueName(stem: string): string {
  sequence += 1;
  return `${stem}-${sequence}`;
}

/** A client acting with `token` (an access token or an API token secret). */
function clientWith(token: string): CloudPhone {
  return new CloudPhone({ baseUrl: server.url, token });
}

/** Creates a user as the admin and logs them in. */
async function newUser(role: Role, stem: string = role): Promise<{ user: User; pair: TokenPair; client: CloudPhone }> {
  const user = await admin.users.create({ username: uniqueName(stem), password: PASSWORD, role });
  const pair = await anonymous.auth.login({ username: user.username, password: PASSWORD });
  return { user, pair, client: clientWith(pair.accessToken) };
}

/** The error a call fails with, checked to be an instance of `type` with the server's `code`. */
async function failure<E extends APIError>(
  call: PromiseLike<unknown>,
  type: new (...args: never[]) => E,
  code: string,
): Promise<E> {
  const error = await Promise.resolve(call).then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(type);
  expect((error as E).code).toBe(code);
  expect((error as E).problem.code).toBe(code);
  return error as E;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('the real server, through the SDK', () => {
  describe('auth', () => {
    it('creates the first admin with the configured password', () => {
      expect(server.initialAdmin).toEqual({ username: 'admin', password: ADMIN_PASSWORD });
    });

    it('login returns a usable token pair, and refresh rotates it', async () => {
      const { user } = await newUser('member');
      const pair = await anonymous.auth.login({ username: user.username, password: PASSWORD });
      expect(pair).toMatchObject({
        tokenType: 'Bearer',
        accessToken: expect.stringMatching(/^cpa_/),
        refreshToken: expect.stringMatching(/^cpr_/),
        accessTokenExpiresAt: isoIn(ACCESS_TOKEN_TTL * 1000),
        refreshTokenExpiresAt: isoIn(REFRESH_TOKEN_TTL * 1000),
        user,
      });
      await expect(clientWith(pair.accessToken).me.get()).resolves.toMatchObject({
        id: user.id,
        username: user.username,
        authentication: { method: 'session' },
      });

      const next = await anonymous.auth.refresh({ refreshToken: pair.refreshToken });
      expect(next.accessToken).not.toBe(pair.accessToken);
      expect(next.refreshToken).not.toBe(pair.refreshToken);
      expect(next.user.id).toBe(user.id);
      await expect(clientWith(next.accessToken).me.get()).resolves.toMatchObject({ id: user.id });

      const reused = await failure(
        anonymous.auth.refresh({ refreshToken: pair.refreshToken }),
        AuthenticationError,
        'invalid_refresh_token',
      );
      expect(reused.status).toBe(401);
      await failure(clientWith(pair.accessToken).me.get(), AuthenticationError, 'invalid_token');
      await expect(anonymous.auth.refresh({ refreshToken: next.refreshToken })).resolves.toMatchObject({
        user: { id: user.id },
      });
    });

    it('rejects a wrong password with invalid_credentials', async () => {
      const { user } = await newUser('viewer');
      await failure(
        anonymous.auth.login({ username: user.username, password: 'not-the-password' }),
        AuthenticationError,
        'invalid_credentials',
      );
    });

    it('logout ends the session: its access token fails with token_revoked and its refresh token is dead', async () => {
      const { user, pair, client } = await newUser('member');
      await expect(anonymous.auth.logout({ refreshToken: pair.refreshToken })).resolves.toBeUndefined();

      const revoked = await failure(client.me.get(), AuthenticationError, 'token_revoked');
      expect(revoked.status).toBe(401);
      await failure(
        anonymous.auth.refresh({ refreshToken: pair.refreshToken }),
        AuthenticationError,
        'invalid_refresh_token',
      );
      await expect(anonymous.auth.logout({ refreshToken: pair.refreshToken })).resolves.toBeUndefined();

      const [loggedOut, loggedIn] = (await admin.events.list({ type: ['auth.*'], order: 'desc', limit: 2 })).data;
      expect(loggedOut).toMatchObject({ type: 'auth.logged_out', actor: { username: user.username } });
      expect(loggedIn).toMatchObject({ type: 'auth.login_succeeded', actor: { username: user.username } });
      expect(loggedOut?.subject).toMatchObject({ type: 'session' });
      expect(loggedOut?.subject).toEqual(loggedIn?.subject);
    });
  });

  describe('me', () => {
    it('shows the caller and how they authenticated', async () => {
      const { user, client } = await newUser('viewer');
      const me = await client.me.get();
      expect(me).toMatchObject({ ...user, authentication: { method: 'session' } });
      expect(me.authentication.scopes).toContain('read');
      expect(me.authentication.tokenId).toBeUndefined();
    });

    it('update changes the display name, and a password change ends the other sessions', async () => {
      const { user, client } = await newUser('member');
      const second = await anonymous.auth.login({ username: user.username, password: PASSWORD });
      const other = clientWith(second.accessToken);

      const renamed = await client.me.update({ displayName: 'Dana Member' });
      expect(renamed).toMatchObject({ id: user.id, displayName: 'Dana Member' });
      await expect(client.me.get()).resolves.toMatchObject({ displayName: 'Dana Member' });
      await expect(admin.users.get(user.id)).resolves.toMatchObject({ displayName: 'Dana Member' });

      const newPassword = 'another-long-password-2';
      await client.me.update({ password: newPassword, currentPassword: PASSWORD });
      await failure(
        anonymous.auth.login({ username: user.username, password: PASSWORD }),
        AuthenticationError,
        'invalid_credentials',
      );
      await expect(anonymous.auth.login({ username: user.username, password: newPassword })).resolves.toMatchObject({
        user: { id: user.id },
      });
      await expect(client.me.get()).resolves.toMatchObject({ id: user.id });
      await failure(other.me.get(), AuthenticationError, 'token_revoked');
    });
  });

  describe('users', () => {
    it('create, update and delete change what get returns and what the event log records', async () => {
      const username = uniqueName('crud');
      const created = await admin.users.create({ username, password: PASSWORD, role: 'viewer', displayName: 'Casey' });
      expect(created).toMatchObject({ username, role: 'viewer', displayName: 'Casey', disabled: false });
      expect(created.id).toMatch(/^usr_[0-9A-Z]{26}$/);
      await expect(admin.users.get(created.id)).resolves.toEqual(created);

      const updated = await admin.users.update(created.id, { role: 'member', displayName: 'Casey Jones' });
      expect(updated).toMatchObject({ id: created.id, role: 'member', displayName: 'Casey Jones' });
      await expect(admin.users.get(created.id)).resolves.toEqual(updated);

      await expect(admin.users.delete(created.id)).resolves.toBeUndefined();
      const missing = await failure(admin.users.get(created.id), NotFoundError, 'not_found');
      expect(missing.status).toBe(404);
      expect(missing.requestId).toMatch(/^req_[0-9A-Z]{26}$/);
      expect(missing.requestId).toBe(missing.headers['x-request-id']);
      const traced = await failure(
        admin.users.get(created.id, { headers: { 'X-Request-Id': 'trace-users-get-1' } }),
        NotFoundError,
        'not_found',
      );
      expect(traced.requestId).toBe('trace-users-get-1');
      await failure(admin.users.delete(created.id), NotFoundError, 'not_found');
      expect(await collect(admin.users.list({ q: username }))).toEqual([]);

      const events = await collect(admin.events.list({ type: ['user.*'], subjectId: created.id }));
      expect(events.map((e) => e.type)).toEqual(['user.created', 'user.updated', 'user.deleted']);
      expect(events.every((e) => e.actor.username === 'admin')).toBe(true);
      expect(events[1]?.data).toMatchObject({ changes: ['displayName', 'role'], user: { role: 'member' } });

      const newestFirst = await collect(admin.events.list({ type: ['user.*'], subjectId: created.id, order: 'desc' }));
      expect(newestFirst.map((e) => e.id)).toEqual(events.map((e) => e.id).reverse());
      for (const event of events) await expect(admin.events.get(event.id)).resolves.toEqual(event);
    });

    it('list filters by role and by q, a case-insensitive match of username or display name', async () => {
      const stem = uniqueName('filter');
      const viewer = await admin.users.create({ username: `${stem}-v`, password: PASSWORD, role: 'viewer' });
      const member = await admin.users.create({ username: `${stem}-m`, password: PASSWORD, role: 'member' });
      const keeper = await admin.users.create({
        username: `${stem}-k`,
        password: PASSWORD,
        role: 'member',
        displayName: 'Quokka Keeper',
      });
      const ids = (users: User[]) => users.map((u) => u.id);

      expect(ids(await collect(admin.users.list({ q: stem })))).toEqual([viewer.id, member.id, keeper.id]);
      expect(ids(await collect(admin.users.list({ q: stem, role: 'member' })))).toEqual([member.id, keeper.id]);
      expect(ids(await collect(admin.users.list({ q: 'QUOKKA' })))).toEqual([keeper.id]);
      const admins = await collect(admin.users.list({ role: 'admin' }));
      expect(admins.map((u) => u.username)).toContain('admin');
      expect(admins.every((u) => u.role === 'admin')).toBe(true);
    });

    it('for await across pages of `limit` yields every user exactly once, in order', async () => {
      const stem = uniqueName('pager');
      const created: User[] = [];
      for (let i = 0; i < 7; i++) {
        created.push(await admin.users.create({ username: `${stem}-${i}`, password: PASSWORD, role: 'viewer' }));
      }

      const first = await admin.users.list({ q: stem, limit: 3 });
      expect(first.data).toEqual(created.slice(0, 3));
      expect(first.hasNextPage()).toBe(true);
      const pageSizes: number[] = [];
      for await (const page of first.iterPages()) pageSizes.push(page.data.length);
      expect(pageSizes).toEqual([3, 3, 1]);

      const all = await collect(admin.users.list({ q: stem, limit: 3 }));
      expect(all.map((u) => u.id)).toEqual(created.map((u) => u.id));
    });
  });

  describe('tokens', () => {
    it('create returns a secret that authenticates with the token scopes until it is revoked', async () => {
      const { user, client } = await newUser('member');
      const created = await client.tokens.create({ name: 'ci', scopes: ['read'], expiresInDays: 30 });
      expect(created).toMatchObject({
        userId: user.id,
        name: 'ci',
        scopes: ['read'],
        expiresAt: isoIn(30 * DAY_MS),
        revokedAt: null,
        lastUsedAt: null,
      });
      const { secret, ...shown } = created;
      expect(secret).toMatch(/^cpt_[0-9A-Za-z]+$/);
      expect(secret.startsWith(shown.prefix)).toBe(true);

      const withToken = clientWith(secret);
      await expect(withToken.me.get()).resolves.toMatchObject({
        id: user.id,
        authentication: { method: 'api_token', tokenId: created.id, scopes: ['read'] },
      });
      await failure(withToken.me.update({ displayName: 'Not Allowed' }), PermissionDeniedError, 'insufficient_scope');

      const fetched = await client.tokens.get(created.id);
      expect(fetched).toEqual({ ...shown, lastUsedAt: clock().toISOString() });
      expect(fetched).not.toHaveProperty('secret');
      expect(await collect(client.tokens.list())).toEqual([fetched]);
      expect(await collect(admin.tokens.list({ userId: user.id }))).toEqual([fetched]);

      await expect(client.tokens.revoke(created.id)).resolves.toBeUndefined();
      await failure(withToken.me.get(), AuthenticationError, 'token_revoked');
      await expect(client.tokens.get(created.id)).resolves.toMatchObject({ revokedAt: clock().toISOString() });
      expect(await collect(client.tokens.list())).toEqual([]);
      expect((await collect(client.tokens.list({ includeRevoked: true }))).map((t) => t.id)).toEqual([created.id]);
      await expect(client.tokens.revoke(created.id)).resolves.toBeUndefined();

      const events = await collect(admin.events.list({ type: ['token.*'], subjectId: created.id }));
      expect(events.map((e) => [e.type, e.actor.username])).toEqual([
        ['token.created', user.username],
        ['token.revoked', user.username],
      ]);
    });

    it("hides other users' tokens from non-admins", async () => {
      const owner = await newUser('member');
      const other = await newUser('member');
      const token = await owner.client.tokens.create({ name: 'private', scopes: ['read'] });
      await failure(other.client.tokens.get(token.id), NotFoundError, 'not_found');
      await failure(other.client.tokens.revoke(token.id), NotFoundError, 'not_found');
      await failure(other.client.tokens.list({ userId: owner.user.id }), PermissionDeniedError, 'insufficient_role');
      await expect(admin.tokens.get(token.id)).resolves.toMatchObject({ id: token.id, userId: owner.user.id });
    });
  });

  describe('events', () => {
    it('type filters keep to their family; get fetches one event; an unknown id is not found', async () => {
      const { client } = await newUser('member', 'events');
      await newUser('viewer', 'events');
      await client.tokens.create({ name: 'events', scopes: ['read'] });

      const all = await collect(admin.events.list());
      expect(new Set(all.map((e) => e.type.split('.')[0]))).toEqual(new Set(['user', 'auth', 'token']));
      const userEvents = await collect(admin.events.list({ type: ['user.*'], limit: 2 }));
      expect(userEvents.length).toBeGreaterThan(2);
      expect(userEvents).toEqual(all.filter((e) => e.type.startsWith('user.')));
      const newestFirst = await collect(admin.events.list({ type: ['user.*'], order: 'desc', limit: 2 }));
      expect(newestFirst).toEqual([...userEvents].reverse());

      const last = all.at(-1) as Event;
      expect(last.type).toBe('token.created');
      await expect(admin.events.get(last.id)).resolves.toEqual(last);
      await failure(admin.events.get('evt_00000000000000000000000000'), NotFoundError, 'not_found');
    });
  });

  describe('errors', () => {
    it('a taken username is a ConflictError username_taken', async () => {
      const { user } = await newUser('viewer');
      const error = await failure(
        admin.users.create({ username: user.username, password: PASSWORD, role: 'viewer' }),
        ConflictError,
        'username_taken',
      );
      expect(error.status).toBe(409);
      expect(error.problem.detail).toContain(user.username);
    });

    it('a member listing users is a PermissionDeniedError insufficient_role', async () => {
      const { client } = await newUser('member');
      const error = await failure(client.users.list(), PermissionDeniedError, 'insufficient_role');
      expect(error.status).toBe(403);
    });

    it('an invalid body is a BadRequestError validation_failed naming each field', async () => {
      const error = await failure(
        admin.users.create({ username: 'Not Valid!', password: 'short', role: 'member' }),
        BadRequestError,
        'validation_failed',
      );
      expect(error.status).toBe(400);
      expect(new Set(error.problem.errors?.map((e) => e.field))).toEqual(new Set(['/password', '/username']));

      const { client } = await newUser('member');
      const missing = await failure(
        client.me.update({ password: 'a-new-long-password' }),
        BadRequestError,
        'validation_failed',
      );
      expect(missing.problem.errors?.map((e) => e.field)).toEqual(['/currentPassword']);
    });

    it('the last admin cannot be deleted: ConflictError last_admin', async () => {
      const me = await admin.me.get();
      await failure(admin.users.delete(me.id), ConflictError, 'last_admin');
      await expect(admin.users.get(me.id)).resolves.toMatchObject({ role: 'admin' });
    });
  });

  describe('idempotency', () => {
    it('the same idempotencyKey replays the first create: one user, one user.created event', async () => {
      const username = uniqueName('idem');
      const body = { username, password: PASSWORD, role: 'viewer' } as const;
      const key = `create-${username}`;
      const first = await admin.users.create(body, { idempotencyKey: key });
      const second = await admin.users.create(body, { idempotencyKey: key });
      expect(second).toEqual(first);
      expect((await collect(admin.users.list({ q: username }))).map((u) => u.id)).toEqual([first.id]);
      const created = await collect(admin.events.list({ type: ['user.created'], subjectId: first.id }));
      expect(created).toHaveLength(1);

      await failure(admin.users.create(body), ConflictError, 'username_taken');
    });

    it('the same idempotencyKey with another body is an UnprocessableEntityError idempotency_key_reused', async () => {
      const username = uniqueName('reuse');
      const key = `create-${username}`;
      await admin.users.create({ username, password: PASSWORD, role: 'viewer' }, { idempotencyKey: key });
      const error = await failure(
        admin.users.create({ username: `${username}-b`, password: PASSWORD, role: 'viewer' }, { idempotencyKey: key }),
        UnprocessableEntityError,
        'idempotency_key_reused',
      );
      expect(error.status).toBe(422);
      expect(await collect(admin.users.list({ q: `${username}-b` }))).toEqual([]);
    });

    it('a create whose response is lost is retried with the same automatic key and creates once', async () => {
      const proxy = await startLossyProxy(server.port);
      try {
        const lossy = admin.withOptions({ baseUrl: proxy.url, sleep: async () => undefined });
        const username = uniqueName('lost');
        const user = await lossy.users.create({ username, password: PASSWORD, role: 'viewer' });
        expect(proxy.connections()).toBe(2);
        expect(proxy.dropped()).toBe(1);
        expect(await collect(admin.users.list({ q: username }))).toEqual([user]);
        const created = await collect(admin.events.list({ type: ['user.created'], subjectId: user.id }));
        expect(created).toHaveLength(1);
      } finally {
        await proxy.close();
      }
    });
  });

  describe('automatic token refresh', () => {
    it('refreshes an expired access token once, transparently, and hands the new pair to onTokenRefresh', async () => {
      const { user, pair } = await newUser('member');
      const refreshed: TokenPair[] = [];
      const client = new CloudPhone({
        baseUrl: server.url,
        token: pair.accessToken,
        refreshToken: pair.refreshToken,
        onTokenRefresh: (next) => {
          refreshed.push(next);
        },
      });
      await expect(client.me.get()).resolves.toMatchObject({ id: user.id });
      expect(refreshed).toEqual([]);

      advance(ACCESS_TOKEN_TTL);
      await failure(clientWith(pair.accessToken).me.get(), AuthenticationError, 'token_expired');
      const results = await Promise.all([client.me.get(), client.me.get(), client.users.list().catch((e) => e)]);
      expect(results[0]).toMatchObject({ id: user.id });
      expect(results[1]).toMatchObject({ id: user.id });
      expect(results[2]).toBeInstanceOf(PermissionDeniedError);

      expect(refreshed).toHaveLength(1);
      const [next] = refreshed as [TokenPair];
      expect(next.accessToken).not.toBe(pair.accessToken);
      expect(next.refreshToken).not.toBe(pair.refreshToken);
      expect(next.user.id).toBe(user.id);
      await expect(clientWith(next.accessToken).me.get()).resolves.toMatchObject({ id: user.id });
      await failure(
        anonymous.auth.refresh({ refreshToken: pair.refreshToken }),
        AuthenticationError,
        'invalid_refresh_token',
      );

      await client.me.get();
      expect(refreshed).toHaveLength(1);
    });

    it('throws the refresh failure when the refresh token has expired too', async () => {
      const { pair } = await newUser('member');
      const refreshed: TokenPair[] = [];
      const client = new CloudPhone({
        baseUrl: server.url,
        token: pair.accessToken,
        refreshToken: pair.refreshToken,
        onTokenRefresh: (next) => {
          refreshed.push(next);
        },
      });
      advance(REFRESH_TOKEN_TTL);
      await failure(client.me.get(), AuthenticationError, 'invalid_refresh_token');
      expect(refreshed).toEqual([]);
    });
  });

  describe('withOptions', () => {
    it('acts with another token over the same connection pool', async () => {
      const { user, pair } = await newUser('member');
      const adminPair = await anonymous.auth.login({ username: 'admin', password: ADMIN_PASSWORD });
      const sockets = new Set<Socket>();
      const onConnection = (socket: Socket): void => {
        sockets.add(socket);
      };
      server.app.server.on('connection', onConnection);
      try {
        const base = new CloudPhone({ baseUrl: server.url, token: pair.accessToken });
        for (let i = 0; i < 3; i++) await expect(base.me.get()).resolves.toMatchObject({ id: user.id });
        const pooled = sockets.size;
        expect(pooled).toBeGreaterThan(0);

        const asAdmin = base.withOptions({ token: adminPair.accessToken });
        await expect(asAdmin.me.get()).resolves.toMatchObject({ username: 'admin', role: 'admin' });
        await expect(asAdmin.users.get(user.id)).resolves.toMatchObject({ id: user.id });
        await expect(base.me.get()).resolves.toMatchObject({ id: user.id });
        await failure(base.users.get(user.id), PermissionDeniedError, 'insufficient_role');
        await expect(asAdmin.withOptions({ token: pair.accessToken }).me.get()).resolves.toMatchObject({ id: user.id });
        expect(sockets.size).toBe(pooled);

        await new CloudPhone({ baseUrl: server.url, token: pair.accessToken }).me.get();
        expect(sockets.size).toBe(pooled + 1);
      } finally {
        server.app.server.off('connection', onConnection);
      }
    });
  });
});

/**
 * A TCP proxy to the server that drops the first response: the request reaches the server, which acts on it, and
 * the client sees the connection close before any byte of the answer.
 */
async function startLossyProxy(port: number): Promise<{
  url: string;
  connections: () => number;
  dropped: () => number;
  close: () => Promise<void>;
}> {
  let connections = 0;
  let dropped = 0;
  const open = new Set<Socket>();
  const proxy: Server = createServer((client) => {
    connections += 1;
    const drop = connections === 1;
    const upstream = connect(port, '127.0.0.1');
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    if (drop) {
      upstream.once('data', () => {
        dropped += 1;
        client.destroy();
      });
    } else {
      upstream.pipe(client);
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port: proxyPort } = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${proxyPort}`,
    connections: () => connections,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        proxy.close(() => resolve());
      }),
  };
}
