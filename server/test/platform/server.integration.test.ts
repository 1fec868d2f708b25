import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { startServer } from '../../src/index.js';
import { createLogger } from '../../src/logger.js';
import { startAdbHost } from '../helpers/adb-host.js';
import { createServerDatabase, testEngine, type ServerDatabase } from '../helpers/database.js';
import { bearer, fakeAuthenticator, fakeHandlers, gate, LogCapture, testApp } from './fixtures.js';

describe('startServer', () => {
  let dataDir: string;
  let database: ServerDatabase;
  /** The data directory and, on PostgreSQL, the test's schema. */
  const place = () => ({ dataDir, ...(database.databaseUrl === undefined ? {} : { databaseUrl: database.databaseUrl }) });

  beforeEach(async () => {
    dataDir = join(mkdtempSync(join(tmpdir(), 'cloudphone-server-')), 'data');
    database = await createServerDatabase();
  });

  afterEach(async () => {
    await database.drop();
    rmSync(join(dataDir, '..'), { recursive: true, force: true });
  });

  it('creates the data directory, the database and the first admin once', async () => {
    const first = await startServer({ ...place(), port: 0, logStream: new LogCapture() });
    try {
      expect(first.url).toBe(`http://127.0.0.1:${first.port}`);
      expect(first.port).toBeGreaterThan(0);
      expect(first.initialAdmin?.username).toBe('admin');
      expect(first.initialAdmin?.password.length).toBeGreaterThanOrEqual(12);
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      const health = await fetch(`${first.url}/healthz`);
      expect(await health.json()).toEqual({ status: 'ok' });
    } finally {
      await first.close();
    }

    const second = await startServer({ ...place(), port: 0, logStream: new LogCapture() });
    try {
      expect(second.initialAdmin).toBeNull();
    } finally {
      await second.close();
    }
  });

  // The write-ahead log is SQLite's; PostgreSQL keeps nothing in the data directory.
  it.skipIf(testEngine === 'postgres')('checkpoints the write-ahead log into the database file on close', async () => {
    const server = await startServer({ ...place(), port: 0, logStream: new LogCapture() });
    await fetch(`${server.url}/readyz`);
    await server.close();
    const wal = join(dataDir, 'cloudphone.db-wal');
    expect(!existsSync(wal) || statSync(wal).size === 0).toBe(true);
  });

  it('closes once however often close() is called', async () => {
    const server = await startServer({ ...place(), port: 0, logStream: new LogCapture() });
    await Promise.all([server.close(), server.close()]);
    await server.close();
  });

  it('closes at once when stopped while it is still connecting to an ADB server', async () => {
    const adb = await startAdbHost();
    try {
      const server = await startServer({
        ...place(),
        port: 0,
        logStream: new LogCapture(),
        adbServers: [`127.0.0.1:${adb.port}`],
      });
      const closed = server.close().then(() => 'closed');
      const late = new Promise((resolve) => setTimeout(() => resolve('still open after 5 s'), 5_000).unref());
      expect(await Promise.race([closed, late])).toBe('closed');
    } finally {
      await adb.stop();
    }
  });

  it('fails with the configuration error before touching the data directory', async () => {
    await expect(startServer({ ...place(), port: 'eighty' })).rejects.toThrow(
      'port: expected an integer from 0 to 65535, got "eighty"',
    );
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('requests during the start', () => {
  it('wait until the server has started, and are answered 503 when the start fails', async () => {
    const t = await testApp();
    const apps = [true, false].map((succeeds) => {
      const started = gate();
      const app = buildApp({
        config: t.config,
        database: t.database,
        domains: {
          handlers: fakeHandlers({ getMe: async () => ({ status: 200, body: { answered: true } }) }),
          authenticator: fakeAuthenticator,
        },
        clock: () => new Date(),
        logger: createLogger({ level: 'silent', node: t.config.nodeName }),
        started: started.promise.then(() => {
          if (!succeeds) throw new Error('the devices did not start');
        }),
      });
      return { app, started };
    });
    try {
      for (const { app } of apps) await app.listen({ host: '127.0.0.1', port: 0 });
      const [good, bad] = apps.map(({ app }) => {
        const { port } = app.server.address() as { port: number };
        let settled = false;
        const response = fetch(`http://127.0.0.1:${port}/v1/me`, { headers: bearer('member') }).then(async (r) => {
          settled = true;
          return { status: r.status, body: (await r.json()) as Record<string, unknown> };
        });
        return { response, settled: () => settled };
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect([good!.settled(), bad!.settled()]).toEqual([false, false]);

      for (const { started } of apps) started.open();
      expect(await good!.response).toEqual({ status: 200, body: { answered: true } });
      expect(await bad!.response).toMatchObject({ status: 503, body: { code: 'service_unavailable' } });
    } finally {
      await Promise.all(apps.map(({ app }) => app.close()));
      await t.close();
    }
  });
});

/** Sends raw HTTP/1.1 on one connection and collects everything the server sends until it closes it. */
function rawConnection(port: number) {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    received += chunk;
  });
  const ended = new Promise<string>((resolve, reject) => {
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
  return {
    connected: new Promise<void>((resolve) => socket.once('connect', () => resolve())),
    send(request: string) {
      socket.write(request);
    },
    ended,
  };
}

describe('graceful shutdown', () => {
  it('finishes in-flight requests, answers /readyz with 503 meanwhile, then closes', async () => {
    const entered = gate();
    const release = gate();
    const t = await testApp({
      handlers: fakeHandlers({
        getMe: async () => {
          entered.open();
          await release.promise;
          return { status: 200, body: { finished: true } };
        },
      }),
    });
    const draining = gate();
    const readinessAsked = gate();
    t.app.addHook('preClose', async () => draining.open());
    t.app.addHook('onRequest', async (request) => {
      if (request.url === '/readyz') readinessAsked.open();
    });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as { port: number };

    const connection = rawConnection(port);
    await connection.connected;
    connection.send('GET /v1/me HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer member\r\n\r\n');
    await entered.promise;

    let closed = false;
    const closing = t.close().then(() => {
      closed = true;
    });
    await draining.promise;
    connection.send('GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n');
    await readinessAsked.promise;
    expect(closed).toBe(false);

    release.open();
    const received = await connection.ended;
    await closing;

    const responses = received.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(responses[0]).toContain('{"finished":true}');
    expect(responses[1]).toMatch(/^HTTP\/1\.1 503 /);
    expect(responses[1]).toMatch(/\r\nconnection: close\r\n/i);
    expect(responses[1]).toContain('"code":"service_unavailable"');
    expect(closed).toBe(true);
  });
});
