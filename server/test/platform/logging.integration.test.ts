import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/index.js';
import { LogCapture } from './fixtures.js';

const adminPassword = 'log-test-admin-password-1';
const wrongPassword = 'log-test-wrong-password-2';

describe('logs of a real server', () => {
  let dataDir: string;
  let server: RunningServer;
  const logs = new LogCapture();

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-logging-'));
    server = await startServer({ dataDir, port: 0, adminPassword, logLevel: 'trace', logStream: logs });
  });

  afterAll(async () => {
    await server.close();
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
});
