import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { APITimeoutError, BinaryResponse, CloudPhone, ConflictError, InternalServerError, NotFoundError } from '../src/index.js';
import { JSON_HEADERS, mockClient, problem, PROBLEM_HEADERS } from './helpers.js';

const DEVICE = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';
const FILE_PATH = `/v1/devices/${DEVICE}/files/content?path=%2Fsdcard%2Fa.bin`;

describe('binary responses (MockAgent)', () => {
  it('resolves pullFile to a BinaryResponse with the content type, length and unbuffered body', async () => {
    const { pool, client, header } = mockClient();
    pool
      .intercept({ path: FILE_PATH, method: 'GET' })
      .reply(200, Buffer.from('hello file'), { headers: { 'content-type': 'application/octet-stream', 'content-length': '10' } });

    const response = await client.devices.pullFile(DEVICE, { path: '/sdcard/a.bin' });
    expect(response).toBeInstanceOf(BinaryResponse);
    expect(response.contentType).toBe('application/octet-stream');
    expect(response.contentLength).toBe(10);
    expect(response.body).toBeInstanceOf(Readable);
    expect(await response.text()).toBe('hello file');
    expect(header('accept')).toEqual(['application/octet-stream, application/problem+json']);
  });

  it('reads bytes, and writes a file with toFile', async () => {
    const { pool, client } = mockClient();
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]);
    pool.intercept({ path: `/v1/devices/${DEVICE}/screenshot` }).reply(200, png, { headers: { 'content-type': 'image/png' } });
    pool.intercept({ path: `/v1/devices/${DEVICE}/screenshot` }).reply(200, png, { headers: { 'content-type': 'image/png' } });

    const first = await client.devices.takeScreenshot(DEVICE);
    expect(first.contentType).toBe('image/png');
    expect(first.contentLength).toBe(null);
    expect([...(await first.bytes())]).toEqual([...png]);

    const dir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-'));
    try {
      await (await client.devices.takeScreenshot(DEVICE)).toFile(join(dir, 'screen.png'));
      expect([...readFileSync(join(dir, 'screen.png'))]).toEqual([...png]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('turns an error of a binary operation into the typed APIError from its problem', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: FILE_PATH }).reply(404, problem(404, 'file_not_found'), { headers: PROBLEM_HEADERS });

    const error = await client.devices.pullFile(DEVICE, { path: '/sdcard/a.bin' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).code).toBe('file_not_found');
  });
});

describe('binary uploads (MockAgent)', () => {
  it('sends a Uint8Array as application/octet-stream and retries it like any call', async () => {
    const { pool, client, calls, header } = mockClient();
    pool.intercept({ path: FILE_PATH, method: 'PUT' }).reply(503, problem(503, 'service_unavailable'), { headers: PROBLEM_HEADERS });
    pool
      .intercept({ path: FILE_PATH, method: 'PUT' })
      .reply(201, { path: '/sdcard/a.bin', size: 3 }, { headers: JSON_HEADERS });

    const result = await client.devices.pushFile(DEVICE, new TextEncoder().encode('abc'), { path: '/sdcard/a.bin' });
    expect(result).toEqual({ path: '/sdcard/a.bin', size: 3 });
    expect(calls()).toHaveLength(2);
    expect(header('content-type')).toEqual(['application/octet-stream', 'application/octet-stream']);
  });

  it('never retries a streamed body', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: FILE_PATH, method: 'PUT' }).reply(503, problem(503, 'service_unavailable'), { headers: PROBLEM_HEADERS });

    const stream = Readable.from([Buffer.from('ab'), Buffer.from('c')]);
    await expect(client.devices.pushFile(DEVICE, stream, { path: '/sdcard/a.bin' })).rejects.toBeInstanceOf(InternalServerError);
    expect(calls()).toHaveLength(1);
  });
});

describe('streaming against a real server', () => {
  let server: Server | undefined;

  afterEach(async () => {
    if (server) {
      const closing = server;
      closing.closeAllConnections();
      await new Promise((resolve) => closing.close(resolve));
    }
    server = undefined;
  });

  async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<CloudPhone> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new CloudPhone({ baseUrl: `http://127.0.0.1:${port}`, token: 'cpa_t', maxRetries: 0 });
  }

  it('streams an upload from a Readable, an async iterable or a web ReadableStream', async () => {
    const received: string[] = [];
    const client = await serve((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        received.push(`${req.headers['content-type']} ${Buffer.concat(parts).toString()}`);
        res.writeHead(201, JSON_HEADERS).end(JSON.stringify({ path: '/sdcard/a.bin', size: Buffer.concat(parts).length }));
      });
    });
    async function* chunks() {
      yield new TextEncoder().encode('it');
      yield new TextEncoder().encode('er');
    }
    await client.devices.pushFile(DEVICE, Readable.from([Buffer.from('read'), Buffer.from('able')]), { path: '/sdcard/a.bin' });
    await client.devices.pushFile(DEVICE, chunks(), { path: '/sdcard/a.bin' });
    await client.devices.pushFile(DEVICE, new Blob(['web']).stream(), { path: '/sdcard/a.bin' });
    await client.devices.pushFile(DEVICE, 'text', { path: '/sdcard/a.bin' });
    expect(received).toEqual([
      'application/octet-stream readable',
      'application/octet-stream iter',
      'application/octet-stream web',
      'application/octet-stream text',
    ]);
  });

  it('lets an upload take longer than the timeout while chunks keep flowing', async () => {
    const client = await serve((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(201, JSON_HEADERS).end(JSON.stringify({ path: '/x', size: 0 })));
    });
    async function* slow() {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 40));
        yield new Uint8Array(10);
      }
    }
    await expect(client.devices.pushFile(DEVICE, slow(), { path: '/x' }, { timeout: 120 })).resolves.toEqual({ path: '/x', size: 0 });
  });

  it('does not cut a download that takes longer than the timeout while bytes flow, but fails a stalled one', async () => {
    const client = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let sent = 0;
      const stall = req.url!.includes('stall');
      const timer = setInterval(() => {
        sent += 1;
        res.write('x');
        if (stall && sent === 2) clearInterval(timer);
        else if (sent === 6) {
          clearInterval(timer);
          res.end();
        }
      }, 40);
      res.on('close', () => clearInterval(timer));
    });
    const flowing = await client.devices.pullFile(DEVICE, { path: '/flow' }, { timeout: 120 });
    expect(await flowing.text()).toBe('xxxxxx');

    const stalled = await client.devices.pullFile(DEVICE, { path: '/stall' }, { timeout: 120 });
    await expect(stalled.text()).rejects.toBeInstanceOf(APITimeoutError);
  });

  it('maps a problem on an upload to its typed error', async () => {
    const client = await serve((req, res) => {
      req.resume();
      res.writeHead(409, PROBLEM_HEADERS).end(JSON.stringify(problem(409, 'device_offline')));
    });
    const error = await client.devices.pushFile(DEVICE, Readable.from([Buffer.from('a')]), { path: '/x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).code).toBe('device_offline');
  });
});
