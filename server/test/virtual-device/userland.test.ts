import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../src/adb-protocol/index.js';
import { Device } from '../../src/virtual-device/device.js';
import { FileSystem } from '../../src/virtual-device/file-system.js';
import { defaultProfile } from '../../src/virtual-device/profile.js';
import { runCommand as run } from './run-command.js';

const NOW = 1_764_000_000;

function freshDevice(): Device {
  const device = new Device({ ...defaultProfile(0), model: 'Pixel 8', sdk: 35, abis: ['arm64-v8a', 'armeabi-v7a'] });
  device.files.write('/sdcard/hello.txt', Buffer.from('hello\n'), { permissions: 0o660, mtime: NOW });
  return device;
}

describe('the simulated userland', () => {
  it('echoes, with -n leaving out the newline', async () => {
    const device = freshDevice();
    expect(await run(device, 'echo a "b c"')).toEqual({ status: 0, stdout: 'a b c\n', stderr: '' });
    expect((await run(device, 'echo -n x')).stdout).toBe('x');
    expect((await run(device, 'echo')).stdout).toBe('\n');
  });

  it('runs command lists with ; && || and exit, as sh -c does', async () => {
    const device = freshDevice();
    expect(await run(device, 'echo a; echo b')).toEqual({ status: 0, stdout: 'a\nb\n', stderr: '' });
    expect(await run(device, 'ls /nope && echo yes || echo no')).toMatchObject({ status: 0, stdout: 'no\n' });
    expect(await run(device, 'true && echo yes || echo no')).toMatchObject({ status: 0, stdout: 'yes\n' });
    expect(await run(device, 'false; echo after')).toMatchObject({ status: 0, stdout: 'after\n' });
    expect(await run(device, 'echo a && false')).toMatchObject({ status: 1, stdout: 'a\n' });
    expect(await run(device, 'echo a; exit 3; echo never')).toMatchObject({ status: 3, stdout: 'a\n' });
    expect((await run(device, 'false; exit')).status).toBe(1);
    expect((await run(device, 'true || exit 5')).status).toBe(0);
    expect((await run(device, 'exit 257')).status).toBe(1);
    expect(await run(device, 'exit x')).toEqual({ status: 1, stdout: '', stderr: '/system/bin/sh: exit: x: bad number\n' });
    expect(await run(device, 'echo a &&')).toEqual({
      status: 1,
      stdout: '',
      stderr: "/system/bin/sh: syntax error: unexpected end of line after '&&'\n",
    });
  });

  it('answers true, false and an empty line', async () => {
    const device = freshDevice();
    expect((await run(device, 'true')).status).toBe(0);
    expect((await run(device, 'false')).status).toBe(1);
    expect((await run(device, '   ')).status).toBe(0);
  });

  it('reads properties from the profile', async () => {
    const device = freshDevice();
    expect((await run(device, 'getprop ro.product.model')).stdout).toBe('Pixel 8\n');
    expect((await run(device, 'getprop ro.build.version.sdk')).stdout).toBe('35\n');
    expect((await run(device, 'getprop ro.product.cpu.abilist')).stdout).toBe('arm64-v8a,armeabi-v7a\n');
    expect((await run(device, 'getprop ro.serialno')).stdout).toBe('CPVIRT0001\n');
    expect((await run(device, 'getprop no.such.key')).stdout).toBe('\n');
    expect((await run(device, 'getprop')).stdout).toContain('[ro.product.manufacturer]: [cloudphone]\n');
  });

  it('lists, reads, makes and removes files', async () => {
    const device = freshDevice();
    expect((await run(device, 'ls /sdcard')).stdout).toBe('Download\nhello.txt\n');
    expect((await run(device, 'ls -a /sdcard')).stdout).toBe('.\n..\nDownload\nhello.txt\n');
    expect((await run(device, 'ls -l /sdcard/hello.txt')).stdout).toBe(
      '-rw-rw---- 1 shell shell 6 2025-11-24 16:00 /sdcard/hello.txt\n',
    );
    expect((await run(device, 'cat /sdcard/hello.txt /sdcard//hello.txt')).stdout).toBe('hello\nhello\n');
    expect(await run(device, 'cat', [Buffer.from('from '), Buffer.from('stdin')])).toEqual({
      status: 0,
      stdout: 'from stdin',
      stderr: '',
    });
    expect(await run(device, 'mkdir /sdcard/a/b')).toEqual({
      status: 1,
      stdout: '',
      stderr: "mkdir: '/sdcard/a/b': No such file or directory\n",
    });
    expect((await run(device, 'mkdir -p /sdcard/a/b')).status).toBe(0);
    expect((await run(device, 'mkdir /sdcard/a')).stderr).toBe("mkdir: '/sdcard/a': File exists\n");
    expect((await run(device, 'ls /sdcard/a/../a')).stdout).toBe('b\n');
    expect((await run(device, 'rm -r /sdcard/a /sdcard/hello.txt')).status).toBe(0);
    expect((await run(device, 'ls /sdcard')).stdout).toBe('Download\n');
  });

  it('reports file errors the way toybox does', async () => {
    const device = freshDevice();
    expect(await run(device, 'cat /nope')).toEqual({
      status: 1,
      stdout: '',
      stderr: 'cat: /nope: No such file or directory\n',
    });
    expect((await run(device, 'cat /sdcard')).stderr).toBe('cat: /sdcard: Is a directory\n');
    expect((await run(device, 'ls /sdcard/hello.txt/x')).stderr).toBe('ls: /sdcard/hello.txt/x: Not a directory\n');
    expect((await run(device, 'rm /sdcard/Download')).stderr).toBe('rm: /sdcard/Download: Is a directory\n');
    expect((await run(device, 'rm /nope')).status).toBe(1);
    expect((await run(device, 'rm -f /sdcard/nope')).status).toBe(0);
    expect((await run(device, 'rm -x /sdcard/nope')).stderr).toBe("rm: Unknown option 'x'\n");
    expect((await run(device, 'mkdir')).stderr).toBe('mkdir: Need 1 argument\n');
  });

  it('refuses changes outside /sdcard and /data/local/tmp, as Android does for the shell user', async () => {
    const device = freshDevice();
    expect((await run(device, 'mkdir /system/x')).stderr).toBe("mkdir: '/system/x': Read-only file system\n");
    expect((await run(device, 'mkdir /x')).stderr).toBe("mkdir: '/x': Read-only file system\n");
    expect((await run(device, 'mkdir /data/x')).stderr).toBe("mkdir: '/data/x': Permission denied\n");
    expect((await run(device, 'rm -rf /system')).stderr).toBe('rm: /system: Read-only file system\n');
    expect((await run(device, 'rm -rf /sdcard')).stderr).toBe('rm: /sdcard: Read-only file system\n');
    expect((await run(device, 'rm /proc/1/mem')).stderr).toBe('rm: /proc/1/mem: Permission denied\n');
    expect((await run(device, 'ls /system')).stdout).toBe('bin\n');
    expect((await run(device, 'ls /system/bin')).stdout).toBe('sh\n');
    expect(await run(device, 'ls /data')).toEqual({ status: 1, stdout: '', stderr: 'ls: /data: Permission denied\n' });
    expect((await run(device, 'cat /proc/1/mem')).stderr).toBe('cat: /proc/1/mem: Permission denied\n');
    expect((await run(device, 'cat /proc/1/cmdline')).stdout).toBe('/system/bin/init\0second_stage\0');
  });

  it('shares the storage size among the shell user\'s files and fails past it with ENOSPC', () => {
    const files = new FileSystem({ capacity: 10 });
    files.write('/sdcard/a', Buffer.alloc(6), { permissions: 0o644 });
    expect(() => files.write('/data/local/tmp/b', Buffer.alloc(5), { permissions: 0o644 })).toThrow(
      'No space left on device',
    );
    expect(files.used).toBe(6);
    // Replacing a file frees what it took.
    files.write('/sdcard/a', Buffer.alloc(10), { permissions: 0o644 });
    expect([files.used, files.spaceFor('/sdcard/a'), files.spaceFor('/sdcard/b')]).toEqual([10, 10, 0]);
    files.mkdir('/sdcard/dir', { parents: false });
    files.remove('/sdcard/a', { recursive: false });
    files.write('/sdcard/dir/c', Buffer.alloc(4), { permissions: 0o644 });
    files.remove('/sdcard/dir', { recursive: true });
    expect(files.used).toBe(0);
  });

  it('shows the storage and its use with df', async () => {
    const device = new Device({ ...defaultProfile(0), storageMiB: 2 });
    device.files.write('/sdcard/a', Buffer.alloc(512 * 1024), { permissions: 0o644 });
    expect(await run(device, 'df /sdcard/a /data/local/tmp /system/bin')).toEqual({
      status: 0,
      stdout:
        'Filesystem      1K-blocks    Used Available Use% Mounted on\n' +
        '/dev/fuse            2048     512      1536  25% /storage/emulated\n' +
        '/dev/block/dm-5      2048     512      1536  25% /data\n' +
        '/dev/block/dm-0   2940928 2940928         0 100% /\n',
      stderr: '',
    });
    expect((await run(device, 'df -h /data')).stdout).toBe(
      'Filesystem      Size Used Avail Use% Mounted on\n/dev/block/dm-5   2M 512K  1.5M  25% /data\n',
    );
    expect(await run(device, 'df /nope')).toMatchObject({ status: 1, stderr: 'df: /nope: No such file or directory\n' });
  });

  it('sleeps until the stream goes away', async () => {
    const device = freshDevice();
    expect((await run(device, 'sleep 0.01')).status).toBe(0);
    expect((await run(device, 'sleep soon')).stderr).toBe("sleep: Not a number 'soon'\n");
    const abort = new AbortController();
    const quiet = async (): Promise<void> => undefined;
    const stdin = new ByteQueue();
    const sleeping = device.userland.run('sleep 3600', { stdin, stdout: quiet, stderr: quiet, signal: abort.signal });
    abort.abort();
    expect(await sleeping).toBe(130);
  });

  it('answers unknown commands and bad syntax like /system/bin/sh', async () => {
    const device = freshDevice();
    expect(await run(device, 'monkey -p com.example 1')).toEqual({
      status: 127,
      stdout: '',
      stderr: '/system/bin/sh: monkey: inaccessible or not found\n',
    });
    expect((await run(device, 'toString')).status).toBe(127);
    expect(await run(device, "echo 'open")).toEqual({
      status: 1,
      stdout: '',
      stderr: '/system/bin/sh: no closing quote\n',
    });
  });
});
