import { describe, expect, it } from 'vitest';
import { ByteQueue, StreamClosedError } from '../../src/adb-protocol/index.js';
import { Device } from '../../src/virtual-device/device.js';
import { defaultProfile } from '../../src/virtual-device/profile.js';
import { BUILT_IN_PROFILES } from '../../src/virtual-device/profiles.js';
import { runInteractiveShell, terminalOutput } from '../../src/virtual-device/terminal.js';
import { runCommand as run } from './run-command.js';

const freshDevice = () => new Device(defaultProfile(0));

describe('the virtual shell language', () => {
  it('keeps variables and $? across a line, splitting unquoted expansions at blanks', async () => {
    const device = freshDevice();
    expect(await run(device, 'X=1; echo $X ${X}2 "$X"')).toMatchObject({ status: 0, stdout: '1 12 1\n' });
    expect((await run(device, 'false; echo $?; true; echo $?')).stdout).toBe('1\n0\n');
    expect((await run(device, 'ls /nope 2>/dev/null; echo $?')).stdout).toBe('1\n');
    expect((await run(device, 'Y="a  b"; echo $Y; echo "$Y"; echo $UNSET. "$UNSET".')).stdout).toBe('a b\na  b\n. .\n');
    expect((await run(device, 'export Z=3; echo $Z; unset Z; echo $Z.')).stdout).toBe('3\n.\n');
    // Each line runs in a new shell: nothing carries over.
    expect((await run(device, 'echo $X.')).stdout).toBe('.\n');
  });

  it('runs sh -c with its own $0 and arguments, and sh reading a script from its input', async () => {
    const device = freshDevice();
    expect(await run(device, "sh -c 'echo $0 $1 $#; exit 5' zero one")).toEqual({ status: 5, stdout: 'zero one 1\n', stderr: '' });
    expect((await run(device, "sh -c 'exit 4'; echo $?")).stdout).toBe('4\n');
    expect(await run(device, 'sh', Buffer.from('echo from; X=2\necho $X\nexit 6\necho never\n'))).toEqual({
      status: 6,
      stdout: 'from\n2\n',
      stderr: '',
    });
    expect(await run(device, 'sh -c')).toMatchObject({ status: 2, stderr: '/system/bin/sh: -c: option requires an argument\n' });
  });

  it('pipes commands into each other; the status is the last one\'s', async () => {
    const device = freshDevice();
    expect(await run(device, 'echo one two | wc -w')).toEqual({ status: 0, stdout: '2\n', stderr: '' });
    expect(await run(device, 'getprop | grep ro.product.model | wc -l')).toMatchObject({ status: 0, stdout: '1\n' });
    expect((await run(device, 'true | false')).status).toBe(1);
    expect((await run(device, 'false | true')).status).toBe(0);
    // head stops reading; a long producer ends with SIGPIPE instead of running on.
    device.files.write('/sdcard/many', Buffer.from('line\n'.repeat(200_000)), { permissions: 0o644 });
    expect(await run(device, 'cat /sdcard/many /sdcard/many | head -n 2')).toEqual({ status: 0, stdout: 'line\nline\n', stderr: '' });
    expect((await run(device, 'cat /sdcard/many | head -n 1; echo $?')).stdout).toBe('line\n0\n');
    // stdin flows to the first command of a pipeline.
    expect((await run(device, 'cat | grep b', Buffer.from('a\nb\nc\n'))).stdout).toBe('b\n');
  });

  it('redirects into the device files, as the shell user may', async () => {
    const device = freshDevice();
    expect(await run(device, 'echo hello > /sdcard/f; echo more >> /sdcard/f; cat /sdcard/f')).toMatchObject({
      status: 0,
      stdout: 'hello\nmore\n',
    });
    expect((await run(device, 'echo new > /sdcard/f; cat < /sdcard/f')).stdout).toBe('new\n');
    expect(await run(device, 'ls /nope > /sdcard/out 2>&1; cat /sdcard/out')).toMatchObject({
      stdout: 'ls: /nope: No such file or directory\n',
    });
    expect(await run(device, 'ls /nope 2>/dev/null')).toEqual({ status: 1, stdout: '', stderr: '' });
    expect(await run(device, 'echo err >&2')).toEqual({ status: 0, stdout: '', stderr: 'err\n' });
    expect(await run(device, 'echo x > /system/x')).toEqual({
      status: 1,
      stdout: '',
      stderr: "/system/bin/sh: can't create /system/x: Read-only file system\n",
    });
    expect((await run(device, 'cat < /nope')).stderr).toBe("/system/bin/sh: can't open /nope: No such file or directory\n");
    expect((await run(device, 'cat > /sdcard/piped', Buffer.from('in\n'))).status).toBe(0);
    expect(device.files.read('/sdcard/piped').toString()).toBe('in\n');
  });

  it('fails a redirected write past the storage with No space left on device', async () => {
    const device = new Device({ ...defaultProfile(0), storageMiB: 1 });
    device.files.write('/sdcard/big', Buffer.alloc(1024 * 1024 - 2), { permissions: 0o644 });
    expect(await run(device, 'echo abc > /sdcard/small')).toEqual({
      status: 1,
      stdout: '',
      stderr: 'echo: write error: No space left on device\n',
    });
  });

  it('has grep as toybox has it', async () => {
    const device = freshDevice();
    device.files.write('/sdcard/t', Buffer.from('Alpha 1\nbeta 22\ngamma 333\nalphabet\n'), { permissions: 0o644 });
    const grep = async (args: string) => run(device, `grep ${args}`);
    expect(await grep('alpha /sdcard/t')).toEqual({ status: 0, stdout: 'alphabet\n', stderr: '' });
    expect((await grep('-i alpha /sdcard/t')).stdout).toBe('Alpha 1\nalphabet\n');
    expect((await grep('-v a /sdcard/t')).status).toBe(1);
    expect((await grep('-c a /sdcard/t')).stdout).toBe('4\n');
    expect((await grep('-n beta /sdcard/t')).stdout).toBe('2:beta 22\n');
    expect((await grep("-E '[0-9]{3}' /sdcard/t")).stdout).toBe('gamma 333\n');
    expect((await grep("'[0-9]\\{2\\}' /sdcard/t")).stdout).toBe('beta 22\ngamma 333\n');
    expect((await grep("-o '[[:digit:]]\\+' /sdcard/t")).stdout).toBe('1\n22\n333\n');
    expect((await grep('-w alpha -i /sdcard/t')).stdout).toBe('Alpha 1\n');
    expect((await grep('-x alphabet /sdcard/t')).stdout).toBe('alphabet\n');
    expect((await grep('-F . /sdcard/t')).status).toBe(1);
    expect((await grep('-e beta -e gamma /sdcard/t')).stdout).toBe('beta 22\ngamma 333\n');
    expect((await grep('-m 1 a /sdcard/t')).stdout).toBe('Alpha 1\n');
    expect(await grep('-q beta /sdcard/t')).toEqual({ status: 0, stdout: '', stderr: '' });
    expect((await grep('-l beta /sdcard/t /sdcard/t')).stdout).toBe('/sdcard/t\n/sdcard/t\n');
    expect((await grep('beta /sdcard/t /sdcard/t')).stdout).toBe('/sdcard/t:beta 22\n/sdcard/t:beta 22\n');
    expect(await grep('x /nope')).toEqual({ status: 2, stdout: '', stderr: 'grep: /nope: No such file or directory\n' });
    expect((await grep("'' /sdcard/t")).stdout.split('\n')).toHaveLength(5);
    expect(await run(device, 'grep')).toEqual({ status: 2, stdout: '', stderr: 'grep: Need 1 argument\n' });
    expect(await grep('-z x')).toEqual({ status: 2, stdout: '', stderr: "grep: Unknown option 'z'\n" });
  });

  it('has head and wc as toybox has them', async () => {
    const device = freshDevice();
    const text = Array.from({ length: 12 }, (_, index) => `l${index + 1}`).join('\n');
    device.files.write('/sdcard/t', Buffer.from(`${text}\n`), { permissions: 0o644 });
    device.files.write('/sdcard/w', Buffer.from('one two\tthree\n  four'), { permissions: 0o644 });
    expect((await run(device, 'head /sdcard/t')).stdout).toBe(`${text.split('\n').slice(0, 10).join('\n')}\n`);
    expect((await run(device, 'head -n 2 /sdcard/t')).stdout).toBe('l1\nl2\n');
    expect((await run(device, 'head -3 /sdcard/t')).stdout).toBe('l1\nl2\nl3\n');
    expect((await run(device, 'head -c 4 /sdcard/t')).stdout).toBe('l1\nl');
    expect((await run(device, 'head -n 1 /sdcard/t /sdcard/w')).stdout).toBe('==> /sdcard/t <==\nl1\n\n==> /sdcard/w <==\none two\tthree\n');
    expect((await run(device, 'head -n x /sdcard/t')).stderr).toBe('head: not integer: x\n');
    expect((await run(device, 'wc /sdcard/w')).stdout).toBe('1 4 20 /sdcard/w\n');
    expect((await run(device, 'wc -l /sdcard/t')).stdout).toBe('12 /sdcard/t\n');
    expect((await run(device, 'wc -c < /sdcard/w')).stdout).toBe('20\n');
    expect((await run(device, 'wc -lw /sdcard/t /sdcard/w')).stdout).toBe('12 12 /sdcard/t\n1 4 /sdcard/w\n13 16 total\n');
    expect(await run(device, 'wc /nope')).toEqual({ status: 1, stdout: '', stderr: 'wc: /nope: No such file or directory\n' });
  });

  it('lists processes with ps as toybox does: the shell and ps itself, or everything with -A', async () => {
    const device = new Device({ ...defaultProfile(0) });
    const header = 'USER           PID  PPID     VSZ    RSS WCHAN            ADDR S NAME\n';
    const own = await run(device, 'ps');
    expect(own.stdout.startsWith(header)).toBe(true);
    expect(own.stdout.split('\n').slice(1, -1).map((line) => line.split(/ +/).at(-1))).toEqual(['sh', 'ps']);
    const all = (await run(device, 'ps -A')).stdout;
    expect(all).toMatch(/^root +1 +0 +\d+ +\d+ do_epoll_wait +0 S init$/m);
    expect(all).toMatch(/^system +1432 +\d+ .* system_server$/m);
    expect((await run(device, 'ps -A | grep -c system_server')).stdout).toBe('1\n');
    device.packages.running.add('com.example.app');
    const app = await run(device, 'ps -A | grep com.example.app');
    const pid = app.stdout.split(/ +/)[1];
    expect(app.stdout).toMatch(/^u0_a\d+ +\d+ +\d+ .* S com\.example\.app\n$/);
    expect((await run(device, 'pidof com.example.app')).stdout).toBe(`${pid}\n`);
    expect((await run(device, `ps -p ${pid}`)).stdout).toBe(header + app.stdout);
    expect((await run(device, 'pidof nothing')).status).toBe(1);
  });
});

describe('the interactive shell on a pty', () => {
  async function session(typed: string[], profile = BUILT_IN_PROFILES['emulator-x86_64']!): Promise<{ status: number; screen: string }> {
    const device = new Device({ ...profile, serial: 'CPTEST' });
    const input = new ByteQueue();
    let screen = '';
    const output = terminalOutput(async (data) => void (screen += data.toString()));
    const ended = runInteractiveShell(device.userland, input, {
      stdout: output,
      stderr: output,
      signal: new AbortController().signal,
    });
    for (const chunk of typed) {
      input.push(Buffer.from(chunk));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    input.end();
    return { status: await ended, screen };
  }

  it('prompts with the device name, echoes what is typed and ends with the exit code', async () => {
    const { status, screen } = await session(['echo hi\r', 'X=2; echo $X\r', 'exit 3\r', 'echo never\r']);
    expect(status).toBe(3);
    expect(screen).toBe('emu64x:/ $ echo hi\r\nhi\r\nemu64x:/ $ X=2; echo $X\r\n2\r\nemu64x:/ $ exit 3\r\n');
  });

  it('erases with Backspace, kills the line with Ctrl-U, drops arrow keys, and ends on Ctrl-D with the last status', async () => {
    const { status, screen } = await session(['echo ab\x7fc\r', 'junk\x15ls /nope\x1b[A\r', '\x04']);
    expect(status).toBe(1);
    expect(screen).toBe(
      'emu64x:/ $ echo ab\b \bc\r\nac\r\n' +
        'emu64x:/ $ junk\b \b\b \b\b \b\b \bls /nope\r\nls: /nope: No such file or directory\r\nemu64x:/ $ ',
    );
  });

  it('ends when its output goes away, without an unhandled echo failure', async () => {
    const device = new Device({ ...defaultProfile(0) });
    const input = new ByteQueue();
    let open = true;
    const output = async () => {
      if (!open) throw new StreamClosedError('stream closed');
    };
    const ended = runInteractiveShell(device.userland, input, { stdout: output, stderr: output, signal: new AbortController().signal });
    open = false;
    input.push(Buffer.from('echo typed'));
    expect(await ended).toBe(0);
  });

  it('interrupts a running command with Ctrl-C and gives commands the typed lines as input', async () => {
    const { status, screen } = await session(['sleep 100\r', '\x03', 'cat\r', 'typed\r', '\x04', 'echo $?\r', 'exit\r']);
    expect(status).toBe(0);
    expect(screen).toBe(
      'emu64x:/ $ sleep 100\r\n^C\r\nemu64x:/ $ cat\r\ntyped\r\ntyped\r\nemu64x:/ $ echo $?\r\n0\r\nemu64x:/ $ exit\r\n',
    );
  });
});
