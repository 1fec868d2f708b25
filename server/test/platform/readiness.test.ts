import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, type AppOptions } from '../../src/app.js';
import { createLogger } from '../../src/logger.js';
import { bearer, fakeAuthenticator, fakeHandlers, gate, testApp, type TestApp } from './fixtures.js';

describe('GET /readyz', () => {
  let t: TestApp;
  let app: FastifyInstance | undefined;

  beforeEach(async () => {
    t = await testApp();
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    await t.close();
  });

  function build(options: Pick<AppOptions, 'started' | 'readiness'>): FastifyInstance {
    app = buildApp({
      config: t.config,
      database: t.database,
      domains: { handlers: fakeHandlers(), authenticator: fakeAuthenticator },
      clock: () => new Date(),
      logger: createLogger({ level: 'silent', node: t.config.nodeName }),
      ...options,
    });
    return app;
  }

  async function get(path: string) {
    const response = await app!.inject({ method: 'GET', url: path });
    return { status: response.statusCode, retryAfter: response.headers['retry-after'], body: response.json() };
  }

  it('answers 503 service_unavailable at once while the server starts, and 200 once it has', async () => {
    const started = gate();
    build({ started: started.promise });
    expect(await get('/readyz')).toEqual({
      status: 503,
      retryAfter: '5',
      body: expect.objectContaining({ code: 'service_unavailable', detail: 'The server is starting.' }),
    });
    expect(await get('/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } });

    started.open();
    await started.promise;
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { status: 'ok' } });
  });

  it('answers 503 once the start failed', async () => {
    const started = Promise.reject(new Error('the device hosts did not start'));
    build({ started });
    await started.catch(() => undefined);
    expect(await get('/readyz')).toMatchObject({
      status: 503,
      body: { code: 'service_unavailable', detail: 'The server failed to start.' },
    });
  });

  it('answers 503 with the reason readiness gives, and 200 once it gives none', async () => {
    let reason: string | null = 'The cluster connection is not up yet.';
    build({ readiness: () => reason });
    expect(await get('/readyz')).toEqual({
      status: 503,
      retryAfter: '5',
      body: expect.objectContaining({ code: 'service_unavailable', detail: 'The cluster connection is not up yet.' }),
    });
    // Readiness is for load balancers: requests that reach the node are still served.
    expect((await app!.inject({ method: 'GET', url: '/v1/me', headers: bearer('member') })).statusCode).toBe(200);

    reason = null;
    expect(await get('/readyz')).toMatchObject({ status: 200, body: { status: 'ok' } });
  });
});
