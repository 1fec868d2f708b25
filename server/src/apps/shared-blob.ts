import type { Readable } from 'node:stream';
import { ReadableStream } from '@yume-chan/stream-extra';

/** Bytes per read of the blob. @yume-chan cuts each into ADB packets of the device's maximum payload. */
export const CHUNK_BYTES = 1024 * 1024;
/** Chunks a job keeps for its devices to share: at most this many MiB per job. */
export const SHARED_CHUNKS = 16;

/** Reads the inclusive byte range of the blob as a stream (the store's `open` with a range). */
export type RangeReader = (range: { start: number; end: number }, chunkBytes: number) => Readable | Promise<Readable>;

/**
 * One install job's reads of its APK, shared by the job's devices. A chunk read for one device is kept for the
 * others, so devices moving at similar speeds read the file once between them instead of once each. Only the
 * SHARED_CHUNKS furthest along are kept: a device that falls further behind reads its own chunks, and memory stays
 * within SHARED_CHUNKS × CHUNK_BYTES however many devices there are and however large the APK.
 */
export class SharedBlob {
  readonly #read: RangeReader;
  readonly #size: number;
  readonly #chunks = new Map<number, Promise<Buffer>>();

  constructor(read: RangeReader, size: number) {
    this.#read = read;
    this.#size = size;
  }

  /** Chunk `index` (CHUNK_BYTES from index × CHUNK_BYTES; the last may be shorter), read once if it can be shared. */
  chunk(index: number): Promise<Buffer> {
    const shared = this.#chunks.get(index);
    if (shared !== undefined) return shared;
    const start = index * CHUNK_BYTES;
    const read = readRange(this.#read, start, Math.min(start + CHUNK_BYTES, this.#size) - 1);
    this.#keep(index, read);
    return read;
  }

  /**
   * The whole APK as the WHATWG stream @yume-chan reads, one chunk ahead. It ends with the last byte, without
   * another read: a device answers and closes as soon as it has every byte, and a close that came first would
   * fail the write side of a good install.
   */
  stream(): ReadableStream<Uint8Array> {
    const count = Math.ceil(this.#size / CHUNK_BYTES);
    let next = 0;
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (next < count) controller.enqueue(await this.chunk(next++));
          if (next >= count) controller.close();
        },
      },
      { highWaterMark: CHUNK_BYTES, size: (chunk) => chunk.byteLength },
    );
  }

  #keep(index: number, read: Promise<Buffer>): void {
    if (this.#chunks.size >= SHARED_CHUNKS) {
      const lowest = Math.min(...this.#chunks.keys());
      if (lowest > index) return;
      this.#chunks.delete(lowest);
    }
    this.#chunks.set(index, read);
    read.catch(() => {
      if (this.#chunks.get(index) === read) this.#chunks.delete(index);
    });
  }
}

/** Bytes `start`..`end` (inclusive): exactly that many, without waiting for the stream to report its end. */
async function readRange(read: RangeReader, start: number, end: number): Promise<Buffer> {
  const length = end - start + 1;
  const stream = await read({ start, end }, length);
  const parts: Buffer[] = [];
  let received = 0;
  try {
    for await (const part of stream as AsyncIterable<Buffer>) {
      parts.push(part.length > length - received ? part.subarray(0, length - received) : part);
      received += parts.at(-1)!.length;
      if (received === length) break;
    }
  } finally {
    stream.destroy();
  }
  if (received < length) throw new Error(`the stored APK ends ${length - received} bytes before its recorded size`);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}
