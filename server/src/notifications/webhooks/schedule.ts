/**
 * When a webhook delivery that failed is tried again: after attempt n (1-based), the n-th delay, give or take 20%
 * so that the deliveries of one burst do not all come back together. Ten attempts over about 3.1 days; a delivery
 * whose tenth attempt fails is `failed`.
 */
export const RETRY_SCHEDULE_SECONDS: readonly number[] = [
  5,
  5 * 60,
  30 * 60,
  2 * 3600,
  5 * 3600,
  10 * 3600,
  14 * 3600,
  20 * 3600,
  24 * 3600,
];

export const MAX_ATTEMPTS = RETRY_SCHEDULE_SECONDS.length + 1;

/** The share of a delay it may be drawn shorter or longer by. */
export const RETRY_JITTER = 0.2;

/** The most a receiver's `Retry-After` can postpone the next attempt by. */
export const MAX_RETRY_AFTER_SECONDS = 24 * 3600;

/** An endpoint with no successful delivery for this long is disabled (`failing`). */
export const FAILING_ENDPOINT_DISABLED_AFTER_SECONDS = 5 * 24 * 3600;

export interface RetryOptions {
  /** The receiver's `Retry-After` in seconds, if it sent one that applies. */
  retryAfterSeconds?: number | null | undefined;
  /** A number in [0, 1); `Math.random` by default. */
  random?: (() => number) | undefined;
}

/**
 * Seconds from a failed attempt to the next, or null when that was the last one. `attemptsMade` counts the attempt
 * that just failed. `retryAfterSeconds`, capped at 24 h, is a floor under the drawn delay.
 */
export function retryDelaySeconds(attemptsMade: number, options: RetryOptions = {}): number | null {
  const base = RETRY_SCHEDULE_SECONDS[attemptsMade - 1];
  if (base === undefined) return null;
  const random = options.random ?? Math.random;
  const drawn = base * (1 + RETRY_JITTER * (2 * random() - 1));
  const floor = Math.min(Math.max(options.retryAfterSeconds ?? 0, 0), MAX_RETRY_AFTER_SECONDS);
  return Math.round(Math.max(drawn, floor) * 1000) / 1000;
}

/** The instant of the next attempt after one that failed at `now`, or null when none remains. */
export function nextAttemptAt(now: Date, attemptsMade: number, options: RetryOptions = {}): Date | null {
  const delay = retryDelaySeconds(attemptsMade, options);
  return delay === null ? null : new Date(now.getTime() + delay * 1000);
}
