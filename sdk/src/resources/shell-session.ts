import { PassThrough, type Readable } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { CloudPhoneError } from '../core/errors.js';
import { DeviceStreamError, streamCloseError } from './errors.js';

/** The channel byte in front of every server→client binary frame of a shell stream. */
const STDOUT = 1;
const STDERR = 2;

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * An interactive shell on a device (`device.openShell()`), over the `openDeviceShell` WebSocket. Read `stdout`
 * and `stderr` as Node streams (or `for await`), send input with `write` and `end`, and await `exited` for the
 * exit code. A pty session has no separate stderr: everything arrives on `stdout`.
 *
 * @example
 * ```ts
 * const session = await device.openShell({ command: 'cat' });
 * session.stdout.pipe(process.stdout);
 * await session.write('hello\n');
 * await session.end();
 * const exitCode = await session.exited; // 0
 * ```
 */
export class ShellSession {
  /** The command's standard output (and, with a pty, its standard error too). Ends when the session ends. */
  readonly stdout: Readable;
  /** The command's standard error (empty with a pty). Ends when the session ends. */
  readonly stderr: Readable;
  /**
   * Resolves with the exit code (`null` when the device did not report one) once the session ended, or rejects
   * with a `DeviceStreamError` (a `LeaseEndedError` when the lease ended) after an error frame or an abnormal close.
   */
  readonly exited: Promise<number | null>;

  readonly #socket: WebSocket;
  readonly #stdout = new PassThrough();
  readonly #stderr = new PassThrough();
  #exitCode: number | null = null;
  #errorFrame: { code?: unknown; detail?: unknown } | undefined;
  #ended = false;
  readonly #waitingForDrain = new Set<PassThrough>();

  /** @internal Made by `DeviceHandle.openShell`. */
  constructor(socket: WebSocket, options: { signal?: AbortSignal } = {}) {
    this.#socket = socket;
    this.stdout = this.#stdout;
    this.stderr = this.#stderr;
    this.exited = new Promise<number | null>((resolve, reject) => {
      socket.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
      socket.on('error', () => undefined); // the close that follows settles `exited`
      socket.on('close', (code, reason) => {
        this.#ended = true;
        options.signal?.removeEventListener('abort', onAbort);
        this.#stdout.end();
        this.#stderr.end();
        const error = streamCloseError(code, reason.toString('utf8'), this.#errorFrame);
        if (error === null) resolve(this.#exitCode);
        else reject(error);
      });
      const onAbort = (): void => {
        if (!this.#ended) socket.terminate();
      };
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    // Callers that only read the streams must not crash the process on an unawaited rejection.
    this.exited.catch(() => undefined);
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (isBinary) {
      const bytes = toBuffer(data);
      if (bytes.length === 0) return;
      const channel = bytes[0] === STDERR ? this.#stderr : bytes[0] === STDOUT ? this.#stdout : undefined;
      if (channel === undefined) return;
      // Backpressure: stop reading the socket until the reader catches up.
      if (!channel.write(bytes.subarray(1)) && !this.#waitingForDrain.has(channel)) {
        this.#waitingForDrain.add(channel);
        this.#socket.pause();
        channel.once('drain', () => {
          this.#waitingForDrain.delete(channel);
          if (!this.#ended && this.#waitingForDrain.size === 0) this.#socket.resume();
        });
      }
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(toBuffer(data).toString('utf8'));
    } catch {
      return;
    }
    if (typeof frame !== 'object' || frame === null) return;
    const { type } = frame as { type?: unknown };
    if (type === 'exit') {
      const { exitCode } = frame as { exitCode?: unknown };
      this.#exitCode = typeof exitCode === 'number' ? exitCode : null;
    } else if (type === 'error') {
      this.#errorFrame = frame as { code?: unknown; detail?: unknown };
    }
  }

  #send(data: string | Uint8Array, binary: boolean): Promise<void> {
    if (this.#ended || this.#socket.readyState !== this.#socket.OPEN) {
      return Promise.reject(new DeviceStreamError('session_closed', { message: 'The shell session has ended.' }));
    }
    return new Promise((resolve, reject) => {
      this.#socket.send(data, { binary }, (error) => {
        if (error) reject(new CloudPhoneError(`Could not send to the shell session: ${error.message}`, { cause: error }));
        else resolve();
      });
    });
  }

  /** Sends bytes (strings as UTF-8) to the command's standard input. */
  write(data: string | Uint8Array): Promise<void> {
    return this.#send(typeof data === 'string' ? Buffer.from(data, 'utf8') : data, true);
  }

  /** Closes the command's standard input (`{"type":"eof"}`). */
  end(): Promise<void> {
    return this.#send(JSON.stringify({ type: 'eof' }), false);
  }

  /** Changes the pty's size. */
  resize(rows: number, cols: number): Promise<void> {
    return this.#send(JSON.stringify({ type: 'resize', rows, cols }), false);
  }

  /** Asks the server to kill the command; `exited` then settles as the server reports it. */
  kill(): Promise<void> {
    return this.#send(JSON.stringify({ type: 'kill' }), false);
  }

  /** Drops the connection at once (the server kills the command). `exited` rejects with `connection_closed`. */
  close(): void {
    if (!this.#ended) this.#socket.terminate();
  }
}
