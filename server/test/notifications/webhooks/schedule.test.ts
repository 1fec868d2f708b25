import { describe, expect, it } from 'vitest';
import {
  MAX_ATTEMPTS,
  MAX_RETRY_AFTER_SECONDS,
  nextAttemptAt,
  RETRY_SCHEDULE_SECONDS,
  retryDelaySeconds,
} from '../../../src/notifications/webhooks/schedule.js';

const middle = () => 0.5;

describe('the retry schedule', () => {
  it('waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after attempts 1 to 9, then gives up', () => {
    const hours = 3600;
    expect(RETRY_SCHEDULE_SECONDS).toEqual([5, 300, 1800, 2 * hours, 5 * hours, 10 * hours, 14 * hours, 20 * hours, 24 * hours]);
    expect(MAX_ATTEMPTS).toBe(10);
    const delays = Array.from({ length: 10 }, (_, i) => retryDelaySeconds(i + 1, { random: middle }));
    expect(delays).toEqual([...RETRY_SCHEDULE_SECONDS, null]);
    // About 3.1 days from the first attempt to the last.
    expect(RETRY_SCHEDULE_SECONDS.reduce((a, b) => a + b, 0) / 86400).toBeCloseTo(3.15, 2);
  });

  it('draws each delay within 20% either way', () => {
    expect(retryDelaySeconds(1, { random: () => 0 })).toBe(4);
    expect(retryDelaySeconds(1, { random: () => 0.999999 })).toBeCloseTo(6, 3);
    expect(retryDelaySeconds(9, { random: () => 0 })).toBe(0.8 * 86400);
    for (let i = 0; i < 200; i++) {
      const delay = retryDelaySeconds(3)!;
      expect(delay).toBeGreaterThanOrEqual(1440);
      expect(delay).toBeLessThanOrEqual(2160);
    }
  });

  it("waits at least as long as a Retry-After asks, up to 24 h, and keeps the schedule's longer delay", () => {
    expect(retryDelaySeconds(1, { random: middle, retryAfterSeconds: 120 })).toBe(120);
    expect(retryDelaySeconds(2, { random: middle, retryAfterSeconds: 120 })).toBe(300);
    expect(retryDelaySeconds(1, { random: middle, retryAfterSeconds: 7 * 86400 })).toBe(MAX_RETRY_AFTER_SECONDS);
    expect(retryDelaySeconds(1, { random: middle, retryAfterSeconds: null })).toBe(5);
    expect(retryDelaySeconds(1, { random: middle, retryAfterSeconds: -30 })).toBe(5);
    // The tenth attempt was the last whatever the receiver asks.
    expect(retryDelaySeconds(10, { random: middle, retryAfterSeconds: 60 })).toBeNull();
  });

  it('gives the instant of the next attempt', () => {
    const now = new Date('2026-11-20T09:00:00.000Z');
    expect(nextAttemptAt(now, 2, { random: middle })?.toISOString()).toBe('2026-11-20T09:05:00.000Z');
    expect(nextAttemptAt(now, 1, { random: () => 0.25 })?.toISOString()).toBe('2026-11-20T09:00:04.500Z');
    expect(nextAttemptAt(now, MAX_ATTEMPTS, { random: middle })).toBeNull();
  });
});
