import type { BinaryResponse } from '@cloudphone/sdk';
import { formatProgress } from './device-io.js';

/**
 * Streams a download to `local`, or to standard output for `-`, and resolves the bytes written. A file is written
 * next to its target and renamed once complete, so a failed download leaves no partial file. With `progress`, a
 * progress line on standard error (cleared at the end).
 */
export async function saveDownload(response: BinaryResponse, local: string, progress: boolean): Promise<number> {
  const [{ createWriteStream }, { rename, rm }, { Transform }, { pipeline }] = await Promise.all([
    import('node:fs'),
    import('node:fs/promises'),
    import('node:stream'),
    import('node:stream/promises'),
  ]);
  const total = response.contentLength;
  let done = 0;
  let shownAt = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      const now = Date.now();
      if (progress && now - shownAt > 200) {
        shownAt = now;
        process.stderr.write(`\r${formatProgress(done, total)}\u001B[K`);
      }
      callback(null, chunk);
    },
  });
  try {
    if (local === '-') {
      await pipeline(response.body, counter, process.stdout, { end: false });
      return done;
    }
    const temp = `${local}.cloudphone-${process.pid}.part`;
    try {
      await pipeline(response.body, counter, createWriteStream(temp, { flags: 'wx' }));
      await rename(temp, local);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return done;
  } finally {
    if (progress) process.stderr.write('\r\u001B[K');
  }
}
