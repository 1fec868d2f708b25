import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ApiError } from '../../src/http/errors.js';
import { webSocketHandler, type Handlers } from '../../src/http/handler.js';
import { bearer, fakeHandlers, gate, testApp, type FakeHandler, type TestApp } from './fixtures.js';

const DEVICE = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Sends a request whose body is written chunk by chunk, `between` running after the first chunk. */
function send(
  base: string,
  options: { method: string; path: string; headers?: Record<string, string>; chunks?: Buffer[]; between?: () => Promise<void> },
): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${options.path}`, { method: options.method, headers: options.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    const [first, ...rest] = options.chunks ?? [];
    if (first === undefined) {
      req.end();
      return;
    }
    req.write(first);
    void (async () => {
      await options.between?.();
      for (const chunk of rest) req.write(chunk);
      req.end();
    })().catch(reject);
  });
}

/** Opens a WebSocket; resolves with the socket once open, or the refusal's status, headers and body. */
function connect(
  url: string,
  headers: Record<string, string>,
): Promise<{ socket: WebSocket; messages: Messages } | { status: number; contentType: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    // Frames may arrive with the 101 response: collect them from the start.
    const messages = new Messages(socket);
    socket.on('open', () => resolve({ socket, messages }));
    socket.on('error', reject);
    socket.on('unexpected-response', (_req, res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body: Buffer.concat(parts).toString() });
        socket.terminate();
      });
    });
  });
}

class Messages {
  readonly #queue: string[] = [];
  readonly #waiting: ((message: string) => void)[] = [];

  constructor(socket: WebSocket) {
    socket.on('message', (data) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter(String(data));
      else this.#queue.push(String(data));
    });
  }

  next(): Promise<string> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

describe('binary bodies and WebSocket operations', () => {
  let t: TestApp;
  let base: string;
  const firstChunkSeen = gate();
  const upgraded: string[] = [];

  beforeAll(async () => {
    const handlers = fakeHandlers({
      pushDeviceFile: (async ({ body, query }) => {
        expect(body).toBeInstanceOf(Readable);
        const stream = body as unknown as Readable;
        let size = 0;
        for await (const chunk of stream) {
          if (size === 0) firstChunkSeen.open();
          size += (chunk as Buffer).length;
        }
        return { status: 201, body: { path: (query as { path: string }).path, size } };
      }) as FakeHandler,
      pullDeviceFile: (async () => ({
        status: 200,
        body: Readable.from([Buffer.from('hello '), Buffer.from('file')]),
        headers: { 'content-length': '10' },
      })) as FakeHandler,
      takeDeviceScreenshot: (async () => ({
        status: 200,
        body: Buffer.from([0x89, 0x50, 0x4e, 0x47]),
      })) as FakeHandler,
    }) as unknown as Record<string, unknown>;
    handlers.openDeviceShell = webSocketHandler<'openDeviceShell'>(
      (socket, input) => {
        upgraded.push(input.params.deviceId);
        socket.send(JSON.stringify({ query: input.query, user: input.ctx.principal?.username }));
        socket.on('message', (data) => socket.send(`echo:${String(data)}`));
      },
      {
        preUpgrade: async (input) => {
          if (input.ctx.principal?.role !== 'admin') throw new ApiError('insufficient_role', 'Only admins in this test.');
        },
      },
    );
    handlers.followDeviceLogcat = webSocketHandler<'followDeviceLogcat'>(() => {
      throw new Error('boom');
    });
    t = await testApp({ handlers: handlers as unknown as Handlers });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await t.close();
  });

  it('hands an application/octet-stream body to the handler as an unbuffered stream', async () => {
    const response = await send(base, {
      method: 'PUT',
      path: `/v1/devices/${DEVICE}/files/content?path=/sdcard/a.bin`,
      headers: { ...bearer('member'), 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
      chunks: [Buffer.alloc(1000, 1), Buffer.alloc(24, 2)],
      // The rest is only sent once the handler has read the first chunk: nothing buffered the whole body.
      between: () => firstChunkSeen.promise,
    });
    expect(response.status).toBe(201);
    expect(JSON.parse(response.body.toString())).toEqual({ path: '/sdcard/a.bin', size: 1024 });
  });

  it('refuses JSON for a binary operation and octet-stream for a JSON one with 415', async () => {
    const json = await send(base, {
      method: 'PUT',
      path: `/v1/devices/${DEVICE}/files/content?path=/sdcard/a.bin`,
      headers: { ...bearer('member'), 'content-type': 'application/json' },
      chunks: [Buffer.from('"x"')],
    });
    expect(json.status).toBe(415);
    const bytes = await send(base, {
      method: 'POST',
      path: '/v1/users',
      headers: { ...bearer('admin'), 'content-type': 'application/octet-stream' },
      chunks: [Buffer.from('abc')],
    });
    expect(bytes.status).toBe(415);
    expect(bytes.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(bytes.body.toString()).code).toBe('unsupported_media_type');
  });

  it('sends binary responses with the contract content type, streamed or from a buffer', async () => {
    const file = await send(base, { method: 'GET', path: `/v1/devices/${DEVICE}/files/content?path=/sdcard/a.txt`, headers: bearer('member') });
    expect(file.status).toBe(200);
    expect(file.headers['content-type']).toBe('application/octet-stream');
    expect(file.body.toString()).toBe('hello file');
    const png = await send(base, { method: 'GET', path: `/v1/devices/${DEVICE}/screenshot`, headers: bearer('member') });
    expect(png.headers['content-type']).toBe('image/png');
    expect([...png.body]).toEqual([0x89, 0x50, 0x4e, 0x47]);
  });

  it('answers an unauthenticated upgrade with a 401 problem and never upgrades', async () => {
    const url = `${base.replace('http', 'ws')}/v1/devices/${DEVICE}/shell/stream`;
    const result = await connect(url, {});
    expect('status' in result && result.status).toBe(401);
    if (!('status' in result)) return;
    expect(result.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(result.body).code).toBe('unauthenticated');
    const bad = await connect(url, { authorization: 'Bearer nobody' });
    expect('status' in bad && bad.status).toBe(401);
    expect(upgraded).toEqual([]);
  });

  it('validates the upgrade request and runs preUpgrade before upgrading', async () => {
    const invalid = await connect(`${base.replace('http', 'ws')}/v1/devices/${DEVICE}/shell/stream?rows=lots`, bearer('admin'));
    expect('status' in invalid && invalid.status).toBe(400);
    const refused = await connect(`${base.replace('http', 'ws')}/v1/devices/${DEVICE}/shell/stream`, bearer('member'));
    expect('status' in refused && refused.status).toBe(403);
    if ('status' in refused) expect(JSON.parse(refused.body).code).toBe('insufficient_role');
    expect(upgraded).toEqual([]);
  });

  it('upgrades with a valid token and hands the handler the validated input', async () => {
    const result = await connect(`${base.replace('http', 'ws')}/v1/devices/${DEVICE}/shell/stream?pty=true&rows=40`, bearer('admin'));
    if (!('socket' in result)) throw new Error(`not upgraded: ${JSON.stringify(result)}`);
    const { socket, messages } = result;
    expect(JSON.parse(await messages.next())).toEqual({ query: { pty: true, rows: 40 }, user: 'admin' });
    socket.send('hi');
    expect(await messages.next()).toBe('echo:hi');
    socket.close();
    expect(upgraded).toEqual([DEVICE]);
  });

  it('answers a plain GET to a WebSocket operation with 400', async () => {
    const response = await send(base, { method: 'GET', path: `/v1/devices/${DEVICE}/shell/stream`, headers: bearer('admin') });
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body.toString()).code).toBe('validation_failed');
  });

  it('closes with an error frame and 1011 when a handler throws after the upgrade', async () => {
    const result = await connect(`${base.replace('http', 'ws')}/v1/devices/${DEVICE}/logcat/stream`, bearer('member'));
    if (!('socket' in result)) throw new Error('not upgraded');
    const closed = new Promise<number>((resolve) => result.socket.on('close', (c) => resolve(c)));
    expect(JSON.parse(await result.messages.next())).toMatchObject({ type: 'error', code: 'internal_error' });
    expect(await closed).toBe(1011);
  });
});

describe('shutdown with open WebSockets', () => {
  it('closes them (1001) instead of hanging', async () => {
    const handlers = fakeHandlers() as unknown as Record<string, unknown>;
    handlers.openDeviceAdbTunnel = webSocketHandler<'openDeviceAdbTunnel'>(() => undefined);
    const t = await testApp({ handlers: handlers as unknown as Handlers });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (t.app.server.address() as AddressInfo).port;
    const result = await connect(`ws://127.0.0.1:${port}/v1/devices/${DEVICE}/adb`, bearer('member'));
    if (!('socket' in result)) throw new Error('not upgraded');
    const closed = new Promise<number>((resolve) => result.socket.on('close', (c) => resolve(c)));
    const started = Date.now();
    await t.close();
    expect(await closed).toBe(1001);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
