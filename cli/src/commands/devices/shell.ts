import { Args, Flags } from '@oclif/core';
import type { ShellRequest, ShellResult } from '@cloudphone/sdk';
import { DeviceCommand, deviceOption } from '../../lib/device-command.js';
import { ACCESS_ENDED_CLOSE_CODE } from '../../lib/device.js';
import { SHELL_TIMEOUT_EXIT, shellCommand, shellExitCode } from '../../lib/device-io.js';
import { CliError, ExitCode, UsageError } from '../../lib/errors.js';

export default class DevicesShell extends DeviceCommand<typeof DevicesShell> {
  static override summary = 'Run a shell command on a device, or open an interactive shell';

  static override description = `Runs the command given after -- (each word passed as is) or as --command (one string \
for the device's sh), prints its standard output and standard error as they are, and exits with the command's exit code \
(${SHELL_TIMEOUT_EXIT} when it ran out of --timeout, 1 when the device reported none). With --json, prints the result \
(exitCode, stdout, stderr, timedOut, truncated, durationMs) and exits 0: the exit code is in the result.

Without a command on a terminal (or with --interactive), opens an interactive shell: the terminal is put in raw mode and \
resized with the window; the shell ends when the remote shell exits (Ctrl-D in it), and the CLI exits with its exit code. \
With --interactive and standard input not a terminal, the device's shell runs the lines piped in, one by one, without a \
prompt (as \`adb shell\` does). Needs a granted lease on the device.`;

  static override usage = [
    'devices shell [DEVICE] [--timeout <seconds>] [--stdin] -- <command>...',
    'devices shell [DEVICE] --command <string>',
    'devices shell [DEVICE] [-i]',
  ];

  static override examples = [
    { description: 'Run a command.', command: '<%= config.bin %> devices shell dev_01JDX6A1B2C3D4E5F6G7H8J9K0 -- getprop ro.product.model' },
    { description: 'The device from CLOUDPHONE_DEVICE, a pipeline as one string.', command: "<%= config.bin %> devices shell --command 'ls /sdcard | wc -l'" },
    { description: 'Send standard input to the command.', command: '<%= config.bin %> devices shell --stdin -- sh -c "cat > /data/local/tmp/in.txt" < in.txt' },
    { description: 'An interactive shell.', command: '<%= config.bin %> devices shell -s dev_01JDX6A1B2C3D4E5F6G7H8J9K0' },
  ];

  static override args = {
    device: Args.string({ required: false, ignoreStdin: true, description: 'The device id (or --device, or CLOUDPHONE_DEVICE).' }),
  };

  static override flags = {
    device: deviceOption(),
    command: Flags.string({ char: 'c', summary: 'The command as one string for the device shell (instead of words after --).', helpValue: '<string>' }),
    timeout: Flags.integer({ summary: 'Stop the command after this many seconds [default: 60].', min: 1, max: 3600, helpValue: '<seconds>' }),
    stdin: Flags.boolean({ summary: 'Read standard input to its end and send it to the command (at most 1 MiB).', exclusive: ['interactive'] }),
    interactive: Flags.boolean({ char: 'i', summary: 'Open an interactive shell (the default without a command on a terminal).' }),
  };

  /** The words after `--`. */
  #words: string[] | undefined;

  override async init(): Promise<void> {
    // Everything after `--` is the device command, not ours to parse.
    const separator = this.argv.indexOf('--');
    if (separator !== -1) {
      this.#words = this.argv.slice(separator + 1);
      this.argv = this.argv.slice(0, separator);
    }
    await super.init();
  }

  async run(): Promise<void> {
    const command = shellCommand(this.#words, this.flags.command);
    const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
    const interactive = this.flags.interactive || (command === undefined && terminal && !this.flags.stdin);
    if (interactive) {
      if (this.jsonEnabled()) throw new UsageError('--json is not for interactive shells: give a command');
      return this.interactive(command);
    }
    if (command === undefined) {
      throw new UsageError('Give the command after -- (or as --command), or run without one on a terminal for an interactive shell');
    }
    const deviceId = this.deviceId(this.args.device);
    const body: ShellRequest = { ...command };
    if (this.flags.timeout !== undefined) body.timeoutSeconds = this.flags.timeout;
    if (this.flags.stdin) body.stdin = await readAllStdin();
    const client = await this.api();
    const result: ShellResult = await client.request('runDeviceShell', { path: { deviceId }, body });
    if (this.jsonEnabled()) return this.outJson(result);
    await write(process.stdout, result.stdout);
    await write(process.stderr, result.stderr);
    if (result.truncated) this.note('cloudphone: the output was truncated (too large).');
    if (result.timedOut) this.note(`cloudphone: the command timed out after ${body.timeoutSeconds ?? 60} s.`);
    const code = shellExitCode(result);
    if (code !== 0) this.exit(code);
  }

  /** An interactive shell over the openDeviceShell WebSocket. */
  private async interactive(command: { argv: string[] } | { command: string } | undefined): Promise<void> {
    const deviceId = this.deviceId(this.args.device);
    const { openWebSocket } = await import('@cloudphone/sdk');
    const stdin = process.stdin;
    const stdout = process.stdout;
    const pty = Boolean(stdin.isTTY);
    const query: { command?: string; pty: boolean; rows?: number; cols?: number } = { pty };
    if (command) query.command = 'command' in command ? command.command : command.argv.map(quote).join(' ');
    if (pty && stdout.isTTY && stdout.rows > 0 && stdout.columns > 0) {
      query.rows = stdout.rows;
      query.cols = stdout.columns;
    }
    const client = await this.api();
    const socket = await openWebSocket(client, 'openDeviceShell', { path: { deviceId }, query });

    const outcome = await new Promise<{ exitCode: number | null; error?: string; leaseEnded?: boolean }>((resolve) => {
      let exitCode: number | null = null;
      let error: string | undefined;
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          if (data.length === 0) return;
          (data[0] === 2 ? process.stderr : stdout).write(data.subarray(1));
          return;
        }
        try {
          const message = JSON.parse(data.toString('utf8')) as { type?: string; exitCode?: number | null; code?: string; detail?: string };
          if (message.type === 'exit') exitCode = message.exitCode ?? null;
          else if (message.type === 'error') error = `${message.detail ?? 'The shell failed'} (${message.code ?? 'error'})`;
        } catch {
          // Not ours: ignore.
        }
      });
      socket.on('error', (cause: Error) => {
        error ??= cause.message;
      });
      socket.on('close', (code: number, reason: Buffer) => {
        const leaseEnded = code === ACCESS_ENDED_CLOSE_CODE;
        if (leaseEnded) error = `Access to the device ended: ${reason.toString('utf8') || 'lease ended'} (${code})`;
        resolve(error === undefined ? { exitCode } : { exitCode, error, leaseEnded });
      });

      const onData = (chunk: Buffer): void => {
        if (socket.readyState === socket.OPEN) socket.send(chunk, { binary: true });
      };
      const onEnd = (): void => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ type: 'eof' }));
      };
      const onResize = (): void => {
        if (socket.readyState === socket.OPEN && stdout.rows > 0 && stdout.columns > 0) {
          socket.send(JSON.stringify({ type: 'resize', rows: stdout.rows, cols: stdout.columns }));
        }
      };
      if (pty) stdin.setRawMode(true);
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      stdin.resume();
      if (pty && stdout.isTTY) {
        stdout.on('resize', onResize);
        process.on('SIGWINCH', onResize);
      }
      // Without a terminal, Ctrl-C kills the remote command, then the CLI exits 130.
      this.onInterrupt(() => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ type: 'kill' }));
        setTimeout(() => process.exit(ExitCode.interrupted), 500).unref();
      });
      socket.once('close', () => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdout.off('resize', onResize);
        process.off('SIGWINCH', onResize);
        if (pty) stdin.setRawMode(false);
        stdin.pause();
      });
    });
    if (outcome.error !== undefined) {
      throw new CliError(outcome.error, outcome.leaseEnded ? 'lease_ended' : 'shell_failed', ExitCode.error);
    }
    const code = outcome.exitCode === null ? 1 : shellExitCode({ exitCode: outcome.exitCode, timedOut: false });
    if (code !== 0) this.exit(code);
  }
}

/** Single-quotes a word for the device's sh. */
function quote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > 1024 * 1024) throw new UsageError('Standard input is larger than 1 MiB: use `devices push` for files');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Writes text and waits until it is handed to the OS (so exiting right after loses nothing). */
function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  if (text === '') return Promise.resolve();
  return new Promise((resolve, reject) => stream.write(text, (error) => (error ? reject(error) : resolve())));
}
