import { createWriteStream } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

/**
 * A request body for operations that take raw bytes (`application/octet-stream`). Strings are sent as UTF-8.
 * `Uint8Array`s (and `Buffer`s) and strings can be re-sent, so such calls are retried like any other; streams
 * (`Readable`, web `ReadableStream`, async iterables) are read once and their calls are never retried.
 */
export type BinaryBody = string | Uint8Array | Readable | WebReadableStream<Uint8Array> | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/** Whether a body can be sent again on a retry. */
export function isReplayable(body: unknown): body is string | Uint8Array {
  return typeof body === 'string' || body instanceof Uint8Array;
}

export function isBinaryBody(body: unknown): body is BinaryBody {
  return (
    isReplayable(body) ||
    body instanceof Readable ||
    (typeof body === 'object' && body !== null && (typeof (body as { getReader?: unknown }).getReader === 'function' ||
      typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'))
  );
}

/** A non-replayable body as an async iterable of chunks (web streams are converted). */
export function binaryChunks(body: Exclude<BinaryBody, string | Uint8Array>): AsyncIterable<Uint8Array> {
  if (typeof (body as { getReader?: unknown }).getReader === 'function' && !(Symbol.asyncIterator in body)) {
    return Readable.fromWeb(body as WebReadableStream<Uint8Array>);
  }
  return body as AsyncIterable<Uint8Array>;
}

/**
 * The response of an operation that answers raw bytes (a file, a screenshot). The body is not buffered: read it
 * once, as a stream (`body`, `pipeTo`, `toFile`) or whole (`bytes`, `text`). An unread body holds its
 * connection; call `body.destroy()` to give up on it.
 */
export class BinaryResponse {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Record<string, string>;
  /** The response's media type (`application/octet-stream`, `image/png`, …), or `null` when not sent. */
  readonly contentType: string | null;
  /** The size in bytes when the server sent `Content-Length`, else `null`. */
  readonly contentLength: number | null;
  /** The bytes as they arrive. A stalled transfer fails with `APITimeoutError` after the client's timeout. */
  readonly body: Readable;

  constructor(init: { status: number; headers: Record<string, string>; body: Readable }) {
    this.status = init.status;
    this.headers = init.headers;
    this.contentType = init.headers['content-type'] ?? null;
    const length = init.headers['content-length'];
    this.contentLength = length !== undefined && /^\d+$/.test(length) ? Number(length) : null;
    this.body = init.body;
  }

  /** Reads the whole body into memory. */
  async bytes(): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.body) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    const all = Buffer.concat(chunks);
    return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  }

  /** Reads the whole body as UTF-8 text. */
  async text(): Promise<string> {
    return Buffer.from(await this.bytes()).toString('utf8');
  }

  /** Streams the body into `destination` and resolves once it has been written (and `destination` ended). */
  async pipeTo(destination: Writable): Promise<void> {
    await pipeline(this.body, destination);
  }

  /** Streams the body into a file (created or truncated) and resolves once it is written. */
  async toFile(path: string, options: { mode?: number } = {}): Promise<void> {
    await this.pipeTo(createWriteStream(path, options.mode === undefined ? {} : { mode: options.mode }));
  }
}
