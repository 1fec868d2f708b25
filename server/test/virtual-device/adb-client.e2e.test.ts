import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import type { DeviceProfile } from '../../src/virtual-device/profile.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { BUILT_IN_PROFILES } from '../../src/virtual-device/profiles.js';

const PIXEL: DeviceProfile = {
  serial: 'CPTEST0001',
  ...BUILT_IN_PROFILES['pixel-8']!,
};
const TABLET: DeviceProfile = {
  ...PIXEL,
  serial: 'CPTEST0002',
  model: 'Tab S9',
  product: 'gts9',
  device: 'gts9',
  storageMiB: 1,
};

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('the virtual device driven by the real adb client', () => {
  let adb: AdbHost;
  let phone: VirtualDevice;
  let tablet: VirtualDevice;
  let serial: string;
  let workDir: string;

  const shell = (...args: string[]) => adb.run('-s', serial, 'shell', ...args);

  beforeAll(async () => {
    phone = await startVirtualDevice({ profile: PIXEL });
    tablet = await startVirtualDevice({ profile: TABLET });
    adb = await startAdbHost();
    workDir = await mkdtemp(join(tmpdir(), 'cloudphone-adb-files-'));
    serial = `127.0.0.1:${phone.port}`;
    for (const device of [phone, tablet]) {
      const connected = await adb.run('connect', `127.0.0.1:${device.port}`);
      expect(connected.stdout).toContain(`connected to 127.0.0.1:${device.port}`);
      expect((await adb.run('-s', `127.0.0.1:${device.port}`, 'wait-for-device')).code).toBe(0);
    }
  });

  afterAll(async () => {
    await adb?.stop();
    await Promise.all([phone?.close(), tablet?.close()]);
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  it('lists both devices with their banner properties', async () => {
    const { stdout, code } = await adb.run('devices', '-l');
    expect(code).toBe(0);
    // adb replaces the space in the model with an underscore.
    const line = (port: number, banner: string) =>
      new RegExp(`^127\\.0\\.0\\.1:${port}\\s+device ${banner} transport_id:\\d+$`, 'm');
    expect(stdout).toMatch(line(phone.port, 'product:shiba model:Pixel_8 device:shiba'));
    expect(stdout).toMatch(line(tablet.port, 'product:gts9 model:Tab_S9 device:gts9'));
  });

  it('runs shell commands with their output and exit codes', async () => {
    expect(await shell('echo', 'hi')).toEqual({ code: 0, stdout: 'hi\n', stderr: '' });
    expect((await shell('true')).code).toBe(0);
    expect((await shell('false')).code).toBe(1);
  });

  it('serves the raw shell (no shell protocol) and exec-out', async () => {
    expect(await shell('-x', 'echo', 'raw')).toEqual({ code: 0, stdout: 'raw\n', stderr: '' });
    const text = 'line of text\n'.repeat(30_000);
    phone.state.files.write('/sdcard/long.txt', Buffer.from(text), { permissions: 0o644 });
    const out = await adb.run('-s', serial, 'exec-out', 'cat', '/sdcard/long.txt');
    expect(out.code).toBe(0);
    expect(out.stdout === text).toBe(true);
  });

  it('runs command lists with their exit status, as sh -c does', async () => {
    expect(await shell('echo a && echo b; ls /nope || exit 4')).toMatchObject({ code: 4, stdout: 'a\nb\n' });
    expect(await shell('false', '||', 'echo', 'recovered')).toEqual({ code: 0, stdout: 'recovered\n', stderr: '' });
  });

  it('splits shell words like sh', async () => {
    expect((await shell('echo "a  b"')).stdout).toBe('a  b\n');
    expect((await shell("echo 'it''s' \"q\\\"uote\" back\\ slash")).stdout).toBe('its q"uote back slash\n');
  });

  it('answers getprop from the profile', async () => {
    expect((await shell('getprop', 'ro.product.model')).stdout).toBe('Pixel 8\n');
    expect((await shell('getprop', 'ro.build.version.sdk')).stdout).toBe('34\n');
    expect((await adb.run('-s', `127.0.0.1:${tablet.port}`, 'shell', 'getprop', 'ro.product.model')).stdout).toBe(
      'Tab S9\n',
    );
  });

  it('reports unknown commands like Android, exit code 127', async () => {
    expect(await shell('nosuchcmd', 'x')).toEqual({
      code: 127,
      stdout: '',
      stderr: '/system/bin/sh: nosuchcmd: inaccessible or not found\n',
    });
  });

  it('pushes and pulls a 5 MB file byte for byte', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const local = join(workDir, 'random.bin');
    const back = join(workDir, 'random.back');
    await writeFile(local, data);

    const pushed = await adb.run('-s', serial, 'push', local, '/data/local/tmp/');
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stdout).toContain('1 file pushed');

    const pulled = await adb.run('-s', serial, 'pull', '/data/local/tmp/random.bin', back);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(sha256(await readFile(back))).toBe(sha256(data));

    const listing = await adb.run('-s', serial, 'ls', '/data/local/tmp');
    expect(listing.stdout).toMatch(/^000081a4 00500000 [0-9a-f]{8} random\.bin$/m);
    expect((await shell('ls', '/data/local/tmp')).stdout).toBe('random.bin\n');
    expect((await shell('ls', '-l', '/data/local/tmp/random.bin')).stdout).toMatch(
      /^-rw-r--r-- 1 shell shell 5242880 \d{4}-\d\d-\d\d \d\d:\d\d \/data\/local\/tmp\/random\.bin\n$/,
    );
  });

  it('creates missing directories on push and keeps files per device', async () => {
    const local = join(workDir, 'note.txt');
    await writeFile(local, 'hello\n');
    expect((await adb.run('-s', serial, 'push', local, '/sdcard/new/dir/note.txt')).code).toBe(0);
    expect((await shell('cat', '/sdcard/new/dir/note.txt')).stdout).toBe('hello\n');
    const other = await adb.run('-s', `127.0.0.1:${tablet.port}`, 'shell', 'cat', '/sdcard/new/dir/note.txt');
    expect(other).toEqual({
      code: 1,
      stdout: '',
      stderr: 'cat: /sdcard/new/dir/note.txt: No such file or directory\n',
    });
  });

  it('refuses writes outside the writable directories', async () => {
    const local = join(workDir, 'denied.txt');
    await writeFile(local, 'x');
    // adb 29 prints transfer errors on standard output.
    const refusals: [string, string][] = [
      ['/system/denied.txt', "remote couldn't create file: Read-only file system"],
      ['/system/bin/sh', "remote couldn't create file: Read-only file system"],
      ['/data/denied.txt', "remote couldn't create file: Permission denied"],
      ['/proc/1/mem', "remote couldn't create file: Permission denied"],
    ];
    for (const [target, message] of refusals) {
      const pushed = await adb.run('-s', serial, 'push', local, target);
      expect([target, pushed.code]).toEqual([target, 1]);
      expect(pushed.stdout).toContain(message);
    }
    const unreadable = await adb.run('-s', serial, 'pull', '/proc/1/mem', join(workDir, 'mem'));
    expect(unreadable.code).toBe(1);
    expect(unreadable.stdout).toContain('remote open failed: Permission denied');
  });

  it('fills up at its storage size like a phone: No space left on device, and the file is gone', async () => {
    const small = `127.0.0.1:${tablet.port}`;
    const local = join(workDir, 'big.bin');
    await writeFile(local, randomBytes(1024 * 1024 + 1));
    const pushed = await adb.run('-s', small, 'push', local, '/sdcard/big.bin');
    expect(pushed.code).toBe(1);
    expect(pushed.stdout).toContain('remote write failed: No space left on device');
    const listing = await adb.run('-s', small, 'shell', 'ls', '/sdcard/big.bin');
    expect(listing.stderr).toBe('ls: /sdcard/big.bin: No such file or directory\n');
    await writeFile(local, randomBytes(1024 * 1024));
    expect((await adb.run('-s', small, 'push', local, '/sdcard/big.bin')).code).toBe(0);
    expect(tablet.state.files.used).toBe(1024 * 1024);
    expect((await adb.run('-s', small, 'shell', 'rm', '/sdcard/big.bin')).code).toBe(0);
  });

  it('fails to pull a missing file', async () => {
    const pulled = await adb.run('-s', serial, 'pull', '/data/local/tmp/nope', join(workDir, 'nope'));
    expect(pulled.code).toBe(1);
    expect(pulled.stdout).toContain("failed to stat remote object '/data/local/tmp/nope': No such file or directory");
  });

  it('makes and removes directories from the shell', async () => {
    expect((await shell('mkdir', '-p', '/sdcard/a/b')).code).toBe(0);
    expect((await shell('ls', '/sdcard/a')).stdout).toBe('b\n');
    expect(await shell('rm', '/sdcard/a')).toEqual({ code: 1, stdout: '', stderr: 'rm: /sdcard/a: Is a directory\n' });
    expect((await shell('rm', '-rf', '/sdcard/a')).code).toBe(0);
    expect((await shell('ls', '/sdcard/a')).code).toBe(1);
  });
});
