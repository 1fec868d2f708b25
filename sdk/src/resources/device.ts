import { createReadStream } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { RawData } from 'ws';
import type { CloudPhone, RequestOptions } from '../client.js';
import type { BinaryResponse } from '../core/binary.js';
import { CloudPhoneError } from '../core/errors.js';
import { openWebSocket } from '../core/websocket.js';
import type {
  Device,
  FileEntry,
  InputAction,
  LeaseDevice,
  LogEntry,
  Package,
  PushResult,
  RebootRequest,
  ShellRequest,
  ShellResult,
} from '../generated/models.js';
import type { QueryOf } from '../generated/operations.js';
import { DeviceStreamError, streamCloseError } from './errors.js';
import { ShellSession } from './shell-session.js';

/** Extra seconds a request waits beyond the device-side timeout it asked for, for the server to answer. */
const TIMEOUT_MARGIN_SECONDS = 15;

export interface ShellOptions extends RequestOptions {
  /** Seconds before the device kills the command (it then answers `timedOut: true`, exit code -1). Default 60. */
  timeoutSeconds?: number;
  /** Text sent to the command's standard input (up to 1 MiB). */
  stdin?: string;
}

export interface PushOptions extends RequestOptions {
  /** The file's permission bits on the device (`0o644`). */
  mode?: number;
}

export interface OpenShellOptions {
  /** The command to run; an interactive shell when left out. */
  command?: string;
  /** Allocate a pseudo-terminal (stdout and stderr then arrive together on `stdout`). Default false. */
  pty?: boolean;
  rows?: number;
  cols?: number;
  /** Aborts the handshake, or once open drops the connection. */
  signal?: AbortSignal;
  /** Milliseconds for the opening handshake. Default: the client's timeout. */
  timeout?: number;
}

/** Filters of `logcat` and `followLogcat`. */
export type LogcatFilter = NonNullable<QueryOf<'getDeviceLogcat'>>;

/** A local file path (streamed, never read whole), bytes, or a stream of bytes. */
export type PushSource = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/** The fields a handle may know about its device: those of `Device` (after `refresh`) and of `LeaseDevice`. */
type KnownDeviceFields = Partial<Omit<Device, 'id'>> & Partial<Omit<LeaseDevice, 'id' | 'serial' | 'kind'>>;

// Merged with the class below: the handle carries these fields as properties, copied in at run time.
export interface DeviceHandle extends Readonly<KnownDeviceFields> {}

/**
 * One device, by id, with methods for what a lease lets you do with it. Get one from `cp.devices.handle(id)` or
 * from a lease (`lease.devices`). The fields known about the device (`serial`, `kind`, … from the lease, or every
 * `Device` field after `refresh()`) are properties of the handle.
 *
 * @example
 * ```ts
 * const device = cp.devices.handle('dev_01JDX6A1B2C3D4E5F6G7H8J9K0');
 * const { stdout } = await device.shell('getprop ro.product.model');
 * await device.push('./app.apk', '/data/local/tmp/app.apk');
 * ```
 */
export class DeviceHandle {
  /** The device id (`dev_…`). */
  readonly id: string;
  readonly #client: CloudPhone;

  constructor(client: CloudPhone, deviceId: string, fields: KnownDeviceFields | Device | LeaseDevice = {}) {
    this.#client = client;
    Object.assign(this, fields);
    this.id = deviceId;
  }

  /** The client this handle calls through. */
  get client(): CloudPhone {
    return this.#client;
  }

  #path() {
    return { deviceId: this.id };
  }

  /**
   * Runs a command and waits for it. A string is a shell line; an array is argv (each word quoted for you).
   * A non-zero exit code is not an error: check `exitCode`.
   */
  shell(command: string | string[], options: ShellOptions = {}): Promise<ShellResult> {
    const { timeoutSeconds, stdin, ...requestOptions } = options;
    const body: ShellRequest = {
      ...(typeof command === 'string' ? { command } : { argv: command }),
      ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
      ...(stdin === undefined ? {} : { stdin }),
    };
    return this.#client.request(
      'runDeviceShell',
      { path: this.#path(), body },
      withDeviceTimeout(this.#client, requestOptions, timeoutSeconds ?? 60),
    );
  }

  /**
   * Uploads a file to `remotePath`, replacing it. A string `source` is a local file path, streamed from disk;
   * bytes and streams are sent as they are. Streamed uploads are not retried.
   */
  async push(source: PushSource, remotePath: string, options: PushOptions = {}): Promise<PushResult> {
    const { mode, ...requestOptions } = options;
    let body: Uint8Array | Readable | AsyncIterable<Uint8Array>;
    if (typeof source === 'string') {
      const info = await stat(source); // a missing file fails here, with its ENOENT, before any request
      if (!info.isFile()) throw new CloudPhoneError(`push: ${source} is not a file.`);
      body = createReadStream(source);
    } else {
      body = source;
    }
    const query = { path: remotePath, ...(mode === undefined ? {} : { mode }) } as QueryOf<'pushDeviceFile'>;
    try {
      return await this.#client.request('pushDeviceFile', { path: this.#path(), body, query }, requestOptions);
    } finally {
      if (typeof source === 'string') (body as Readable).destroy();
    }
  }

  /** Downloads a file: read the `BinaryResponse` once (`bytes()`, `toFile()`, `body`). */
  pull(remotePath: string, options?: RequestOptions): Promise<BinaryResponse> {
    return this.#client.request('pullDeviceFile', { path: this.#path(), query: { path: remotePath } }, options);
  }

  /** Downloads a file into `localPath` (created or truncated), streaming, and resolves to the bytes written. */
  async pullTo(remotePath: string, localPath: string, options?: RequestOptions): Promise<number> {
    const response = await this.pull(remotePath, options);
    await response.toFile(localPath);
    return (await stat(localPath)).size;
  }

  /** The entries of a directory on the device (without `.` and `..`), sorted by name. */
  async ls(path: string, options?: RequestOptions): Promise<FileEntry[]> {
    const listing = await this.#client.request('listDeviceFiles', { path: this.#path(), query: { path } }, options);
    return listing.entries;
  }

  /** A screenshot, as PNG bytes. */
  async screenshot(options?: RequestOptions): Promise<Uint8Array> {
    const response = await this.#client.request('takeDeviceScreenshot', { path: this.#path() }, options);
    return response.bytes();
  }

  /** Saves a screenshot (PNG) to `localPath` and resolves to its size in bytes. */
  async screenshotTo(localPath: string, options?: RequestOptions): Promise<number> {
    const png = await this.screenshot(options);
    await writeFile(localPath, png);
    return png.byteLength;
  }

  /** The device's log as it is now (`tail` limits it to the last entries). */
  async logcat(filter?: LogcatFilter, options?: RequestOptions): Promise<LogEntry[]> {
    const dump = await this.#client.request('getDeviceLogcat', { path: this.#path(), ...(filter ? { query: filter } : {}) }, options);
    return dump.entries;
  }

  /**
   * Follows the device's log over a WebSocket: new entries as they are written. Connects on the first `next()`.
   * Breaking out of the loop or aborting `signal` closes the connection and ends the iteration quietly; an error
   * frame, or the lease ending (close 4001, `LeaseEndedError`), ends it with a `DeviceStreamError`.
   *
   * @example
   * ```ts
   * for await (const entry of device.followLogcat({ priority: 'W' }, { signal })) console.log(entry.tag, entry.message);
   * ```
   */
  followLogcat(
    filter: Omit<LogcatFilter, 'tail'> = {},
    options: { signal?: AbortSignal; timeout?: number } = {},
  ): AsyncIterable<LogEntry> {
    const client = this.#client;
    const path = this.#path();
    return {
      [Symbol.asyncIterator]: () => followLogcat(client, path, filter, options),
    };
  }

  /**
   * Opens an interactive shell session over a WebSocket (`openDeviceShell`). Resolves once connected; a refusal
   * (no lease, device offline) rejects with the typed `APIError`.
   */
  async openShell(options: OpenShellOptions = {}): Promise<ShellSession> {
    const { command, pty, rows, cols, signal, timeout } = options;
    const query = {
      ...(command === undefined ? {} : { command }),
      ...(pty === undefined ? {} : { pty }),
      ...(rows === undefined ? {} : { rows }),
      ...(cols === undefined ? {} : { cols }),
    };
    const socket = await openWebSocket(
      this.#client,
      'openDeviceShell',
      { path: this.#path(), query },
      { ...(signal ? { signal } : {}), ...(timeout === undefined ? {} : { timeout }) },
    );
    return new ShellSession(socket, signal ? { signal } : {});
  }

  /**
   * Reboots the device. With `wait` (the default) it resolves once the device is back online (or fails with
   * 504 `device_timeout` after `timeoutSeconds`, default 120). Updates this handle's fields.
   */
  async reboot(body: RebootRequest = {}, options: RequestOptions = {}): Promise<Device> {
    const waitSeconds = body.wait === false ? 0 : (body.timeoutSeconds ?? 120);
    const device = await this.#client.request(
      'rebootDevice',
      { path: this.#path(), body },
      withDeviceTimeout(this.#client, options, waitSeconds),
    );
    Object.assign(this, device);
    return device;
  }

  /** Sends a tap, swipe, text or key event. */
  async input(action: InputAction, options?: RequestOptions): Promise<void> {
    await this.#client.request('sendDeviceInput', { path: this.#path(), body: action }, options);
  }

  /** Taps the screen at (`x`, `y`) pixels. */
  tap(x: number, y: number, options?: RequestOptions): Promise<void> {
    return this.input({ type: 'tap', x, y }, options);
  }

  /** Swipes from (`x1`, `y1`) to (`x2`, `y2`), over `durationMs` when given. */
  swipe(x1: number, y1: number, x2: number, y2: number, durationMs?: number, options?: RequestOptions): Promise<void> {
    return this.input({ type: 'swipe', x1, y1, x2, y2, ...(durationMs === undefined ? {} : { durationMs }) }, options);
  }

  /** Types text into the focused field. */
  text(text: string, options?: RequestOptions): Promise<void> {
    return this.input({ type: 'text', text }, options);
  }

  /** Presses a key: a key code name (`HOME`, `KEYCODE_BACK`) or number. */
  key(key: string | number, options?: RequestOptions): Promise<void> {
    return this.input({ type: 'keyevent', key: String(key) }, options);
  }

  /** The installed packages; `thirdParty` keeps only those the user installed. */
  async packages(query: { thirdParty?: boolean } = {}, options?: RequestOptions): Promise<Package[]> {
    const list = await this.#client.request('listDevicePackages', { path: this.#path(), query }, options);
    return list.data;
  }

  /** Fetches the device (`getDevice`) and updates this handle's fields with it. */
  async refresh(options?: RequestOptions): Promise<Device> {
    const device = await this.#client.request('getDevice', { path: this.#path() }, options);
    Object.assign(this, device);
    return device;
  }

  /** The known fields, without the client. */
  toJSON(): Record<string, unknown> {
    return { ...this } as Record<string, unknown>;
  }
}

/** `options` with a timeout long enough for an operation the device may spend `deviceSeconds` on. */
function withDeviceTimeout(client: CloudPhone, options: RequestOptions, deviceSeconds: number): RequestOptions {
  if (options.timeout !== undefined) return options;
  const needed = (deviceSeconds + TIMEOUT_MARGIN_SECONDS) * 1000;
  return needed > client.timeout ? { ...options, timeout: needed } : options;
}

function frameText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

async function* followLogcat(
  client: CloudPhone,
  path: { deviceId: string },
  filter: Omit<LogcatFilter, 'tail'>,
  options: { signal?: AbortSignal; timeout?: number },
): AsyncGenerator<LogEntry, void, undefined> {
  const { signal } = options;
  if (signal?.aborted) return;
  const socket = await openWebSocket(
    client,
    'followDeviceLogcat',
    { path, query: filter },
    { ...(signal ? { signal } : {}), ...(options.timeout === undefined ? {} : { timeout: options.timeout }) },
  );
  const queue: LogEntry[] = [];
  let done = false;
  let failure: Error | null = null;
  let errorFrame: { code?: unknown; detail?: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const HIGH_WATER = 1000;
  let aborted = false;
  socket.on('message', (data, isBinary) => {
    if (isBinary) return;
    let frame: unknown;
    try {
      frame = JSON.parse(frameText(data));
    } catch {
      failure ??= new DeviceStreamError('invalid_frame', { message: 'followLogcat: the server sent a frame that is not JSON.' });
      socket.terminate();
      return;
    }
    if (typeof frame === 'object' && frame !== null && (frame as { type?: unknown }).type === 'error') {
      errorFrame = frame as { code?: unknown; detail?: unknown };
      return;
    }
    queue.push(frame as LogEntry);
    if (queue.length >= HIGH_WATER && !socket.isPaused) socket.pause();
    notify();
  });
  socket.on('error', () => undefined); // the close that follows ends the iteration
  socket.on('close', (code, reason) => {
    done = true;
    if (!aborted) failure ??= streamCloseError(code, reason.toString('utf8'), errorFrame);
    notify();
  });
  const onAbort = (): void => {
    aborted = true;
    socket.close(1000);
    notify();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      if (aborted) return;
      const entry = queue.shift();
      if (entry !== undefined) {
        if (socket.isPaused && queue.length < HIGH_WATER / 2 && !done) socket.resume();
        yield entry;
        continue;
      }
      if (done) {
        if (failure) throw failure;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(1000);
  }
}
