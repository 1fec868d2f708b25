import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream } from '@yume-chan/stream-extra';
import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, SHARED_CHUNKS, SharedBlob } from '../../src/apps/shared-blob.js';

/** A blob of `size` random bytes whose range reads are counted by their start chunk; `fail` makes reads error. */
function blobOf(size: number) {
  const bytes = randomBytes(size);
  const reads: number[] = [];
  let fail = false;
  const blob = new SharedBlob((range) => {
    reads.push(range.start / CHUNK_BYTES);
    if (fail) {
      return new Readable({
        read() {
          this.destroy(new Error('disk error'));
        },
      });
    }
    return Readable.from([bytes.subarray(range.start, range.end + 1)]);
  }, size);
  return { bytes, reads, blob, failing: (value: boolean) => (fail = value) };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) parts.push(next.value);
  return Buffer.concat(parts);
}

describe('SharedBlob', () => {
  it('streams the whole blob to every reader while reading each chunk once', async () => {
    const { bytes, reads, blob } = blobOf(3 * CHUNK_BYTES + 123);
    const streams = await Promise.all([1, 2, 3].map(() => collect(blob.stream())));
    for (const received of streams) expect(received.equals(bytes)).toBe(true);
    expect(reads).toEqual([0, 1, 2, 3]);
  });

  it(`keeps only the ${SHARED_CHUNKS} chunks furthest along`, async () => {
    const { bytes, reads, blob } = blobOf((SHARED_CHUNKS + 2) * CHUNK_BYTES);
    for (let index = 0; index < SHARED_CHUNKS + 1; index++) await blob.chunk(index);
    expect(reads).toHaveLength(SHARED_CHUNKS + 1);
    // Chunk 0 was dropped for chunk 16; a device that far behind reads it again, and its read evicts nothing.
    expect((await blob.chunk(0)).equals(bytes.subarray(0, CHUNK_BYTES))).toBe(true);
    await blob.chunk(1);
    expect(reads.slice(SHARED_CHUNKS + 1)).toEqual([0]);
    // Chunk 17 takes the place of the lowest kept one, chunk 1; chunk 2 is still shared.
    await blob.chunk(SHARED_CHUNKS + 1);
    await blob.chunk(2);
    await blob.chunk(1);
    expect(reads.slice(SHARED_CHUNKS + 1)).toEqual([0, SHARED_CHUNKS + 1, 1]);
  });

  it('does not keep a failed read, and says when the file is shorter than recorded', async () => {
    const { reads, blob, failing } = blobOf(CHUNK_BYTES);
    failing(true);
    await expect(blob.chunk(0)).rejects.toThrow('disk error');
    failing(false);
    expect((await blob.chunk(0)).length).toBe(CHUNK_BYTES);
    expect(reads).toEqual([0, 0]);

    const short = new SharedBlob(() => Readable.from([Buffer.alloc(10)]), 100);
    await expect(short.chunk(0)).rejects.toThrow('the stored APK ends 90 bytes before its recorded size');
  });

  it('an empty blob is an empty stream', async () => {
    const { blob, reads } = blobOf(0);
    expect((await collect(blob.stream())).length).toBe(0);
    expect(reads).toEqual([]);
  });
});
