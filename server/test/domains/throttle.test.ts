import { describe, expect, it } from 'vitest';
import { loginGate, stateAfterFailure, type LoginState } from '../../src/auth/throttle.js';
import { testConfig } from './fixture.js';

const config = testConfig.loginThrottle;
const start = new Date('2026-11-20T09:00:00.000Z');
const later = (seconds: number) => new Date(start.getTime() + seconds * 1000);
const fresh: LoginState = { failedLogins: 0, lastFailedLoginAt: null, lockedUntil: null };

function failedTimes(count: number, at: Date): LoginState {
  let state = fresh;
  for (let i = 0; i < count; i++) state = stateAfterFailure(state.failedLogins, at, config);
  return state;
}

describe('login throttle', () => {
  it('lets the free attempts through at once', () => {
    expect(loginGate(fresh, start, config)).toEqual({ open: true, failures: 0 });
    expect(loginGate(failedTimes(2, start), start, config)).toEqual({ open: true, failures: 2 });
  });

  it('then waits min(2^(failures - 3), 60) seconds after the last failure', () => {
    for (const [failures, delay] of [
      [3, 1],
      [4, 2],
      [5, 4],
      [8, 32],
      [9, 60],
    ] as const) {
      const state = failedTimes(failures, start);
      expect(loginGate(state, later(0), config)).toEqual({
        open: false,
        reason: 'throttled',
        retryAfterSeconds: delay,
        failures,
      });
      expect(loginGate(state, later(delay - 0.5), config)).toMatchObject({ open: false, retryAfterSeconds: 1 });
      expect(loginGate(state, later(delay), config)).toEqual({ open: true, failures });
    }
  });

  it('locks at the tenth consecutive failure for lockSeconds, then starts afresh', () => {
    expect(failedTimes(9, start).lockedUntil).toBeNull();
    const locked = failedTimes(10, start);
    expect(locked).toEqual({
      failedLogins: 10,
      lastFailedLoginAt: start.toISOString(),
      lockedUntil: later(900).toISOString(),
    });
    expect(loginGate(locked, later(1), config)).toEqual({
      open: false,
      reason: 'locked',
      retryAfterSeconds: 899,
      failures: 10,
    });
    expect(loginGate(locked, later(900), config)).toEqual({ open: true, failures: 0 });
  });

  it('follows its configuration', () => {
    const strict = { freeAttempts: 0, maxDelaySeconds: 5, lockAfter: 2, lockSeconds: 30 };
    const once = stateAfterFailure(0, start, strict);
    expect(loginGate(once, start, strict)).toMatchObject({ open: false, reason: 'throttled', retryAfterSeconds: 2 });
    expect(stateAfterFailure(1, start, strict).lockedUntil).toBe(later(30).toISOString());
  });
});
