import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type RunningServer } from '../../src/index.js';
import { createServerDatabase, type ServerDatabase } from '../helpers/database.js';
import { LogCapture } from './fixtures.js';

const adminPassword = 'log-test-admin-password-1';
const wrongPassword = 'log-test-wrong-password-2';

describe('logs of a real server', () => {
  let dataDir: string;
  let database: ServerDatabase;
  let server: RunningServer;
  const logs = new LogCapture();

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-logging-'));
    database = await createServerDatabase();
    server = await startServer({
      dataDir,
      ...(database.databaseUrl === undefined ? {} : { databaseUrl: database.databaseUrl }),
      port: 0,
      adminPassword,
      logLevel: 'trace',
      logStream: logs,
      virtualDevices: 1,
    });
  });

  afterAll(async () => {
    await server.close();
    await database.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(method: string, path: string, options: { token?: string; body?: unknown } = {}) {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const json = response.headers.get('content-type')?.includes('json');
    return { status: response.status, body: json ? ((await response.json()) as Record<string, any>) : null };
  }

  it('never contain credentials', async () => {
    expect(
      (await call('POST', '/v1/auth/login', { body: { username: 'admin', password: wrongPassword } })).status,
    ).toBe(401);
    expect(
      (await call('POST', '/v1/auth/login', { body: { username: 'admin', password: wrongPassword, extra: true } }))
        .status,
    ).toBe(400);

    const login = await call('POST', '/v1/auth/login', { body: { username: 'admin', password: adminPassword } });
    expect(login.status).toBe(200);
    const { accessToken, refreshToken } = login.body!;
    expect(accessToken).toMatch(/^cpa_/);
    expect(refreshToken).toMatch(/^cpr_/);

    expect((await call('GET', '/v1/me', { token: accessToken })).status).toBe(200);
    const created = await call('POST', '/v1/tokens', { token: accessToken, body: { name: 'ci', scopes: ['read'] } });
    expect(created.status).toBe(201);
    const secret = created.body!.secret as string;
    expect(secret).toMatch(/^cpt_/);
    expect((await call('GET', '/v1/me', { token: secret })).status).toBe(200);
    expect((await call('GET', '/metrics', { token: secret })).status).toBe(200);
    expect((await call('GET', '/v1/me', { token: `${accessToken}x` })).status).toBe(401);

    const refreshed = await call('POST', '/v1/auth/refresh', { body: { refreshToken } });
    expect(refreshed.status).toBe(200);
    expect(
      (await call('POST', '/v1/auth/logout', { body: { refreshToken: refreshed.body!.refreshToken } })).status,
    ).toBe(204);

    const completed = logs.entries.filter((e) => e.msg === 'request completed');
    expect(completed.length).toBeGreaterThanOrEqual(10);
    for (const secretText of ['cpa_', 'cpr_', 'cpt_', adminPassword, wrongPassword]) {
      expect(logs.text).not.toContain(secretText);
    }
  });

  it('record each WebSocket session when it opens and when it closes, with its duration and bytes', async () => {
    const login = await call('POST', '/v1/auth/login', { body: { username: 'admin', password: adminPassword } });
    const token = login.body!.accessToken as string;
    const lease = await call('POST', '/v1/leases', { token, body: { count: 1, waitSeconds: 30 } });
    expect(lease.status).toBe(201);
    const deviceId = lease.body!.devices[0].id as string;

    const socket = new WebSocket(
      `${server.url.replace('http', 'ws')}/v1/devices/${deviceId}/shell/stream?command=${encodeURIComponent('echo hello')}`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    const received: Buffer[] = [];
    socket.on('message', (data: Buffer) => received.push(data));
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    expect(await closed).toBe(1000);
    expect(Buffer.concat(received).toString()).toContain('"type":"exit"');

    const sessionLines = async () => {
      for (let i = 0; i < 50 && !logs.entries.some((e) => e.msg === 'websocket closed'); i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return logs.entries.filter((e) => e.msg === 'websocket opened' || e.msg === 'websocket closed');
    };
    const [opened, ended, ...rest] = await sessionLines();
    expect(rest).toEqual([]);
    const common = {
      operationId: 'openDeviceShell',
      path: `/v1/devices/${deviceId}/shell/stream`,
      userId: login.body!.user?.id ?? expect.stringMatching(/^usr_/),
    };
    expect(opened).toMatchObject({ ...common, msg: 'websocket opened', requestId: expect.stringMatching(/^req_/) });
    expect(ended).toMatchObject({ ...common, msg: 'websocket closed', requestId: opened!.requestId, code: 1000 });
    expect(ended!.ms).toEqual(expect.any(Number));
    // The server sent the output and the exit frame; the client sent at least its close frame.
    expect(ended!.bytesOut).toBeGreaterThanOrEqual(Buffer.concat(received).length);
    expect(ended!.bytesIn).toBeGreaterThan(0);
    expect(logs.text).not.toContain(token);
  });
});
