import type { Adb } from '@yume-chan/adb';
import type { FastifyBaseLogger } from 'fastify';
import type { AdbKeyPair } from '../adb/key.js';
import type { DeviceUpdate, HostLiveStatus } from '../types.js';

export interface RetryPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { initialMs: 500, maxMs: 30_000 };

/** What a source reports to the registry. Calls after `stop()` are ignored by the registry. */
export interface SourceContext {
  hostId: string;
  log: FastifyBaseLogger;
  adbKey: AdbKeyPair;
  retry: RetryPolicy;
  /** A device's new state; `adb` is the device's connection when online. */
  emit(update: DeviceUpdate, adb: Adb | undefined): void;
  status(status: HostLiveStatus): void;
}

export interface DeviceSource {
  start(): void;
  /** Stops tracking and closes every connection; resolves when done. */
  stop(): Promise<void>;
}

/** The wait before retry number `attempt` (0-based): exponential from initialMs up to maxMs, with 50–100 % jitter. */
export function backoffDelay(attempt: number, retry: RetryPolicy): number {
  const ceiling = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export function errorMessage(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return errorMessage(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return error.message !== '' ? error.message : (code ?? error.name);
  }
  return String(error);
}
