import type { Adb } from '@yume-chan/adb';
import { DeviceOfflineError, DeviceTimeoutError } from './errors.js';

/** Whether the device's connection has ended. */
export function isDisconnected(adb: Adb): Promise<true> {
  return adb.disconnected.then(
    () => true as const,
    () => true as const,
  );
}

/**
 * `work`, unless the device goes away first (→ DeviceOfflineError) or `timeoutMs` passes (→ DeviceTimeoutError). An
 * error `work` throws once the device is gone is reported as DeviceOfflineError too. `onAbandon` runs when `work` is
 * given up (to kill a process or close a socket).
 */
export async function guard<T>(
  adb: Adb,
  work: Promise<T>,
  options: { timeoutMs?: number; what?: string; onAbandon?: () => void } = {},
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let gone = false;
  const offline = isDisconnected(adb).then(() => {
    gone = true;
    throw new DeviceOfflineError('the device went offline during the operation');
  });
  const timeout =
    options.timeoutMs === undefined
      ? undefined
      : new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new DeviceTimeoutError(options.timeoutMs!, options.what)), options.timeoutMs);
        });
  try {
    return await Promise.race([work, offline, ...(timeout === undefined ? [] : [timeout])]);
  } catch (error) {
    if (!(error instanceof DeviceOfflineError || error instanceof DeviceTimeoutError)) {
      // A failure caused by the connection ending shows up as some stream error: tell which it was.
      if (gone || (await settlesSoon(isDisconnected(adb)))) {
        throw new DeviceOfflineError('the device went offline during the operation', { cause: error });
      }
      throw error;
    }
    work.catch(() => undefined);
    options.onAbandon?.();
    throw error;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    offline.catch(() => undefined);
  }
}

/** Whether `promise` settles within a few milliseconds (a stream error usually precedes the transport's end). */
async function settlesSoon(promise: Promise<unknown>, ms = 50): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return result;
}

/**
 * Closes a connection unless it has already ended (closing an ended @yume-chan/adb daemon transport rejects promises
 * of its pending socket writes that nobody holds).
 */
export async function closeAdb(adb: Adb | undefined): Promise<void> {
  if (adb === undefined) return;
  const gone = await Promise.race([
    isDisconnected(adb),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), 0)),
  ]);
  if (gone) return;
  try {
    await adb.close();
  } catch {
    // already gone
  }
}
