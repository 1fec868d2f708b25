import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationId } from '../../src/generated/operations.js';
import { startServer, type RunningServer } from '../../src/index.js';
import { expectContractResponse } from '../helpers/contract.js';
import { createTestDatabase, execute, type TestDatabase } from '../helpers/postgres.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { LogCapture } from './fixtures.js';

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> | null;
  seconds: number;
}

describe('a PostgreSQL that goes away while the server runs', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let server: RunningServer;
  let dataDir: string;
  let token: string;
  const logs = new LogCapture();

  async function call(operationId: OperationId, method: string, path: string, body?: unknown): Promise<Answer> {
    const started = performance.now();
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const answer = {
      status: response.status,
      headers: response.headers,
      body: text === '' ? null : (JSON.parse(text) as Record<string, unknown>),
      seconds: (performance.now() - started) / 1000,
    };
    expectContractResponse(operationId, {
      status: answer.status,
      contentType: response.headers.get('content-type'),
      body: answer.body,
    });
    return answer;
  }

  const calls: [OperationId, string, string, unknown?][] = [
    ['getMe', 'GET', '/v1/me'],
    ['listUsers', 'GET', '/v1/users'],
    ['listDevices', 'GET', '/v1/devices'],
    ['createApiToken', 'POST', '/v1/tokens', { name: 'during-outage', scopes: ['read'] }],
    ['login', 'POST', '/v1/auth/login', { username: 'admin', password: 'not-the-password' }],
  ];

  function expectDatabaseUnavailable(answer: Answer): void {
    expect(answer.status).toBe(503);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.body).toMatchObject({ status: 503, code: 'database_unavailable' });
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  }

  async function readiness(): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${server.url}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    const target = new URL(database.url);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const proxied = new URL(database.url);
    proxied.port = String(proxy.port);
    dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-outage-'));
    server = await startServer({ dataDir, port: 0, databaseUrl: proxied.href, logLevel: 'info', logStream: logs });
    const login = await fetch(`${server.url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: server.initialAdmin!.password }),
    });
    token = ((await login.json()) as { accessToken: string }).accessToken;
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await proxy?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers 503 database_unavailable with Retry-After while the database refuses connections, then serves again by itself', async () => {
    expect((await call('getMe', 'GET', '/v1/me')).status).toBe(200);
    expect((await readiness()).status).toBe(200);

    await proxy.cut('refuse');
    for (const [operationId, method, path, body] of calls) {
      const answer = await call(operationId, method, path, body);
      expectDatabaseUnavailable(answer);
      expect(answer.seconds).toBeLessThan(3);
    }
    expect(await readiness()).toMatchObject({ status: 503, body: { code: 'database_unavailable' } });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    await proxy.restore();
    expect((await call('getMe', 'GET', '/v1/me')).status).toBe(200);
    await expect.poll(async () => (await readiness()).status, { timeout: 10_000 }).toBe(200);
    expect((await call('createApiToken', 'POST', '/v1/tokens', { name: 'after-outage', scopes: ['read'] })).status).toBe(201);
    expect(logs.entries.filter((entry) => entry.msg === 'request failed')).toEqual([]);
    expect(logs.entries.filter((entry) => entry.msg === 'the database is unavailable').length).toBeGreaterThan(0);
  });

  it('answers 503 database_unavailable within the connection timeout when the database host does not answer', async () => {
    await proxy.cut('blackhole');
    try {
      const answer = await call('getMe', 'GET', '/v1/me');
      expectDatabaseUnavailable(answer);
      expect(answer.seconds).toBeLessThan(8);
    } finally {
      await proxy.restore();
    }
    expect((await call('getMe', 'GET', '/v1/me')).status).toBe(200);
  });

  it('logs the idle connections the database ends (admin shutdown), replaces them, and keeps serving', async () => {
    expect((await call('getMe', 'GET', '/v1/me')).status).toBe(200);
    const earlier = logs.entries.length;
    const terminated = await execute(
      database.url,
      `select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid() and state = 'idle'`,
    );
    expect(terminated.length).toBeGreaterThan(0);
    const idleErrors = () =>
      logs.entries.slice(earlier).filter((entry) => entry.msg === 'an idle database connection failed');
    await expect.poll(() => idleErrors().length, { timeout: 5_000 }).toBeGreaterThan(0);
    expect(idleErrors()[0]).toMatchObject({ level: 40, err: { code: '57P01' } });

    const deadline = Date.now() + 5_000;
    let answer = await call('getMe', 'GET', '/v1/me');
    while (answer.status !== 200 && Date.now() < deadline) {
      expectDatabaseUnavailable(answer);
      answer = await call('getMe', 'GET', '/v1/me');
    }
    expect(answer.status).toBe(200);
    expect(logs.entries.filter((entry) => entry.msg === 'request failed')).toEqual([]);
  });
});
