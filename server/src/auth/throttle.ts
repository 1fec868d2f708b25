import type { LoginThrottle } from '../config.js';

/** The failed logins counted under one throttle key. */
export interface FailureCount {
  failures: number;
  lastFailedAt: string;
}

/**
 * The keys a login attempt is counted under: the (source address, username) pair, whether or not the username
 * exists, and the source address alone.
 */
export interface ThrottleKeys {
  pair: string;
  address: string;
}

export function throttleKeys(address: string, username: string): ThrottleKeys {
  return { pair: JSON.stringify(['pair', address, username]), address: JSON.stringify(['address', address]) };
}

export type Gate = { open: true } | { open: false; retryAfterSeconds: number };

/** Failures still remembered at `now`: a count forgets everything after `forgetAfterSeconds` without a failure. */
export function recentFailures(count: FailureCount | undefined, now: Date, config: LoginThrottle): number {
  if (count === undefined) return 0;
  return now.getTime() - Date.parse(count.lastFailedAt) >= config.forgetAfterSeconds * 1000 ? 0 : count.failures;
}

/** How long after its last failure a count keeps attempts waiting: `min(2^(failures - free), maxDelaySeconds)` s. */
function remainingMs(count: FailureCount | undefined, free: number, now: Date, config: LoginThrottle): number {
  const failures = recentFailures(count, now, config);
  if (count === undefined || failures < free) return 0;
  const delaySeconds = Math.min(2 ** (failures - free), config.maxDelaySeconds);
  return Date.parse(count.lastFailedAt) + delaySeconds * 1000 - now.getTime();
}

/**
 * Whether a login attempt may be checked at `now`. After `freeAttempts` failures of one username from one address,
 * and after `addressFreeAttempts` failures of any usernames from one address, each attempt from that address (for
 * that username, or for any) must wait an exponentially growing delay since the last failure. Nothing is ever
 * locked, and failures from one address never hold back another.
 */
export function loginGate(
  counts: { pair: FailureCount | undefined; address: FailureCount | undefined },
  now: Date,
  config: LoginThrottle,
): Gate {
  const remaining = Math.max(
    remainingMs(counts.pair, config.freeAttempts, now, config),
    remainingMs(counts.address, config.addressFreeAttempts, now, config),
  );
  return remaining > 0 ? { open: false, retryAfterSeconds: Math.ceil(remaining / 1000) } : { open: true };
}
