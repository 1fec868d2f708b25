import { describe, expect, it } from 'vitest';
import { loginGate, recentFailures, throttleKeys, type FailureCount } from '../../src/auth/throttle.js';
import { testConfig } from './fixture.js';

const config = testConfig.loginThrottle;
const start = new Date('2026-11-20T09:00:00.000Z');
const later = (seconds: number) => new Date(start.getTime() + seconds * 1000);
const failed = (failures: number, at = start): FailureCount => ({ failures, lastFailedAt: at.toISOString() });

describe('login throttle', () => {
  it('lets the free attempts through at once', () => {
    expect(loginGate({ pair: undefined, address: undefined }, start, config)).toEqual({ open: true });
    expect(loginGate({ pair: failed(2), address: failed(19) }, start, config)).toEqual({ open: true });
  });

  it('then waits min(2^(failures - 3), 60) seconds after the last failure of the pair', () => {
    for (const [failures, delay] of [
      [3, 1],
      [4, 2],
      [5, 4],
      [8, 32],
      [9, 60],
      [30, 60],
    ] as const) {
      const counts = { pair: failed(failures), address: failed(failures) };
      expect(loginGate(counts, later(0), config)).toEqual({ open: false, retryAfterSeconds: delay });
      expect(loginGate(counts, later(delay - 0.5), config)).toEqual({ open: false, retryAfterSeconds: 1 });
      expect(loginGate(counts, later(delay), config)).toEqual({ open: true });
    }
  });

  it('waits after addressFreeAttempts failures of any usernames from the address', () => {
    expect(loginGate({ pair: undefined, address: failed(20) }, start, config)).toEqual({
      open: false,
      retryAfterSeconds: 1,
    });
    expect(loginGate({ pair: failed(3), address: failed(23) }, start, config)).toEqual({
      open: false,
      retryAfterSeconds: 8,
    });
  });

  it('forgets failures forgetAfterSeconds after the last one', () => {
    expect(recentFailures(failed(7), later(899), config)).toBe(7);
    expect(recentFailures(failed(7), later(900), config)).toBe(0);
    expect(loginGate({ pair: failed(30), address: failed(30) }, later(900), config)).toEqual({ open: true });
  });

  it('keys the pair by address and username, and the address alone, without ambiguity', () => {
    expect(throttleKeys('192.0.2.1', 'alice')).toEqual({
      pair: '["pair","192.0.2.1","alice"]',
      address: '["address","192.0.2.1"]',
    });
    expect(throttleKeys('a b', 'c').pair).not.toBe(throttleKeys('a', 'b c').pair);
  });
});
