import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CloudPhone,
  DeviceHandle,
  DeviceStreamError,
  LeaseEndedError,
  PermissionDeniedError,
  ShellSession,
  type LogEntry,
} from '../src/index.js';
import { JSON_HEADERS, mockClient, problem, PROBLEM_HEADERS } from './helpers.js';

const DEVICE = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';
const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-device-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('DeviceHandle over HTTP (MockAgent)', () => {
  it('shell sends command or argv and a timeout long enough for the device', async () => {
    const { pool, client, calls } = mockClient();
    const result = { exitCode: 0, stdout: 'Pixel\n', stderr: '', timedOut: false, truncated: false, durationMs: 5 };
    pool.intercept({ path: `/v1/devices/${DEVICE}/shell`, method: 'POST' }).reply(200, result, { headers: JSON_HEADERS }).times(2);

    const device = client.devices.handle(DEVICE);
    expect(device).toBeInstanceOf(DeviceHandle);
    expect(await device.shell('getprop ro.product.model', { timeoutSeconds: 10 })).toEqual(result);
    await device.shell(['echo', 'a b'], { stdin: 'x' });
    expect(calls().map((call) => JSON.parse(String(call.body)))).toEqual([
      { command: 'getprop ro.product.model', timeoutSeconds: 10 },
      { argv: ['echo', 'a b'], stdin: 'x' },
    ]);
  });

  it('screenshot resolves to the PNG bytes, screenshotTo writes them', async () => {
    const { pool, client } = mockClient();
    pool
      .intercept({ path: `/v1/devices/${DEVICE}/screenshot`, method: 'GET' })
      .reply(200, PNG, { headers: { 'content-type': 'image/png' } })
      .times(2);
    const device = client.devices.handle(DEVICE);
    expect(Buffer.from(await device.screenshot())).toEqual(PNG);
    const file = join(dir, 'screen.png');
    expect(await device.screenshotTo(file)).toBe(PNG.length);
    expect(readFileSync(file)).toEqual(PNG);
  });

  it('ls, logcat, packages, input sugar, refresh', async () => {
    const { pool, client, calls } = mockClient();
    const entry: LogEntry = { time: '2026-11-20T09:30:00.000Z', pid: 1, tid: 1, priority: 'W', tag: 'T', message: 'm' };
    pool
      .intercept({ path: `/v1/devices/${DEVICE}/files?path=%2Fsdcard`, method: 'GET' })
      .reply(200, { path: '/sdcard', entries: [{ name: 'a', type: 'file', size: 1, mode: 0o644, modifiedAt: entry.time }] }, {
        headers: JSON_HEADERS,
      });
    pool
      .intercept({ path: `/v1/devices/${DEVICE}/logcat?priority=W&tail=10`, method: 'GET' })
      .reply(200, { entries: [entry] }, { headers: JSON_HEADERS });
    pool
      .intercept({ path: `/v1/devices/${DEVICE}/packages?thirdParty=true`, method: 'GET' })
      .reply(200, { data: [{ packageName: 'com.example', versionCode: 1, versionName: '1.0' }] }, { headers: JSON_HEADERS });
    pool.intercept({ path: `/v1/devices/${DEVICE}/input`, method: 'POST' }).reply(204, '').times(4);
    pool
      .intercept({ path: `/v1/devices/${DEVICE}`, method: 'GET' })
      .reply(200, { id: DEVICE, serial: 'CPVIRT0001', state: 'online' }, { headers: JSON_HEADERS });

    const device = client.devices.handle(DEVICE);
    expect((await device.ls('/sdcard')).map((e) => e.name)).toEqual(['a']);
    expect(await device.logcat({ priority: 'W', tail: 10 })).toEqual([entry]);
    expect(await device.packages({ thirdParty: true })).toEqual([{ packageName: 'com.example', versionCode: 1, versionName: '1.0' }]);
    await device.tap(1, 2);
    await device.swipe(1, 2, 3, 4, 100);
    await device.text('hi there');
    await device.key('HOME');
    const inputs = calls()
      .filter((call) => call.path.endsWith('/input'))
      .map((call) => JSON.parse(String(call.body)));
    expect(inputs).toEqual([
      { type: 'tap', x: 1, y: 2 },
      { type: 'swipe', x1: 1, y1: 2, x2: 3, y2: 4, durationMs: 100 },
      { type: 'text', text: 'hi there' },
      { type: 'keyevent', key: 'HOME' },
    ]);
    await device.refresh();
    expect(device.serial).toBe('CPVIRT0001');
    expect(device.state).toBe('online');
  });
});

/** A fake device server: HTTP handlers by path, plus the §5 WebSocket framing for shell and logcat streams. */
describe('DeviceHandle against a real HTTP and WebSocket server', () => {
  let server: Server;
  let wss: WebSocketServer;
  let client: CloudPhone;
  let onShell: (ws: WebSocket, url: URL) => void = () => undefined;
  let onLogcat: (ws: WebSocket, url: URL) => void = () => undefined;
  const uploads: { url: string; sha256: string; size: number }[] = [];
  let download = Buffer.alloc(0);

  beforeAll(async () => {
    wss = new WebSocketServer({ noServer: true });
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'PUT' && url.pathname.endsWith('/files/content')) {
        const hash = createHash('sha256');
        let size = 0;
        req.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          size += chunk.length;
        });
        req.on('end', () => {
          uploads.push({ url: req.url!, sha256: hash.digest('hex'), size });
          res.writeHead(201, JSON_HEADERS).end(JSON.stringify({ path: url.searchParams.get('path'), size }));
        });
        return;
      }
      if (req.method === 'GET' && url.pathname.endsWith('/files/content')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(download.length) });
        res.end(download);
        return;
      }
      res.writeHead(404, PROBLEM_HEADERS).end(JSON.stringify(problem(404, 'not_found')));
    });
    server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url!, 'http://x');
      if (req.headers.authorization !== 'Bearer good') {
        const body = JSON.stringify(problem(403, 'lease_required'));
        socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/problem+json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        if (url.pathname.endsWith('/shell/stream')) onShell(ws, url);
        else onLogcat(ws, url);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new CloudPhone({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'good', maxRetries: 0 });
  });

  afterEach(() => {
    for (const ws of wss.clients) ws.terminate();
  });

  afterAll(async () => {
    wss.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('push streams a local file (every byte arrives) and takes bytes and streams too', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const file = join(dir, 'upload.bin');
    writeFileSync(file, bytes);
    const device = client.devices.handle(DEVICE);
    const result = await device.push(file, '/data/local/tmp/upload.bin', { mode: 0o644 });
    expect(result).toEqual({ path: '/data/local/tmp/upload.bin', size: bytes.length });
    expect(uploads.at(-1)).toEqual({
      url: `/v1/devices/${DEVICE}/files/content?path=%2Fdata%2Flocal%2Ftmp%2Fupload.bin&mode=420`,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
    });
    await device.push(new TextEncoder().encode('abc'), '/x');
    await device.push(Readable.from([Buffer.from('de'), Buffer.from('f')]), '/y');
    expect(uploads.slice(-2).map((u) => u.size)).toEqual([3, 3]);
  });

  it('push of a missing local file fails before any request', async () => {
    const before = uploads.length;
    await expect(client.devices.handle(DEVICE).push(join(dir, 'missing.bin'), '/x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(uploads.length).toBe(before);
  });

  it('pull and pullTo stream the file byte-exact', async () => {
    download = randomBytes(1024 * 1024);
    const device = client.devices.handle(DEVICE);
    const response = await device.pull('/sdcard/a.bin');
    expect(response.contentLength).toBe(download.length);
    expect(Buffer.from(await response.bytes()).equals(download)).toBe(true);
    const local = join(dir, 'pulled.bin');
    expect(await device.pullTo('/sdcard/a.bin', local)).toBe(download.length);
    expect(readFileSync(local).equals(download)).toBe(true);
  });

  it('openShell: stdin as binary frames, eof, stdout/stderr by channel byte, exit code', async () => {
    const received: unknown[] = [];
    onShell = (ws, url) => {
      received.push(`url ${url.search}`);
      ws.on('message', (data, isBinary) => {
        if (isBinary) {
          received.push(`stdin ${String(data)}`);
          ws.send(Buffer.concat([Buffer.from([1]), data as Buffer]));
          ws.send(Buffer.concat([Buffer.from([2]), Buffer.from('warn\n')]));
          return;
        }
        const frame = JSON.parse(String(data)) as { type: string };
        received.push(frame);
        if (frame.type === 'eof') {
          ws.send(JSON.stringify({ type: 'exit', exitCode: 3 }));
          ws.close(1000);
        }
      });
    };
    const session = await client.devices.handle(DEVICE).openShell({ command: 'cat', pty: false, rows: 24, cols: 80 });
    expect(session).toBeInstanceOf(ShellSession);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    session.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    session.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    await session.write('hello\n');
    await session.resize(30, 100);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await session.end();
    expect(await session.exited).toBe(3);
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(stdout).toString()).toBe('hello\n');
    expect(Buffer.concat(stderr).toString()).toBe('warn\n');
    expect(received).toEqual([
      'url ?command=cat&pty=false&rows=24&cols=80',
      'stdin hello\n',
      { type: 'resize', rows: 30, cols: 100 },
      { type: 'eof' },
    ]);
    await expect(session.write('late')).rejects.toBeInstanceOf(DeviceStreamError);
  });

  it('openShell: an error frame then close 1011 rejects exited with its code', async () => {
    onShell = (ws) => {
      ws.send(Buffer.from([1, 0x61]));
      ws.send(JSON.stringify({ type: 'error', code: 'device_offline', detail: 'the device went away' }));
      ws.close(1011);
    };
    const session = await client.devices.handle(DEVICE).openShell();
    const error = await session.exited.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeviceStreamError);
    expect(error).toMatchObject({ code: 'device_offline', closeCode: 1011, detail: 'the device went away' });
    // the streams still end
    const out: Buffer[] = [];
    for await (const chunk of session.stdout) out.push(chunk as Buffer);
    expect(Buffer.concat(out).toString()).toBe('a');
  });

  it('openShell: close 4001 rejects exited with LeaseEndedError; kill sends a kill frame', async () => {
    onShell = (ws) => {
      ws.on('message', (data, isBinary) => {
        if (!isBinary && (JSON.parse(String(data)) as { type: string }).type === 'kill') ws.close(4001, 'lease ended');
      });
    };
    const session = await client.devices.handle(DEVICE).openShell({ pty: true });
    await session.kill();
    const error = await session.exited.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseEndedError);
    expect(error).toMatchObject({ code: 'lease_ended', closeCode: 4001 });
  });

  it('openShell: a refused upgrade rejects with the typed APIError', async () => {
    const other = client.withOptions({ token: 'bad' });
    const error = await other.devices.handle(DEVICE).openShell().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect((error as PermissionDeniedError).code).toBe('lease_required');
  });

  const entry = (message: string): LogEntry => ({
    time: '2026-11-20T09:30:00.000Z',
    pid: 10,
    tid: 11,
    priority: 'I',
    tag: 'Test',
    message,
  });

  it('followLogcat yields text frames as LogEntries and ends on a clean close', async () => {
    let query = '';
    onLogcat = (ws, url) => {
      query = url.search;
      for (const m of ['a', 'b', 'c']) ws.send(JSON.stringify(entry(m)));
      ws.close(1000);
    };
    const seen: string[] = [];
    for await (const e of client.devices.handle(DEVICE).followLogcat({ priority: 'I', tag: ['Test'] })) seen.push(e.message);
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(query).toBe('?priority=I&tag=Test');
  });

  it('followLogcat ends with a typed error on an error frame, and with LeaseEndedError on 4001', async () => {
    onLogcat = (ws) => {
      ws.send(JSON.stringify(entry('a')));
      ws.send(JSON.stringify({ type: 'error', code: 'device_offline', detail: 'gone' }));
      ws.close(1011);
    };
    const seen: string[] = [];
    const failing = async () => {
      for await (const e of client.devices.handle(DEVICE).followLogcat()) seen.push(e.message);
    };
    await expect(failing()).rejects.toMatchObject({ name: 'DeviceStreamError', code: 'device_offline', closeCode: 1011 });
    expect(seen).toEqual(['a']);

    onLogcat = (ws) => ws.close(4001, 'lease ended');
    const ended = await (async () => {
      for await (const _ of client.devices.handle(DEVICE).followLogcat()) void _;
    })().catch((e: unknown) => e);
    expect(ended).toBeInstanceOf(LeaseEndedError);
  });

  it('followLogcat stops quietly on break and on abort, closing the socket', async () => {
    const closed: number[] = [];
    onLogcat = (ws) => {
      ws.on('close', (code) => closed.push(code));
      const timer = setInterval(() => ws.send(JSON.stringify(entry('tick'))), 5);
      ws.on('close', () => clearInterval(timer));
    };
    let count = 0;
    for await (const _ of client.devices.handle(DEVICE).followLogcat()) {
      if (++count === 3) break;
    }
    const controller = new AbortController();
    let aborted = 0;
    for await (const _ of client.devices.handle(DEVICE).followLogcat({}, { signal: controller.signal })) {
      if (++aborted === 2) controller.abort();
    }
    expect(aborted).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toEqual([1000, 1000]);
  });
});
