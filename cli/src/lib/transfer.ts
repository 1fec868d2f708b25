import type { Transform } from 'node:stream';
import type { BinaryResponse } from '@cloudphone/sdk';
import { formatProgress } from './device-io.js';
import { UsageError } from './errors.js';

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

/** The usage error (exit 2) for a local file a download would replace without `--force`. */
export const fileExistsError = (local: string): UsageError =>
  new UsageError(`${local} already exists: pass --force to replace it, or -o to choose another file`);

/**
 * Streams a download to `local`, or to standard output for `-`, and resolves the bytes written. A file is written
 * next to its target and renamed once complete, so a failed download leaves no partial file. With `progress`, a
 * progress line on standard error (cleared at the end). With `overwrite: false`, an existing `local` (even one
 * created while the download ran) is left as it is and the download fails with `fileExistsError`.
 */
export async function saveDownload(
  response: BinaryResponse,
  local: string,
  progress: boolean,
  { overwrite = true }: { overwrite?: boolean } = {},
): Promise<number> {
  const [{ createWriteStream }, { link, rename, rm }, { pipeline }] = await Promise.all([
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
      if (overwrite) await rename(temp, local);
      else {
        // A hard link is created only where no file is: unlike rename, it never replaces one.
        await link(temp, local).catch((error: NodeJS.ErrnoException) => {
          throw error.code === 'EEXIST' ? fileExistsError(local) : error;
        });
        await rm(temp);
      }
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return counter.bytes();
  } finally {
    clearProgress(progress);
  }
}
