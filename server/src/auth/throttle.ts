import type { LoginThrottle } from '../config.js';

/** An account's login throttle state, as stored on the user. */
export interface LoginState {
  failedLogins: number;
  lastFailedLoginAt: string | null;
  lockedUntil: string | null;
}

export type Gate =
  | { open: true; failures: number }
  | { open: false; reason: 'locked' | 'throttled'; retryAfterSeconds: number; failures: number };

function closed(reason: 'locked' | 'throttled', remainingMs: number, failures: number): Gate {
  return { open: false, reason, retryAfterSeconds: Math.ceil(remainingMs / 1000), failures };
}

/**
 * Whether a login attempt may be checked at `now`, and the consecutive failures it continues from. A locked account
 * stays closed until its lock ends and then starts afresh; after `freeAttempts` failures each attempt must wait
 * `min(2^(failures - freeAttempts), maxDelaySeconds)` seconds since the last failure.
 */
export function loginGate(state: LoginState, now: Date, config: LoginThrottle): Gate {
  const at = now.getTime();
  if (state.lockedUntil !== null) {
    const remaining = Date.parse(state.lockedUntil) - at;
    return remaining > 0 ? closed('locked', remaining, state.failedLogins) : { open: true, failures: 0 };
  }
  const failures = state.failedLogins;
  if (failures >= config.freeAttempts && state.lastFailedLoginAt !== null) {
    const delaySeconds = Math.min(2 ** (failures - config.freeAttempts), config.maxDelaySeconds);
    const remaining = Date.parse(state.lastFailedLoginAt) + delaySeconds * 1000 - at;
    if (remaining > 0) return closed('throttled', remaining, failures);
  }
  return { open: true, failures };
}

/** The state after one more failure following `failures` earlier ones; reaching `lockAfter` locks the account. */
export function stateAfterFailure(failures: number, now: Date, config: LoginThrottle): LoginState {
  const failedLogins = failures + 1;
  return {
    failedLogins,
    lastFailedLoginAt: now.toISOString(),
    lockedUntil:
      failedLogins >= config.lockAfter ? new Date(now.getTime() + config.lockSeconds * 1000).toISOString() : null,
  };
}
