import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Adb } from '@yume-chan/adb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command, MAX_PAYLOAD, PROTOCOL_VERSION } from '../../src/adb-protocol/index.js';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { serveAdbTunnel } from '../../src/devices/tunnel/adb-proxy.js';
import { TestHost } from '../helpers/test-host.js';
import { connectDirect } from '../helpers/yume-chan.js';

/** serveAdbTunnel on plain TCP (any Duplex will do), with raw packets from a TestHost. */
describe('serveAdbTunnel with a raw host', () => {
  let device: VirtualDevice;
  let adb: Adb;
  let server: Server;
  let port: number;
  let host: TestHost | undefined;
  let stop: AbortController;
  let sessions: Promise<void>[];
  let errors: unknown[];
  let deviceGone: boolean;

  beforeEach(async () => {
    stop = new AbortController();
    sessions = [];
    errors = [];
    deviceGone = false;
    device = await startVirtualDevice({ profile: defaultProfile(0) });
    adb = await connectDirect(device.host, device.port);
    server = createServer((socket) => {
      sessions.push(serveAdbTunnel(socket, adb, { signal: stop.signal, onError: (error) => errors.push(error) }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterEach(async () => {
    host?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // Closing an Adb whose device went away writes to an ended socket (a limit of the test's direct connection).
    if (!deviceGone) await adb.close();
    await device.close();
  });

  it("answers CNXN with the device's banner marked as a tunnel, no AUTH, our maxdata", async () => {
    const connected = await TestHost.connect(port);
    host = connected.host;
    expect(connected.reply).toMatchObject({ command: Command.CNXN, arg0: PROTOCOL_VERSION, arg1: MAX_PAYLOAD });
    expect(connected.reply.data.toString()).toBe(
      'device::ro.product.name=cloudphone_virtual;ro.product.model=Virtual Phone;ro.product.device=virtual;' +
        'features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir,abb_exec,cloudphone_tunnel',
    );
  });

  it('refuses services the device refuses with CLSE; answers reverse: requests itself', async () => {
    ({ host } = await TestHost.connect(port));
    expect(await host.open(1, 'jdwp:1234\0')).toBeUndefined();
    const listing = await host.open(2, 'reverse:list-forward\0');
    expect(Buffer.concat(await host.readUntilClose(2, listing as number)).toString()).toBe('0000');
    const unknown = await host.open(4, 'reverse:bogus\0');
    expect(Buffer.concat(await host.readUntilClose(4, unknown as number)).toString()).toBe('FAIL001eunknown reverse request: bogus');
    const remote = await host.open(3, 'shell:echo a\0');
    expect(Buffer.concat(await host.readUntilClose(3, remote as number)).toString()).toBe('a\n');
  });

  it("honours the host's maxdata and waits for its OKAY before the next WRTE", async () => {
    const data = randomBytes(100 * 1024);
    device.state.files.write('/data/local/tmp/big.bin', data, { permissions: 0o644 });
    ({ host } = await TestHost.connect(port, 4096));
    const remote = (await host.open(1, 'exec:cat /data/local/tmp/big.bin\0')) as number;
    const first = await host.next();
    expect(first).toMatchObject({ command: Command.WRTE, arg1: 1 });
    expect(first.data.length).toBeLessThanOrEqual(4096);
    // Nothing more until we acknowledge.
    const more = await Promise.race([host.next(), new Promise((resolve) => setTimeout(() => resolve('none'), 150))]);
    expect(more).toBe('none');
    host.send(Command.OKAY, 1, remote);
    const rest = await host.readUntilClose(1, remote);
    expect(rest.every((payload) => payload.length <= 4096)).toBe(true);
    expect(Buffer.concat([first.data, ...rest])).toEqual(data);
  });

  it('forwards what the host writes, acknowledging each WRTE once the device took it', async () => {
    ({ host } = await TestHost.connect(port));
    const remote = (await host.open(1, 'exec:cat\0')) as number;
    host.send(Command.WRTE, 1, remote, Buffer.from('hello '));
    expect(await host.next()).toMatchObject({ command: Command.OKAY, arg0: remote, arg1: 1 });
    const echoed = await host.next();
    expect(echoed).toMatchObject({ command: Command.WRTE });
    expect(echoed.data.toString()).toBe('hello ');
    host.send(Command.OKAY, 1, remote);
    host.send(Command.CLSE, 1, remote);
    // The host's CLSE closes the device socket; the transport stays usable.
    const again = await host.open(2, 'shell:echo b\0');
    expect(Buffer.concat(await host.readUntilClose(2, again as number)).toString()).toBe('b\n');
  });

  it('ends the duplex and every stream when the signal aborts, and resolves', async () => {
    ({ host } = await TestHost.connect(port));
    const remote = (await host.open(1, 'exec:cat\0')) as number;
    expect(remote).toBeDefined();
    stop.abort();
    await Promise.all(sessions);
    // The device still serves its own connection.
    expect(await adb.subprocess.noneProtocol.spawnWaitText('echo alive')).toBe('alive\n');
    expect(errors).toEqual([]);
  });

  it('ends when the device goes away, so the host sees the disconnect', async () => {
    ({ host } = await TestHost.connect(port));
    expect(await host.open(1, 'exec:cat\0')).toBeDefined();
    deviceGone = true;
    await device.close();
    await Promise.all(sessions);
    expect(errors).toEqual([]);
  });
});
