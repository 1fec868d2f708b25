import type { Transform } from 'node:stream';
import type { BinaryResponse } from '@cloudphone/sdk';
import { formatProgress } from './device-io.js';

/** A pass-through stream counting the bytes of a transfer; with `show`, a progress line on standard error. */
export async function progressCounter(total: number | null, show: boolean): Promise<{ stream: Transform; bytes(): number }> {
  const { Transform } = await import('node:stream');
  let done = 0;
  let shownAt = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      const now = Date.now();
      if (show && now - shownAt > 200) {
        shownAt = now;
        process.stderr.write(`\r${formatProgress(done, total)}\u001B[K`);
      }
      callback(null, chunk);
    },
  });
  return { stream, bytes: () => done };
}

/** Clears the progress line `progressCounter` wrote. */
export function clearProgress(show: boolean): void {
  if (show) process.stderr.write('\r\u001B[K');
}

/**
 * Streams a download to `local`, or to standard output for `-`, and resolves the bytes written. A file is written
 * next to its target and renamed once complete, so a failed download leaves no partial file. With `progress`, a
 * progress line on standard error (cleared at the end).
 */
export async function saveDownload(response: BinaryResponse, local: string, progress: boolean): Promise<number> {
  const [{ createWriteStream }, { rename, rm }, { pipeline }] = await Promise.all([
    import('node:fs'),
    import('node:fs/promises'),
    import('node:stream/promises'),
  ]);
  const counter = await progressCounter(response.contentLength, progress);
  try {
    if (local === '-') {
      await pipeline(response.body, counter.stream, process.stdout, { end: false });
      return counter.bytes();
    }
    const temp = `${local}.cloudphone-${process.pid}.part`;
    try {
      await pipeline(response.body, counter.stream, createWriteStream(temp, { flags: 'wx' }));
      await rename(temp, local);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return counter.bytes();
  } finally {
    clearProgress(progress);
  }
}
