import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { defaultProfile } from '../../src/virtual-device/profile.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';

const POLL_DEADLINE_MS = 40_000;

/** A TCP server on 127.0.0.1 that sends back what it receives, prefixed per connection with `greeting`. */
async function startEchoServer(greeting = ''): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    if (greeting !== '') socket.write(greeting);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/**
 * Connects, sends `data` and resolves as many bytes as were sent once they are back, then closes. ADB streams have no
 * half-close, so the socket stays open until then.
 */
function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    let length = 0;
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      length += chunk.length;
      if (length < data.length) return;
      socket.destroy();
      resolve(Buffer.concat(received));
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed after ${length} of ${data.length} bytes`)));
    socket.write(data);
  });
}

/** Connects and resolves once the other side closes the connection, with what it sent before. */
function closedByPeer(port: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(received)));
  });
}

/** Polls `check` until it returns true, within a bounded deadline. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + POLL_DEADLINE_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleepFor(200);
  }
  throw new Error(`${what} did not happen within ${POLL_DEADLINE_MS} ms`);
}

function stateOf(devicesOutput: string, serial: string): string | undefined {
  const line = devicesOutput.split('\n').find((entry) => entry.startsWith(`${serial}\t`));
  return line?.split('\t')[1]?.trim();
}

function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
}

describe('AUTH, tunnels and reboot with the real adb client', () => {
  let adb: AdbHost;
  const devices: VirtualDevice[] = [];

  const connect = async (device: VirtualDevice): Promise<string> => {
    const serial = `127.0.0.1:${device.port}`;
    await adb.run('connect', serial);
    return serial;
  };
  const waitForState = (serial: string, state: string) =>
    eventually(async () => stateOf((await adb.run('devices')).stdout, serial) === state, `${serial} ${state}`);

  beforeAll(async () => {
    adb = await startAdbHost();
  });

  afterAll(async () => {
    await adb?.stop();
    await Promise.all(devices.map((device) => device.close()));
  });

  describe('AUTH', () => {
    it('accepts the adb server whose key is authorised', async () => {
      // The server writes its key pair shortly after it starts listening.
      const keyFile = join(adb.home, '.android', 'adbkey.pub');
      await eventually(async () => /^\S+ \S/.test(await readFile(keyFile, 'utf8').catch(() => '')), 'adbkey.pub');
      const key = await readFile(keyFile, 'utf8');
      const device = await startVirtualDevice({ profile: defaultProfile(0), auth: { authorizedKeys: [key] } });
      devices.push(device);
      const serial = await connect(device);
      await waitForState(serial, 'device');
      expect(await adb.run('-s', serial, 'shell', 'echo', 'signed')).toMatchObject({ code: 0, stdout: 'signed\n' });
    });

    it('shows a device that knows no key of the server as unauthorized', async () => {
      const device = await startVirtualDevice({ profile: defaultProfile(1), auth: { authorizedKeys: [] } });
      devices.push(device);
      const serial = await connect(device);
      await waitForState(serial, 'unauthorized');
      const refused = await adb.run('-s', serial, 'shell', 'echo', 'no');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('unauthorized');
    });
  });

  describe('tunnels', () => {
    let device: VirtualDevice;
    let serial: string;
    let echo: { server: Server; port: number };

    beforeAll(async () => {
      device = await startVirtualDevice({ profile: defaultProfile(2) });
      devices.push(device);
      serial = await connect(device);
      await waitForState(serial, 'device');
      echo = await startEchoServer();
    });

    afterAll(async () => {
      await closeServer(echo?.server);
    });

    afterEach(async () => {
      await adb.run('-s', serial, 'forward', '--remove-all');
      await adb.run('-s', serial, 'reverse', '--remove-all');
    });

    it('forwards a host port to a port on the device, which is the machine loopback', async () => {
      const forwarded = await adb.run('-s', serial, 'forward', 'tcp:0', `tcp:${echo.port}`);
      expect(forwarded.code, forwarded.stderr).toBe(0);
      const local = Number(forwarded.stdout.trim());
      expect(await roundTrip(local, Buffer.from('HELLO FORWARD'))).toEqual(Buffer.from('HELLO FORWARD'));
      const large = randomBytes(3 * 1024 * 1024);
      expect((await roundTrip(local, large)).equals(large)).toBe(true);
    });

    it('closes a forwarded connection when nothing listens on the device port', async () => {
      const closed = await startEchoServer();
      await closeServer(closed.server);
      const forwarded = await adb.run('-s', serial, 'forward', 'tcp:0', `tcp:${closed.port}`);
      expect(await closedByPeer(Number(forwarded.stdout.trim()))).toHaveLength(0);
    });

    it('reverses a device port to a host port', async () => {
      const reversed = await adb.run('-s', serial, 'reverse', 'tcp:7101', `tcp:${echo.port}`);
      expect(reversed.code, reversed.stderr).toBe(0);
      const port = device.reversePort(7101);
      expect(port).toBeDefined();
      expect(await roundTrip(port as number, Buffer.from('HELLO REVERSE'))).toEqual(Buffer.from('HELLO REVERSE'));
      const large = randomBytes(3 * 1024 * 1024);
      expect((await roundTrip(port as number, large)).equals(large)).toBe(true);
    });

    it('lets the device pick the port for tcp:0, lists and removes reverses', async () => {
      const picked = await adb.run('-s', serial, 'reverse', 'tcp:0', `tcp:${echo.port}`);
      expect(picked.code, picked.stderr).toBe(0);
      const devicePort = Number(picked.stdout.trim());
      expect(device.reversePort(devicePort)).toBeDefined();
      await adb.run('-s', serial, 'reverse', 'tcp:7102', 'tcp:7103');

      const listed = await adb.run('-s', serial, 'reverse', '--list');
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(new RegExp(`^host-\\d+ tcp:${devicePort} tcp:${echo.port}$`, 'm'));
      expect(listed.stdout).toMatch(/^host-\d+ tcp:7102 tcp:7103$/m);

      expect((await adb.run('-s', serial, 'reverse', '--remove', 'tcp:7102')).code).toBe(0);
      expect(device.reversePort(7102)).toBeUndefined();
      const missing = await adb.run('-s', serial, 'reverse', '--remove', 'tcp:7102');
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("listener 'tcp:7102' not found");

      expect((await adb.run('-s', serial, 'reverse', '--remove-all')).code).toBe(0);
      expect(device.reversePort(devicePort)).toBeUndefined();
      expect((await adb.run('-s', serial, 'reverse', '--list')).stdout.trim()).toBe('');
    });

    it('closes a reverse connection when the host refuses the target', async () => {
      const closed = await startEchoServer();
      await closeServer(closed.server);
      await adb.run('-s', serial, 'reverse', 'tcp:7104', `tcp:${closed.port}`);
      expect(await closedByPeer(device.reversePort(7104) as number)).toHaveLength(0);
    });
  });

  describe('reboot', () => {
    it('drops the connection and comes back as a device', async () => {
      const device = await startVirtualDevice({ profile: defaultProfile(3), rebootDelayMs: 300 });
      devices.push(device);
      const serial = await connect(device);
      await waitForState(serial, 'device');
      await adb.run('-s', serial, 'shell', 'mkdir', '/sdcard/kept');

      await adb.run('-s', serial, 'reboot');
      // adb 29 retries on its own after about ten seconds; a new connect brings the device back at once.
      await eventually(async () => {
        await adb.run('disconnect', serial);
        await adb.run('connect', serial);
        return stateOf((await adb.run('devices')).stdout, serial) === 'device';
      }, `${serial} back after reboot`);
      expect((await adb.run('-s', serial, 'shell', 'ls', '/sdcard')).stdout).toContain('kept');
    });
  });
});
