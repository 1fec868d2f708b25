import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { BUILT_IN_PROFILES } from '../../src/virtual-device/profiles.js';
import { connectDevice, startAdbHost, type AdbHost, type AdbResult } from '../helpers/adb-host.js';

/** The virtual device's shell as Debian's real `adb shell` carries it: interactive, scripts, and its language. */
describe('the virtual shell through the real adb client', () => {
  let adb: AdbHost;
  let device: VirtualDevice;
  let serial: string;
  let workDir: string;

  /** `adb -s <device> …args` with `input` piped to its standard input (never a terminal). */
  function adbWithInput(args: string[], input: string): Promise<AdbResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('adb', ['-P', String(adb.port), '-s', serial, ...args], {
        env: { ...process.env, HOME: adb.home },
        timeout: 15_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(input);
    });
  }
  const shell = (...args: string[]) => adb.run('-s', serial, 'shell', ...args);

  beforeAll(async () => {
    device = await startVirtualDevice({ profile: { ...BUILT_IN_PROFILES['emulator-x86_64']!, serial: 'CPSHELL01' } });
    adb = await startAdbHost();
    workDir = await mkdtemp(join(tmpdir(), 'cloudphone-adb-shell-'));
    serial = await connectDevice(adb, device.port);
  });

  afterAll(async () => {
    await adb?.stop();
    await device?.close();
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  it('adb shell -tt is an interactive shell: the prompt, the echo, and exit with a code', async () => {
    const typed = 'echo hi\nfalse\necho $?\nexit 4\n';
    const result = await adbWithInput(['shell', '-tt'], typed);
    expect(result.code).toBe(4);
    // The pty echoes what was typed ahead at once, then the shell answers line by line.
    expect(result.stdout).toBe(
      'emu64x:/ $ echo hi\r\nfalse\r\necho $?\r\nexit 4\r\nhi\r\nemu64x:/ $ emu64x:/ $ 1\r\nemu64x:/ $ ',
    );
  });

  it('adb shell without a terminal runs its standard input as a script', async () => {
    const result = await adbWithInput(['shell'], 'echo hi; X=5\necho $X\nls /nope\nexit 3\necho never\n');
    expect(result).toEqual({ code: 3, stdout: 'hi\n5\n', stderr: 'ls: /nope: No such file or directory\n' });
    expect(await adbWithInput(['shell', '-T'], 'true\n')).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('runs sh -c, pipes, redirections, $? and variables as a phone does', async () => {
    expect(await shell("sh -c 'echo $0-$1; exit 7' x y")).toEqual({ code: 7, stdout: 'x-y\n', stderr: '' });
    expect(await shell('getprop | grep ro.product.device | wc -l')).toEqual({ code: 0, stdout: '1\n', stderr: '' });
    expect(await shell('ls /nope 2>/dev/null; echo $?')).toEqual({ code: 0, stdout: '1\n', stderr: '' });
    expect(await shell('X=abc; echo "$X" ${X}d')).toEqual({ code: 0, stdout: 'abc abcd\n', stderr: '' });
    expect(await shell('echo one > /sdcard/r.txt; echo two >> /sdcard/r.txt; head -n 1 /sdcard/r.txt')).toEqual({
      code: 0,
      stdout: 'one\n',
      stderr: '',
    });
    const local = join(workDir, 'r.txt');
    expect((await adb.run('-s', serial, 'pull', '/sdcard/r.txt', local)).code).toBe(0);
    expect(await readFile(local, 'utf8')).toBe('one\ntwo\n');
    expect(await shell('echo x > /system/x')).toEqual({
      code: 1,
      stdout: '',
      stderr: "/system/bin/sh: can't create /system/x: Read-only file system\n",
    });
    // A pty merges stderr into stdout and ends lines with CR LF.
    expect(await adbWithInput(['shell', '-tt', 'echo tty; ls /nope'], '')).toEqual({
      code: 1,
      stdout: 'tty\r\nls: /nope: No such file or directory\r\n',
      stderr: '',
    });
  });

  it('has grep, head, wc and ps', async () => {
    const ps = await shell('ps -A | grep -E "init|adbd"');
    expect(ps.stdout).toMatch(/^root +1 +0 .* S init\nshell +\d+ +1 .* S adbd\n$/);
    const own = await shell('ps');
    expect(own.stdout).toMatch(/^USER +PID +PPID +VSZ +RSS +WCHAN +ADDR +S +NAME\nshell .* sh\nshell .* ps\n$/);
    expect(await shell('ps -A | wc -l')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\n$/) });
    expect(await shell('getprop | head -n 2 | wc -l')).toEqual({ code: 0, stdout: '2\n', stderr: '' });
    expect(await shell('grep -q nothing /proc/1/cmdline')).toEqual({ code: 1, stdout: '', stderr: '' });
  });
});
