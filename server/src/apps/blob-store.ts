import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError } from '../http/errors.js';

/** A file received into the store's temporary folder: not yet a blob until `commit`. */
export interface IngestedFile {
  sha256: string;
  size: number;
  tempPath: string;
}

/** An inclusive byte range, as HTTP Range counts. */
export interface ByteRange {
  start: number;
  end: number;
}

const SHA256 = /^[0-9a-f]{64}$/;
const EXTENSION = /^(\.[a-z0-9]{1,8})?$/;

/**
 * Content-addressed files: `<dir>/<aa>/<sha256><ext>`, written through `<dir>/tmp/` and renamed into place, so a
 * blob is either whole or absent. Files are 0600 and folders 0700: APKs can be private to their uploader. Server
 * nodes sharing one store each write through a temporary folder of their own (`owner`, under `tmp/`), so that one
 * clearing its interrupted uploads leaves the others' uploads alone.
 */
export class BlobStore {
  readonly #dir: string;
  readonly #tmp: string;

  constructor(dir: string, owner?: string) {
    this.#dir = dir;
    this.#tmp = owner === undefined ? join(dir, 'tmp') : join(dir, 'tmp', owner);
  }

  /** The blob's path (whether it exists or not). */
  path(sha256: string, ext = ''): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    if (!EXTENSION.test(ext)) throw new Error(`not a blob extension: ${ext}`);
    return join(this.#dir, sha256.slice(0, 2), `${sha256}${ext}`);
  }

  /**
   * Streams `source` into a temporary file, hashing as it goes. Past `limit` bytes the source is abandoned, the
   * temporary file removed and `payload_too_large` thrown; a source that fails before its end is
   * `validation_failed` (a client gone mid-upload) or the `ApiError` it fails with (a malformed form around the
   * file); on any failure, `signal` aborting included, the source is destroyed and the temporary file removed.
   */
  async ingest(source: Readable, options: { limit: number; signal?: AbortSignal }): Promise<IngestedFile> {
    await mkdir(this.#tmp, { recursive: true, mode: 0o700 });
    const tempPath = join(this.#tmp, randomBytes(16).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    let tooLarge = false;
    // Which stream failed first: the others then fail with its error.
    let firstFailure: 'source' | 'store' | undefined;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > options.limit) {
          tooLarge = true;
          callback(new Error('too large'));
          return;
        }
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    const sink = createWriteStream(tempPath, { flags: 'wx', mode: 0o600 });
    source.on('error', () => (firstFailure ??= 'source'));
    meter.on('error', () => (firstFailure ??= 'store'));
    sink.on('error', () => (firstFailure ??= 'store'));
    try {
      await pipeline(
        source,
        meter,
        sink,
        options.signal === undefined ? {} : { signal: options.signal },
      );
    } catch (error) {
      // The pipeline can fail while the file is still being opened; removing it before then would leave it behind.
      if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()));
      await rm(tempPath, { force: true });
      if (tooLarge) {
        throw new ApiError('payload_too_large', `The file is larger than the limit of ${options.limit} bytes.`);
      }
      // The source's own verdict on its bytes (a malformed form around the file).
      if (error instanceof ApiError) throw error;
      if (firstFailure === 'source' && options.signal?.aborted !== true) {
        throw new ApiError('validation_failed', 'The request body ended before it was complete.');
      }
      throw error;
    }
    return { sha256: hash.digest('hex'), size, tempPath };
  }

  /** Stores `data` as a blob (used for small derived files such as icons); returns its sha256. */
  async put(data: Buffer, ext = ''): Promise<string> {
    await mkdir(this.#tmp, { recursive: true, mode: 0o700 });
    const tempPath = join(this.#tmp, randomBytes(16).toString('hex'));
    await writeFile(tempPath, data, { flag: 'wx', mode: 0o600 });
    const sha256 = createHash('sha256').update(data).digest('hex');
    await this.commit(tempPath, sha256, ext);
    return sha256;
  }

  /**
   * Moves an ingested file into place. Atomic (a rename within the store's file system) and idempotent: committing
   * bytes that are already stored just replaces the file with identical content.
   */
  async commit(tempPath: string, sha256: string, ext = ''): Promise<string> {
    const target = this.path(sha256, ext);
    await mkdir(join(this.#dir, sha256.slice(0, 2)), { recursive: true, mode: 0o700 });
    await rename(tempPath, target);
    return target;
  }

  /** Removes every temporary file: those of uploads a stopped process left behind. Only while nothing ingests. */
  async clearTemporary(): Promise<number> {
    const names = await readdir(this.#tmp).catch(() => [] as string[]);
    await Promise.all(names.map((name) => rm(join(this.#tmp, name), { force: true, recursive: true })));
    return names.length;
  }

  /** Every stored blob, as sha256 and extension. */
  async list(): Promise<{ sha256: string; ext: string }[]> {
    const blobs: { sha256: string; ext: string }[] = [];
    for (const folder of await readdir(this.#dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(folder)) continue;
      for (const name of await readdir(join(this.#dir, folder))) {
        const match = /^([0-9a-f]{64})(\.[a-z0-9]{1,8})?$/.exec(name);
        if (match !== null && match[1]!.startsWith(folder)) blobs.push({ sha256: match[1]!, ext: match[2] ?? '' });
      }
    }
    return blobs;
  }

  /** Drops a temporary file that will not be committed. */
  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  async has(sha256: string, ext = ''): Promise<boolean> {
    try {
      return (await stat(this.path(sha256, ext))).isFile();
    } catch {
      return false;
    }
  }

  /** The blob's size in bytes, or undefined when it is missing. */
  async size(sha256: string, ext = ''): Promise<number | undefined> {
    try {
      return (await stat(this.path(sha256, ext))).size;
    } catch {
      return undefined;
    }
  }

  /** Removes a blob; removing a missing blob is not an error. */
  async remove(sha256: string, ext = ''): Promise<void> {
    await rm(this.path(sha256, ext), { force: true });
  }

  /**
   * A stream of the blob's bytes, or of the inclusive `range`, read `chunkBytes` at a time (64 KiB by default).
   * Errors (a missing file) arrive on the stream.
   */
  open(sha256: string, ext = '', options: { range?: ByteRange | undefined; chunkBytes?: number | undefined } = {}): Readable {
    const { range, chunkBytes } = options;
    return createReadStream(this.path(sha256, ext), {
      ...(range === undefined ? {} : { start: range.start, end: range.end }),
      ...(chunkBytes === undefined ? {} : { highWaterMark: chunkBytes }),
    });
  }
}
