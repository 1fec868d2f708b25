import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createConnection, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Adb } from '@yume-chan/adb';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAdbTunnel, type AdbTunnel } from '../../../cli/src/lib/adb-tunnel.js';
import { BUILT_IN_PROFILES, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { serveAdbTunnel, tunnelBanner } from '../../src/devices/tunnel/adb-proxy.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { connectDirect } from '../helpers/yume-chan.js';

const TOKEN = 'Bearer lease-holder';

/** A stand-in for the server's `GET /v1/devices/{id}/adb`: 403 problem without the token, else the tunnel. */
async function startTunnelServer(adb: Adb): Promise<{
  url: string;
  wss: WebSocketServer;
  stop: AbortController;
  sessions: Promise<void>[];
  errors: unknown[];
  close(): Promise<void>;
}> {
  const stop = new AbortController();
  const sessions: Promise<void>[] = [];
  const errors: unknown[] = [];
  const wss = new WebSocketServer({ noServer: true });
  const server: Server = createServer((_request, response) => response.writeHead(404).end());
  server.on('upgrade', (request, socket, head) => {
    if (request.url !== '/v1/devices/dev_1/adb' || request.headers.authorization !== TOKEN) {
      const body = JSON.stringify({
        type: 'about:blank',
        title: 'Forbidden',
        status: 403,
        code: 'lease_required',
        detail: 'Lease the device first.',
      });
      socket.end(
        `HTTP/1.1 403 Forbidden\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
          `Connection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const duplex = createWebSocketStream(ws);
      duplex.on('error', () => undefined);
      sessions.push(serveAdbTunnel(duplex, adb, { signal: stop.signal, onError: (error) => errors.push(error) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/v1/devices/dev_1/adb`,
    wss,
    stop,
    sessions,
    errors,
    async close() {
      stop.abort();
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Sends `data` to 127.0.0.1:port and resolves what comes back once as many bytes are back (ADB has no half-close). */
function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length < data.length) return;
      socket.destroy();
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed after ${length} of ${data.length} bytes`)));
    socket.write(data);
  });
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('ADB tunnel: real adb → local port → WebSocket → serveAdbTunnel → device', () => {
  let device: VirtualDevice;
  let deviceAdb: Adb;
  let server: Awaited<ReturnType<typeof startTunnelServer>>;
  let tunnel: AdbTunnel;
  let adb: AdbHost;
  let serial: string;
  let work: string;
  const tunnelErrors: Error[] = [];

  beforeAll(async () => {
    device = await startVirtualDevice({ profile: { ...BUILT_IN_PROFILES['pixel-8']!, serial: 'CPTUN0001' } });
    deviceAdb = await connectDirect(device.host, device.port);
    server = await startTunnelServer(deviceAdb);
    tunnel = await openAdbTunnel({ url: server.url, headers: { authorization: TOKEN }, onError: (e) => tunnelErrors.push(e) });
    serial = `127.0.0.1:${tunnel.port}`;
    adb = await startAdbHost();
    work = await mkdtemp(join(tmpdir(), 'cloudphone-tunnel-'));
    const connected = await adb.run('connect', serial);
    expect(connected.stdout).toContain(`connected to ${serial}`);
    expect((await adb.run('-s', serial, 'wait-for-device')).code).toBe(0);
  });

  afterAll(async () => {
    await adb?.stop();
    await tunnel?.close();
    await server?.close();
    await deviceAdb?.close();
    await device?.close();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('shows the device with its banner, without transport-level features', async () => {
    const devices = await adb.run('devices', '-l');
    expect(devices.stdout).toContain(`${serial}`);
    expect(devices.stdout).toMatch(/device product:\S+ model:Pixel_8 device:\S+/);
    const features = (await adb.run('-s', serial, 'features')).stdout.split('\n').filter(Boolean);
    expect(features).toEqual(expect.arrayContaining(['shell_v2', 'cmd', 'stat_v2', 'abb_exec']));
    expect(features).not.toContain('delayed_ack');
  });

  it('runs shell commands with their exit codes', async () => {
    expect(await adb.run('-s', serial, 'shell', 'echo', 'hi')).toMatchObject({ code: 0, stdout: 'hi\n' });
    expect((await adb.run('-s', serial, 'shell', 'false')).code).toBe(1);
    expect((await adb.run('-s', serial, 'shell', 'getprop', 'ro.product.model')).stdout).toBe('Pixel 8\n');
  });

  it('pushes and pulls 5 MB byte-exact', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const local = join(work, 'rand.bin');
    const back = join(work, 'back.bin');
    await writeFile(local, data);
    const pushed = await adb.run('-s', serial, 'push', local, '/data/local/tmp/rand.bin');
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(sha256(Buffer.from(device.state.files.read('/data/local/tmp/rand.bin')))).toBe(sha256(data));
    const pulled = await adb.run('-s', serial, 'pull', '/data/local/tmp/rand.bin', back);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(sha256(await readFile(back))).toBe(sha256(data));
  });

  it('installs a real APK', async () => {
    const installed = await adb.run('-s', serial, 'install', '-r', APKS.settings);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/^Success$/m);
    expect(device.state.packages.get('io.appium.settings')).toMatchObject({ versionCode: 192 });
    expect((await adb.run('-s', serial, 'shell', 'pm', 'list', 'packages', '-3')).stdout).toContain(
      'package:io.appium.settings\n',
    );
  });

  it('pipes standard input to a shell command', async () => {
    const child = spawn('adb', ['-P', String(adb.port), '-s', serial, 'shell', 'cat'], {
      env: { ...process.env, HOME: adb.home },
      timeout: 15_000,
    });
    const output: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk));
    child.stdin.end('piped through the tunnel\n');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(0);
    expect(Buffer.concat(output).toString()).toBe('piped through the tunnel\n');
  });

  it('forwards a host port to a port on the device (tcp: through the tunnel)', async () => {
    const echo = createTcpServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    try {
      const forwarded = await adb.run('-s', serial, 'forward', 'tcp:0', `tcp:${(echo.address() as AddressInfo).port}`);
      expect(forwarded.code, forwarded.stderr).toBe(0);
      const data = randomBytes(1024 * 1024);
      expect((await roundTrip(Number(forwarded.stdout.trim()), data)).equals(data)).toBe(true);
    } finally {
      await adb.run('-s', serial, 'forward', '--remove-all');
      await new Promise<void>((resolve) => echo.close(() => resolve()));
    }
  });

  it('reverses a device port to the host through the tunnel (adb reverse), and lists and removes reverses', async () => {
    const echo = createTcpServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPort = (echo.address() as AddressInfo).port;
    try {
      const reversed = await adb.run('-s', serial, 'reverse', 'tcp:7201', `tcp:${echoPort}`);
      expect(reversed.code, reversed.stderr).toBe(0);
      // An app on the device connecting to its port 7201 reaches the echo server on the host.
      const port = device.reversePort(7201);
      expect(port).toBeDefined();
      const data = randomBytes(1024 * 1024);
      expect((await roundTrip(port!, data)).equals(data)).toBe(true);

      const picked = await adb.run('-s', serial, 'reverse', 'tcp:0', `tcp:${echoPort}`);
      expect(picked.code, picked.stderr).toBe(0);
      const devicePort = Number(picked.stdout.trim());
      expect(device.reversePort(devicePort)).toBeDefined();
      const listed = await adb.run('-s', serial, 'reverse', '--list');
      expect(listed.stdout).toMatch(new RegExp(`^\\S+ tcp:7201 tcp:${echoPort}$`, 'm'));
      expect(listed.stdout).toMatch(new RegExp(`^\\S+ tcp:${devicePort} tcp:${echoPort}$`, 'm'));

      expect((await adb.run('-s', serial, 'reverse', '--remove', 'tcp:7201')).code).toBe(0);
      expect(device.reversePort(7201)).toBeUndefined();
      const missing = await adb.run('-s', serial, 'reverse', '--remove', 'tcp:7201');
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("listener 'tcp:7201' not found");
      expect((await adb.run('-s', serial, 'reverse', '--remove-all')).code).toBe(0);
      expect(device.reversePort(devicePort)).toBeUndefined();
      expect((await adb.run('-s', serial, 'reverse', '--list')).stdout.trim()).toBe('');
      // The transport is fine after all that.
      expect((await adb.run('-s', serial, 'shell', 'echo', 'still')).stdout).toBe('still\n');
    } finally {
      await adb.run('-s', serial, 'reverse', '--remove-all');
      await new Promise<void>((resolve) => echo.close(() => resolve()));
    }
  });

  it('serves @yume-chan/adb through the tunnel too', async () => {
    const viaTunnel = await connectDirect('127.0.0.1', tunnel.port);
    try {
      expect(viaTunnel.banner.model).toBe('Pixel 8');
      const shell = viaTunnel.subprocess.shellProtocol!;
      expect(await shell.spawnWaitText('echo direct')).toMatchObject({ stdout: 'direct\n', exitCode: 0 });
      expect((await shell.spawnWaitText('false')).exitCode).toBe(1);
      // A service the device lacks is refused through the tunnel as on the device.
      await expect(viaTunnel.createSocket('nosuchservice:')).rejects.toThrow();
      // A reverse made through the tunnel reaches a handler on this side.
      expect(await viaTunnel.reverse.list()).toEqual([]);
      await viaTunnel.reverse.add('tcp:7301', (socket) => {
        void socket.readable.pipeTo(socket.writable).catch(() => undefined);
      });
      const data = randomBytes(64 * 1024);
      expect((await roundTrip(device.reversePort(7301)!, data)).equals(data)).toBe(true);
      await viaTunnel.reverse.remove('tcp:7301');
      expect(device.reversePort(7301)).toBeUndefined();
    } finally {
      await viaTunnel.close();
    }
  });

  it('rejects at once when the upgrade is refused, with the problem code', async () => {
    const refused = openAdbTunnel({ url: server.url, headers: { authorization: 'Bearer someone-else' } });
    await expect(refused).rejects.toMatchObject({
      name: 'AdbTunnelError',
      status: 403,
      code: 'lease_required',
      detail: 'Lease the device first.',
    });
    await expect(refused).rejects.toThrow(/403 Lease the device first\. \(lease_required\)/);
  });

  it('disconnects adb when the server ends the tunnel, and closes cleanly', async () => {
    expect(tunnel.connections()).toBeGreaterThan(0);
    // A reverse left in place goes with the tunnel: the next holder's device has none.
    expect((await adb.run('-s', serial, 'reverse', 'tcp:7401', 'tcp:9')).code).toBe(0);
    expect(device.reversePort(7401)).toBeDefined();
    // As the server does when the lease ends: close code 4001, then the signal (which also refuses reconnections).
    for (const client of server.wss.clients) client.close(4001, 'lease ended');
    await new Promise((resolve) => setTimeout(resolve, 100));
    server.stop.abort();
    await Promise.all(server.sessions);
    expect(device.reversePort(7401)).toBeUndefined();
    const deadline = Date.now() + 10_000;
    let listed = '';
    for (;;) {
      listed = (await adb.run('devices')).stdout;
      const line = listed.split('\n').find((entry) => entry.startsWith(`${serial}\t`));
      if (line === undefined || line.endsWith('offline')) break;
      if (Date.now() > deadline) throw new Error(`adb still lists the device: ${listed}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await adb.run('-s', serial, 'shell', 'echo', 'hi')).code).not.toBe(0);
    await tunnel.close();
    expect(tunnel.connections()).toBe(0);
    // The device's own connection is untouched.
    expect(await deviceAdb.subprocess.noneProtocol.spawnWaitText('echo alive')).toBe('alive\n');
    expect(server.errors).toEqual([]);
    expect(tunnelErrors.map((error) => error.message)).toContain('The server closed the ADB tunnel: lease ended (4001)');
  });
});

describe('tunnelBanner', () => {
  it("shows the device's identity, drops delayed_ack and marks itself as a tunnel", () => {
    const adb = {
      banner: { product: 'p', model: 'M', device: 'd', features: ['shell_v2', 'delayed_ack', 'cmd'] },
    } as unknown as Adb;
    expect(tunnelBanner(adb)).toBe(
      'device::ro.product.name=p;ro.product.model=M;ro.product.device=d;features=shell_v2,cmd,cloudphone_tunnel',
    );
  });
});
