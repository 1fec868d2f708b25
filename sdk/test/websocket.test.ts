import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import {
  APIConnectionError,
  AuthenticationError,
  CloudPhone,
  CloudPhoneError,
  openWebSocket,
  PermissionDeniedError,
  webSocketUrl,
  type TokenPair,
} from '../src/index.js';
import { JSON_HEADERS, problem, PROBLEM_HEADERS, user } from './helpers.js';

const DEVICE = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';

describe('webSocketUrl', () => {
  it('turns http into ws and https into wss, keeping the base path and encoding the query', () => {
    const plain = new CloudPhone({ baseUrl: 'http://farm.test:8080/api/', token: 't' });
    expect(webSocketUrl(plain, 'openDeviceShell', { path: { deviceId: DEVICE }, query: { command: 'ls -l', pty: false } })).toBe(
      `ws://farm.test:8080/api/v1/devices/${DEVICE}/shell/stream?command=ls+-l&pty=false`,
    );
    const tls = new CloudPhone({ baseUrl: 'https://farm.test', token: 't' });
    expect(webSocketUrl(tls, 'openDeviceAdbTunnel', { path: { deviceId: DEVICE } })).toBe(`wss://farm.test/v1/devices/${DEVICE}/adb`);
  });
});

describe('openWebSocket', () => {
  let server: Server | undefined;
  let wss: WebSocketServer | undefined;

  afterEach(async () => {
    for (const client of wss?.clients ?? []) client.terminate();
    wss?.close();
    if (server) {
      const closing = server;
      closing.closeAllConnections();
      await new Promise((resolve) => closing.close(resolve));
    }
    server = undefined;
    wss = undefined;
  });

  /** A server that upgrades only `Bearer good` and answers a problem otherwise. */
  async function start(): Promise<{ client: (token: string, refreshToken?: string) => CloudPhone; seen: IncomingMessage[] }> {
    const seen: IncomingMessage[] = [];
    wss = new WebSocketServer({ noServer: true });
    server = createServer();
    server.on('upgrade', (req, socket, head) => {
      seen.push(req);
      if (req.headers.authorization === 'Bearer good') {
        wss!.handleUpgrade(req, socket, head, (ws) => ws.send(`hello ${req.url}`));
        return;
      }
      const expired = req.headers.authorization === 'Bearer expired';
      const status = req.headers.authorization && !expired ? 403 : 401;
      const code = expired ? 'token_expired' : status === 401 ? 'unauthenticated' : 'lease_required';
      const body = JSON.stringify(problem(status, code));
      socket.end(
        `HTTP/1.1 ${status} No\r\ncontent-type: ${PROBLEM_HEADERS['content-type']}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    // The session refresh: any refresh token gets the access token the upgrade accepts.
    server.on('request', (req, res) => {
      seen.push(req);
      const pair: TokenPair = {
        tokenType: 'Bearer',
        accessToken: 'good',
        accessTokenExpiresAt: '2026-11-20T09:45:00Z',
        refreshToken: 'cpr_2',
        refreshTokenExpiresAt: '2026-12-20T09:30:00Z',
        user,
      };
      if (req.method === 'POST' && req.url === '/v1/auth/refresh') res.writeHead(200, JSON_HEADERS).end(JSON.stringify(pair));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      seen,
      client: (token, refreshToken) =>
        new CloudPhone({ baseUrl: `http://127.0.0.1:${port}`, token, userAgent: 'test-app/1', ...(refreshToken ? { refreshToken } : {}) }),
    };
  }

  it('opens with the Authorization and User-Agent headers', async () => {
    const { client, seen } = await start();
    const socket = await openWebSocket(client('good'), 'followDeviceLogcat', { path: { deviceId: DEVICE }, query: { priority: 'W' } });
    const message = await new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))));
    expect(message).toBe(`hello /v1/devices/${DEVICE}/logcat/stream?priority=W`);
    expect(seen[0]!.headers.authorization).toBe('Bearer good');
    expect(seen[0]!.headers['user-agent']).toMatch(/^test-app\/1 cloudphone-sdk\//);
    socket.close();
  });

  it('rejects a refused upgrade with the typed APIError of its problem', async () => {
    const { client } = await start();
    const denied = await openWebSocket(client('other'), 'openDeviceShell', { path: { deviceId: DEVICE } }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PermissionDeniedError);
    expect((denied as PermissionDeniedError).code).toBe('lease_required');

    const anonymous = new CloudPhone({ baseUrl: client('x').baseUrl });
    const unauthenticated = await openWebSocket(anonymous, 'openDeviceShell', { path: { deviceId: DEVICE } }).catch((e: unknown) => e);
    expect(unauthenticated).toBeInstanceOf(AuthenticationError);
  });

  it('refreshes an expired session once and asks for the upgrade again; without a refresh token it rejects', async () => {
    const { client, seen } = await start();
    const session = client('expired', 'cpr_1');
    const socket = await openWebSocket(session, 'followDeviceLogcat', { path: { deviceId: DEVICE } });
    expect(await new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data))))).toMatch(/^hello /);
    socket.close();
    expect(seen.map((req) => `${req.method} ${req.url?.split('?')[0]} ${req.headers.authorization ?? '-'}`)).toEqual([
      `GET /v1/devices/${DEVICE}/logcat/stream Bearer expired`,
      'POST /v1/auth/refresh -',
      `GET /v1/devices/${DEVICE}/logcat/stream Bearer good`,
    ]);
    // The client keeps the new token: the next upgrade needs no refresh.
    (await openWebSocket(session, 'followDeviceLogcat', { path: { deviceId: DEVICE } })).close();
    expect(seen.slice(3).map((req) => `${req.method} ${req.headers.authorization}`)).toEqual(['GET Bearer good']);

    const plain = await openWebSocket(client('expired'), 'openDeviceShell', { path: { deviceId: DEVICE } }).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(AuthenticationError);
    expect((plain as AuthenticationError).code).toBe('token_expired');
  });

  it('rejects with APIConnectionError when nothing listens', async () => {
    const { client } = await start();
    const url = client('good').baseUrl;
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
    await expect(openWebSocket(new CloudPhone({ baseUrl: url, token: 'good' }), 'openDeviceAdbTunnel', { path: { deviceId: DEVICE } })).rejects.toBeInstanceOf(
      APIConnectionError,
    );
  });

  it('refuses HTTP operations, and request() refuses WebSocket ones', async () => {
    const client = new CloudPhone({ baseUrl: 'http://127.0.0.1:1', token: 't' });
    await expect(openWebSocket(client, 'getDevice' as never, { path: { deviceId: DEVICE } } as never)).rejects.toBeInstanceOf(CloudPhoneError);
    await expect(client.request('openDeviceShell', { path: { deviceId: DEVICE } })).rejects.toThrow(/WebSocket operation/);
  });
});
