import type { OperationMeta } from '../generated/operations.js';
import { APIConnectionError, APITimeoutError, type APIError, type CloudPhoneError } from './errors.js';

/** The first backoff, in ms; each retry doubles it. */
export const INITIAL_RETRY_DELAY = 500;
/** The longest backoff, in ms. */
export const MAX_RETRY_DELAY = 8_000;
/** The longest `Retry-After` the client waits for, in ms; a longer one ends the call with the error. */
export const MAX_RETRY_AFTER = 60_000;

/** Waits `ms` milliseconds, or less if `signal` aborts first. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Whether retrying an operation is safe whatever happened to the first attempt: everything but POST is, and so
 * is a POST that carries an `Idempotency-Key` (the server replays the stored response). Other POSTs (login,
 * refresh, logout) are retried only when the server cannot have acted on them.
 */
export function isRetrySafe(op: Pick<OperationMeta, 'method' | 'idempotent'>): boolean {
  return op.method !== 'POST' || op.idempotent;
}

/** Error codes of connections that failed before the request was written. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCodes(error: unknown): string[] {
  if (!(error instanceof Error)) return [];
  const own = (error as { code?: unknown }).code;
  const nested = error instanceof AggregateError ? error.errors.flatMap(errorCodes) : [];
  return typeof own === 'string' ? [own, ...nested] : nested;
}

/** The connection failed while connecting, so not a byte of the request reached the server. */
export function failedBeforeSending(error: APIConnectionError): boolean {
  const codes = errorCodes(error.cause);
  return codes.length > 0 && codes.every((code) => NOT_SENT_CODES.has(code));
}

/** Whether an attempt that threw `error` (no response) may be retried. */
export function shouldRetryError(error: CloudPhoneError, safe: boolean): boolean {
  if (error instanceof APITimeoutError) return safe;
  if (error instanceof APIConnectionError) return safe || failedBeforeSending(error);
  return false;
}

/**
 * Whether an error response may be retried: 429 and 503 always; when `safe`, also 408, 409
 * `idempotency_key_in_use` and every other 5xx. Other 4xx never.
 */
export function shouldRetryResponse(error: APIError, safe: boolean): boolean {
  const { status, code } = error;
  if (status === 429 || status === 503) return true;
  if (!safe) return false;
  return status === 408 || (status === 409 && code === 'idempotency_key_in_use') || status >= 500;
}

/** A `Retry-After` value (delay-seconds or an HTTP date) in ms from `now`; `undefined` when absent or invalid. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = /[A-Za-z]{3}/.test(trimmed) ? Date.parse(trimmed) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Exponential backoff for retry number `retry` (0 for the first): 0.5 s doubling up to 8 s, minus up to 25 %
 * jitter so that clients failing together do not retry together. `jitter` returns a number in [0, 1).
 */
export function backoff(retry: number, jitter: () => number): number {
  const delay = Math.min(INITIAL_RETRY_DELAY * 2 ** retry, MAX_RETRY_DELAY);
  return Math.round(delay * (1 - 0.25 * jitter()));
}

/**
 * How long to wait before retry number `retry`: what `Retry-After` asks for when the response has it, else the
 * backoff. `null` when `Retry-After` asks for more than 60 s: the call fails rather than hang.
 */
export function retryDelay(
  retry: number,
  retryAfter: string | undefined,
  jitter: () => number,
  now: number,
): number | null {
  const requested = parseRetryAfter(retryAfter, now);
  if (requested === undefined) return backoff(retry, jitter);
  return requested <= MAX_RETRY_AFTER ? requested : null;
}
