import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command, MAX_PAYLOAD, PROTOCOL_VERSION } from '../../src/adb-protocol/index.js';
import { startVirtualDevice, startVirtualDevices, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { defaultProfile } from '../../src/virtual-device/profile.js';
import { ShellPacket } from '../../src/virtual-device/services/shell.js';
import { TestHost } from '../helpers/test-host.js';

function syncHeader(id: string, value: number): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, 'latin1');
  header.writeUInt32LE(value, 4);
  return header;
}

function syncRequest(id: string, argument: Buffer | string): Buffer {
  const body = Buffer.from(argument);
  return Buffer.concat([syncHeader(id, body.length), body]);
}

describe('the virtual device transport', () => {
  let device: VirtualDevice;
  let host: TestHost;

  beforeEach(async () => {
    device = await startVirtualDevice({ profile: defaultProfile(0) });
  });

  afterEach(async () => {
    host?.close();
    await device.close();
  });

  it('answers CNXN with its version, maxdata and banner', async () => {
    const connected = await TestHost.connect(device.port);
    host = connected.host;
    expect(connected.reply).toMatchObject({ command: Command.CNXN, arg0: PROTOCOL_VERSION, arg1: MAX_PAYLOAD });
    expect(connected.reply.data.toString()).toBe(
      'device::ro.product.name=cloudphone_virtual;ro.product.model=Virtual Phone;ro.product.device=virtual;' +
        'features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir,abb_exec',
    );
  });

  it('refuses unknown services with CLSE and accepts names with or without a trailing NUL', async () => {
    ({ host } = await TestHost.connect(device.port));
    host.send(Command.OPEN, 5, 0, Buffer.from('jdwp:1234\0'));
    expect(await host.next()).toMatchObject({ command: Command.CLSE, arg0: 0, arg1: 5 });
    for (const [index, name] of ['shell:echo a', 'shell:echo a\0'].entries()) {
      const remote = await host.open(10 + index, name);
      expect(remote).toBeDefined();
      const output = await host.readUntilClose(10 + index, remote as number);
      expect(Buffer.concat(output).toString()).toBe('a\n');
    }
  });

  it('frames shell v2 output, stderr and the exit code', async () => {
    ({ host } = await TestHost.connect(device.port));
    const remote = (await host.open(1, 'shell,v2,TERM=xterm-256color,raw:echo out\0')) as number;
    const stdout = Buffer.concat([Buffer.of(ShellPacket.STDOUT, 4, 0, 0, 0), Buffer.from('out\n')]);
    const exit = Buffer.of(ShellPacket.EXIT, 1, 0, 0, 0, 0);
    expect(Buffer.concat(await host.readUntilClose(1, remote))).toEqual(Buffer.concat([stdout, exit]));

    const second = (await host.open(2, 'shell,v2,raw:nosuch')) as number;
    const packets = Buffer.concat(await host.readUntilClose(2, second));
    const message = '/system/bin/sh: nosuch: inaccessible or not found\n';
    expect(packets.readUInt8(0)).toBe(ShellPacket.STDERR);
    expect(packets.readUInt32LE(1)).toBe(message.length);
    expect(packets.toString('utf8', 5, 5 + message.length)).toBe(message);
    expect([...packets.subarray(5 + message.length)]).toEqual([ShellPacket.EXIT, 1, 0, 0, 0, 127]);
  });

  it('feeds shell v2 stdin packets to the command until close-stdin', async () => {
    ({ host } = await TestHost.connect(device.port));
    const remote = (await host.open(1, 'shell,v2,raw:cat\0')) as number;
    const packet = (id: number, data: string) =>
      Buffer.concat([Buffer.of(id, 0, 0, 0, 0), Buffer.from(data)]).fill(data.length, 1, 2);
    host.send(
      Command.WRTE,
      1,
      remote,
      Buffer.concat([packet(ShellPacket.STDIN, 'one '), packet(ShellPacket.WINDOW_SIZE, '24x80,0x0\0')]),
    );
    expect(await host.next()).toMatchObject({ command: Command.OKAY });
    expect((await host.next()).data).toEqual(packet(ShellPacket.STDOUT, 'one '));
    host.send(Command.OKAY, 1, remote);
    const rest = Buffer.concat([packet(ShellPacket.STDIN, 'two'), packet(ShellPacket.CLOSE_STDIN, '')]);
    host.send(Command.WRTE, 1, remote, rest);
    expect(await host.next()).toMatchObject({ command: Command.OKAY });
    const output = Buffer.concat(await host.readUntilClose(1, remote));
    const exit = Buffer.of(ShellPacket.EXIT, 1, 0, 0, 0, 0);
    expect(output).toEqual(Buffer.concat([packet(ShellPacket.STDOUT, 'two'), exit]));
  });

  it('gives exec: commands the stream data as stdin', async () => {
    ({ host } = await TestHost.connect(device.port));
    const remote = (await host.open(1, 'exec:cat\0')) as number;
    host.send(Command.WRTE, 1, remote, Buffer.from('echoed back'));
    expect(await host.next()).toMatchObject({ command: Command.OKAY });
    const echoed = await host.next();
    expect(echoed).toMatchObject({ command: Command.WRTE, arg0: remote, arg1: 1 });
    expect(echoed.data.toString()).toBe('echoed back');
    host.send(Command.OKAY, 1, remote);
    host.send(Command.CLSE, 1, remote);
  });

  it('splits output to the host maxdata and waits for OKAY before each WRTE', async () => {
    ({ host } = await TestHost.connect(device.port, 4096));
    const data = Buffer.alloc(10_000, 'x');
    device.state.files.write('/sdcard/big.txt', data, { permissions: 0o644 });
    const remote = (await host.open(1, 'exec:cat /sdcard/big.txt')) as number;

    const first = await host.next();
    expect(first).toMatchObject({ command: Command.WRTE, arg0: remote, arg1: 1 });
    expect(first.data.length).toBe(4096);
    // An unknown service answers at once: if the device had not waited for our OKAY, a second WRTE would come first.
    host.send(Command.OPEN, 99, 0, Buffer.from('nosuch:'));
    expect(await host.next()).toMatchObject({ command: Command.CLSE, arg1: 99 });

    host.send(Command.OKAY, 1, remote);
    const rest = await host.readUntilClose(1, remote);
    expect(rest.map((payload) => payload.length)).toEqual([4096, 10_000 - 8192]);
    expect(Buffer.concat([first.data, ...rest]).equals(data)).toBe(true);
  });

  it('acknowledges every WRTE and ends a sync session with a 76-byte LIS2 DONE', async () => {
    ({ host } = await TestHost.connect(device.port));
    const remote = (await host.open(1, 'sync:')) as number;
    host.send(Command.WRTE, 1, remote, syncRequest('LIS2', '/data/local/tmp'));
    expect(await host.next()).toMatchObject({ command: Command.OKAY, arg0: remote, arg1: 1 });
    const listing = await host.next();
    host.send(Command.OKAY, 1, remote);
    const names: string[] = [];
    let offset = 0;
    while (listing.data.toString('latin1', offset, offset + 4) === 'DNT2') {
      const length = listing.data.readUInt32LE(offset + 72);
      names.push(listing.data.toString('utf8', offset + 76, offset + 76 + length));
      offset += 76 + length;
    }
    expect(names).toEqual(['.', '..']);
    expect(listing.data.subarray(offset)).toEqual(Buffer.concat([Buffer.from('DONE'), Buffer.alloc(72)]));
  });

  it('reports a missing path in STA2 with errno 2', async () => {
    ({ host } = await TestHost.connect(device.port));
    const remote = (await host.open(1, 'sync:')) as number;
    host.send(Command.WRTE, 1, remote, syncRequest('STA2', '/nope'));
    await host.next();
    const stat = await host.next();
    expect(stat.data.length).toBe(72);
    expect(stat.data.toString('latin1', 0, 4)).toBe('STA2');
    expect(stat.data.readUInt32LE(4)).toBe(2);
  });

  it('sends and receives a file over sync with a small host maxdata', async () => {
    ({ host } = await TestHost.connect(device.port, 4096));
    const remote = (await host.open(1, 'sync:')) as number;
    const content = Buffer.from(Array.from({ length: 10_000 }, (_, index) => index % 251));
    const mtime = 1_700_000_000;
    const upload = Buffer.concat([
      syncRequest('SEND', '/sdcard/x/y.bin,33188'),
      syncRequest('DATA', content),
      syncHeader('DONE', mtime),
    ]);
    for (let offset = 0; offset < upload.length; offset += 4096) {
      host.send(Command.WRTE, 1, remote, upload.subarray(offset, offset + 4096));
      expect(await host.next()).toMatchObject({ command: Command.OKAY });
    }
    const okay = await host.next();
    host.send(Command.OKAY, 1, remote);
    expect(okay.data).toEqual(syncHeader('OKAY', 0));
    expect(device.state.files.stat('/sdcard/x/y.bin')).toMatchObject({ kind: 'file', mtime, permissions: 0o644 });

    const download = Buffer.concat([syncRequest('RECV', '/sdcard/x/y.bin'), syncHeader('QUIT', 0)]);
    host.send(Command.WRTE, 1, remote, download);
    await host.next();
    const payloads = await host.readUntilClose(1, remote);
    expect(payloads.every((payload) => payload.length <= 4096)).toBe(true);
    const received = Buffer.concat(payloads);
    expect(received.subarray(0, 8)).toEqual(syncHeader('DATA', 10_000));
    expect(received.subarray(8, 10_008)).toEqual(content);
    expect(received.subarray(10_008)).toEqual(syncHeader('DONE', 0));
  });

  it('answers a failed SEND with FAIL and a message', async () => {
    ({ host } = await TestHost.connect(device.port));
    const remote = (await host.open(1, 'sync:')) as number;
    const upload = [syncRequest('SEND', '/system/x,33188'), syncRequest('DATA', 'x'), syncHeader('DONE', 0)];
    host.send(Command.WRTE, 1, remote, Buffer.concat(upload));
    await host.next();
    const payloads = await host.readUntilClose(1, remote);
    const message = "couldn't create file: Read-only file system";
    expect(Buffer.concat(payloads)).toEqual(syncRequest('FAIL', message));
  });

  it('counts the data of unfinished transfers against the storage, so transfers at once never hold more', async () => {
    const small = await startVirtualDevice({ profile: { ...defaultProfile(1), storageMiB: 1 } });
    try {
      ({ host } = await TestHost.connect(small.port));
      const first = (await host.open(1, 'sync:')) as number;
      const second = (await host.open(2, 'sync:')) as number;
      const chunk = Buffer.alloc(64_000, 7);
      // The first transfer holds 704,000 bytes and is not done; the second outgrows the 344,576 left.
      host.send(Command.WRTE, 1, first, syncRequest('SEND', '/sdcard/first,33188'));
      for (let index = 0; index < 11; index++) host.send(Command.WRTE, 1, first, syncRequest('DATA', chunk));
      for (let okays = 0; okays < 12; okays++) expect(await host.next()).toMatchObject({ command: Command.OKAY, arg1: 1 });
      host.send(Command.WRTE, 2, second, syncRequest('SEND', '/sdcard/second,33188'));
      for (let index = 0; index < 6; index++) host.send(Command.WRTE, 2, second, syncRequest('DATA', chunk));
      let failed;
      do failed = await host.next();
      while (failed.command !== Command.WRTE || failed.arg1 !== 2);
      // No DONE was sent: the device refuses as soon as the data outgrows the space.
      expect(failed.data).toEqual(syncRequest('FAIL', 'write failed: No space left on device'));
      host.send(Command.WRTE, 1, first, syncHeader('DONE', 0));
      let answer;
      do answer = await host.next();
      while (answer.command !== Command.WRTE || answer.arg1 !== 1);
      expect(answer.data).toEqual(syncHeader('OKAY', 0));
      expect(small.state.files.used).toBe(704_000);
    } finally {
      await small.close();
    }
  });
});

describe('startVirtualDevices', () => {
  it('starts devices with distinct serials on free ports', async () => {
    const devices = await startVirtualDevices(3);
    try {
      expect(new Set(devices.map((device) => device.serial)).size).toBe(3);
      expect(new Set(devices.map((device) => device.port)).size).toBe(3);
    } finally {
      await Promise.all(devices.map((device) => device.close()));
    }
  });
});
