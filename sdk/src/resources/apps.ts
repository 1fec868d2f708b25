import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import type { CloudPhone, RequestOptions } from '../client.js';
import type { BinaryResponse } from '../core/binary.js';
import { APIError, APIUserAbortError, CloudPhoneError } from '../core/errors.js';
import type { App, InstallJob, InstallRequest } from '../generated/models.js';
import type { QueryOf } from '../generated/operations.js';
import { AppsResource } from '../generated/resources.js';
import type { DeviceHandle } from './device.js';
import type { LeaseHandle } from './lease.js';

/** The longest `waitSeconds` the server accepts on `getInstallJob`. */
const MAX_LONG_POLL_SECONDS = 60;
/** Extra milliseconds a long poll may take past its `waitSeconds` for the server to answer. */
const LONG_POLL_MARGIN_MS = 15_000;
/** The size of the slices bytes are sent in when their progress is reported. */
const CHUNK_BYTES = 64 * 1024;

/** An APK to upload: a local file path (hashed, then streamed from disk), bytes, or a stream (sent as it is). */
export type AppSource = string | Uint8Array | Readable;

export interface UploadAppOptions extends RequestOptions {
  /** The name the app is listed with. Default: the file's name for a path, none otherwise. */
  fileName?: string;
  /** Visible to every user of the server (default: only to you and admins). */
  shared?: boolean;
  /**
   * Called as bytes are handed to the connection: `sent` so far out of `total` (`null` for a stream of unknown
   * size). Not called when the server already had the bytes.
   */
  onProgress?: (sent: number, total: number | null) => void;
  /** Called when the server already had these bytes (found by their SHA-256): nothing is uploaded. */
  onHashMatch?: () => void;
}

export interface InstallAppOptions extends RequestOptions {
  /** The devices to install on (1 to 100): ids or `DeviceHandle`s. Exactly one of `devices` and `lease`. */
  devices?: readonly (string | DeviceHandle)[];
  /** Install on every device of this lease: its id or a `LeaseHandle`. */
  lease?: string | LeaseHandle;
  /** Replace an installed version (`pm install -r`). Default true. */
  replace?: boolean;
  /** Allow a lower versionCode than the installed one (`-d`). Default false. */
  downgrade?: boolean;
  /** Grant every runtime permission the app asks for (`-g`). Default false. */
  grantPermissions?: boolean;
}

export interface InstallWaitOptions {
  /** Give up (with `InstallJobTimeoutError`) after this many seconds. Default: no limit of its own. */
  timeoutSeconds?: number;
  /** Aborts the wait with `APIUserAbortError` (the job goes on on the server). */
  signal?: AbortSignal;
  /**
   * The longest one poll of `getInstallJob` waits, in seconds (1 to 60, default 60). A smaller value gives
   * `onUpdate` the devices' progress more often; with 60 the server answers as soon as the job ends anyway.
   */
  pollSeconds?: number;
  /** Called with the handle after every poll (the devices' statuses as they change). */
  onUpdate?: (job: InstallJobHandle) => void;
}

/** `wait`'s time limit passed with the install job still pending or running. `job` is its last known state. */
export class InstallJobTimeoutError extends CloudPhoneError {
  readonly job: InstallJob;

  constructor(job: InstallJob, timeoutSeconds: number) {
    super(`Install job ${job.id} is still ${job.status} after ${timeoutSeconds} s.`);
    this.job = job;
  }
}

// Merged with the class below: the handle carries these fields as properties, copied in at run time.
export interface InstallJobHandle extends Readonly<InstallJob> {}

/**
 * An install job with methods: every `InstallJob` field, `refresh()`, and `wait()` for it to end. The fields
 * change as the methods learn the job's new state. A job that ended `failed` is not an error: see the devices'
 * `status` and `reason`.
 */
export class InstallJobHandle {
  readonly #client: CloudPhone;

  constructor(client: CloudPhone, job: InstallJob) {
    this.#client = client;
    this.update(job);
  }

  /** The client this handle calls through. */
  get client(): CloudPhone {
    return this.#client;
  }

  /** Whether the job has ended (`succeeded` or `failed`). */
  get done(): boolean {
    return this.status === 'succeeded' || this.status === 'failed';
  }

  /** @internal Takes the state of `job` (the same job, as the server answered it). Returns this. */
  update(job: InstallJob): this {
    Object.assign(this, job);
    return this;
  }

  /** The job's fields as the API returns them. */
  toJSON(): InstallJob {
    return { ...(this as unknown as InstallJob) };
  }

  /** Fetches the job again (without waiting) and updates this handle. */
  async refresh(options?: RequestOptions): Promise<this> {
    return this.update(await this.#client.request('getInstallJob', { path: { jobId: this.id } }, options));
  }

  /**
   * Waits until the job has ended, long-polling `getInstallJob`, and resolves with this handle (`status`
   * `succeeded` or `failed`, each device's `status` and `reason`). Rejects with `InstallJobTimeoutError` when
   * `timeoutSeconds` pass first.
   *
   * @example
   * ```ts
   * const job = await cp.apps.install(app.id, { lease });
   * await job.wait({ timeoutSeconds: 600 });
   * for (const device of job.devices) if (device.status === 'failed') console.error(device.serial, device.reason);
   * ```
   */
  async wait(options: InstallWaitOptions = {}): Promise<this> {
    const { timeoutSeconds, signal, onUpdate } = options;
    const pollSeconds = Math.max(1, Math.min(MAX_LONG_POLL_SECONDS, Math.floor(options.pollSeconds ?? MAX_LONG_POLL_SECONDS)));
    const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
    for (;;) {
      if (this.done) return this;
      if (signal?.aborted) throw new APIUserAbortError({ cause: signal.reason });
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new InstallJobTimeoutError(this.toJSON(), timeoutSeconds ?? 0);
      const waitSeconds = Math.max(1, Math.min(pollSeconds, Math.ceil(remaining / 1000)));
      const job = await this.#client.request(
        'getInstallJob',
        { path: { jobId: this.id }, query: { waitSeconds } },
        // The server holds the request up to waitSeconds: the attempt must be allowed longer than that.
        { timeout: Math.max(this.#client.timeout, waitSeconds * 1000 + LONG_POLL_MARGIN_MS), ...(signal ? { signal } : {}) },
      );
      this.update(job);
      onUpdate?.(this);
    }
  }
}

/**
 * `cp.apps`: the generated app operations, plus `upload` (hash-first: nothing is sent when the server already has
 * the bytes), `install` (answering an `InstallJobHandle` to `wait` on), `download` and `downloadTo`.
 */
export class Apps extends AppsResource {
  /**
   * Uploads an APK and resolves to the `App`. A path or bytes are hashed (SHA-256; a file is read as a stream)
   * and offered by hash first: when the server already has these bytes, the app is made from them without any
   * transfer (`onHashMatch` is called). Otherwise (404 `app_blob_not_found`) the bytes are uploaded, a file
   * streamed from disk. A `Readable` is uploaded as it is, without the hash-first step. Streamed uploads are not
   * retried.
   *
   * @example
   * ```ts
   * const app = await cp.apps.upload('./build/app-debug.apk', {
   *   onProgress: (sent, total) => console.error(`${sent} / ${total}`),
   * });
   * console.log(app.metadata.packageName, app.metadata.versionName);
   * ```
   */
  async upload(source: AppSource, options: UploadAppOptions = {}): Promise<App> {
    const { fileName: givenName, shared, onProgress, onHashMatch, ...requestOptions } = options;
    const fileName = givenName ?? (typeof source === 'string' ? basename(source) : undefined);
    const query = {
      ...(fileName === undefined ? {} : { fileName }),
      ...(shared === undefined ? {} : { shared }),
    } as QueryOf<'uploadApp'>;

    if (typeof source !== 'string' && !(source instanceof Uint8Array)) {
      return this.client.request('uploadApp', { query, body: counted(source, null, onProgress) }, requestOptions);
    }

    let total: number;
    let sha256: string;
    if (typeof source === 'string') {
      const info = await stat(source); // a missing file fails here, with its ENOENT, before any request
      if (!info.isFile()) throw new CloudPhoneError(`upload: ${source} is not a file.`);
      total = info.size;
      sha256 = await hashFile(source, requestOptions.signal);
    } else {
      total = source.byteLength;
      const { createHash } = await import('node:crypto');
      sha256 = createHash('sha256').update(source).digest('hex');
    }

    try {
      const app = await this.client.request(
        'createAppFromHash',
        { body: { sha256, ...(fileName === undefined ? {} : { fileName }), ...(shared === undefined ? {} : { shared }) } },
        requestOptions,
      );
      onHashMatch?.();
      return app;
    } catch (error) {
      if (!(error instanceof APIError && error.status === 404 && error.code === 'app_blob_not_found')) throw error;
    }

    if (typeof source !== 'string') {
      // Bytes are re-sendable (so retried) unless their progress is wanted, which sends them in counted slices.
      const body = onProgress ? counted(slices(source), total, onProgress) : source;
      return this.client.request('uploadApp', { query, body }, requestOptions);
    }
    const file = createReadStream(source);
    try {
      return await this.client.request('uploadApp', { query, body: counted(file, total, onProgress) }, requestOptions);
    } finally {
      file.destroy();
    }
  }

  /**
   * Installs an app on devices (`devices`) or on every device of a lease (`lease`), and resolves to the
   * `InstallJobHandle` of the job the server started (202): `wait()` for it to end. The server checks every
   * device first, all or nothing (403 `lease_required`, 409 `device_offline`, 422 `app_incompatible`).
   *
   * @example
   * ```ts
   * const job = await cp.apps.install(app.id, { lease, grantPermissions: true });
   * await job.wait();
   * if (job.status === 'failed') throw new Error(job.devices.map((d) => `${d.serial}: ${d.reason}`).join('\n'));
   * ```
   */
  async install(app: string | Pick<App, 'id'>, options: InstallAppOptions): Promise<InstallJobHandle> {
    const { devices, lease, replace, downgrade, grantPermissions, ...requestOptions } = options;
    if ((devices === undefined) === (lease === undefined)) {
      throw new CloudPhoneError('install: give either devices or lease (exactly one).');
    }
    const body = {
      ...(devices === undefined ? {} : { deviceIds: devices.map((device) => (typeof device === 'string' ? device : device.id)) }),
      ...(lease === undefined ? {} : { leaseId: typeof lease === 'string' ? lease : lease.id }),
      ...(replace === undefined ? {} : { replace }),
      ...(downgrade === undefined ? {} : { downgrade }),
      ...(grantPermissions === undefined ? {} : { grantPermissions }),
    } as InstallRequest;
    const job = await this.client.request('installApp', { path: { appId: appIdOf(app) }, body }, requestOptions);
    return new InstallJobHandle(this.client, job);
  }

  /** An install job (without waiting) as an `InstallJobHandle`. */
  async installJob(jobId: string, options?: RequestOptions): Promise<InstallJobHandle> {
    return new InstallJobHandle(this.client, await this.client.request('getInstallJob', { path: { jobId } }, options));
  }

  /** Downloads the APK: read the `BinaryResponse` once (`bytes()`, `toFile()`, `body`). */
  download(app: string | Pick<App, 'id'>, options?: RequestOptions): Promise<BinaryResponse> {
    return this.client.request('downloadApp', { path: { appId: appIdOf(app) } }, options);
  }

  /** Downloads the APK into `localPath` (created or truncated), streaming, and resolves to the bytes written. */
  async downloadTo(app: string | Pick<App, 'id'>, localPath: string, options?: RequestOptions): Promise<number> {
    const response = await this.download(app, options);
    await response.toFile(localPath);
    return (await stat(localPath)).size;
  }
}

function appIdOf(app: string | Pick<App, 'id'>): string {
  return typeof app === 'string' ? app : app.id;
}

/** The SHA-256 of a file, hex, reading it as a stream. */
async function hashFile(path: string, signal: AbortSignal | undefined): Promise<string> {
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256');
  const stream = createReadStream(path, signal ? { signal } : {});
  try {
    for await (const chunk of stream) hash.update(chunk as Buffer);
  } catch (error) {
    if (signal?.aborted) throw new APIUserAbortError({ cause: signal.reason });
    throw error;
  }
  return hash.digest('hex');
}

function* slices(bytes: Uint8Array): Generator<Uint8Array> {
  for (let offset = 0; offset < bytes.byteLength; offset += CHUNK_BYTES) yield bytes.subarray(offset, offset + CHUNK_BYTES);
}

/** `source`, reporting the bytes taken so far to `onProgress` (when given). */
async function* counted(
  source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>,
  total: number | null,
  onProgress: ((sent: number, total: number | null) => void) | undefined,
): AsyncGenerator<Uint8Array> {
  let sent = 0;
  onProgress?.(0, total);
  for await (const chunk of source) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    sent += bytes.byteLength;
    onProgress?.(sent, total);
    yield bytes;
  }
}
