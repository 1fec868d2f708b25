import { afterEach, describe, expect, it, vi } from 'vitest';
import { LoneNode } from '../../../src/cluster/cluster.js';
import { InboxJanitor } from '../../../src/notifications/inbox/janitor.js';
import { ManualClock } from '../../helpers/clock.js';

afterEach(() => {
  vi.useRealTimers();
});

function janitorFixture(warningMinutes = 5) {
  const clock = new ManualClock('2026-11-21T14:00:00.000Z');
  const cluster = new LoneNode('node-a');
  const calls: string[] = [];
  const janitor = new InboxJanitor({
    clock: clock.now,
    log: { error: () => undefined },
    cluster,
    warningMinutes,
    leases: () => ({
      warnExpiring: async (minutes) => {
        calls.push(`warn ${minutes} at ${clock.now().toISOString().slice(11, 19)}`);
        return 0;
      },
    }),
    inbox: {
      purgeRead: async (now) => {
        calls.push(`purge at ${now.toISOString().slice(11, 19)}`);
        return 0;
      },
    },
  });
  return { clock, cluster, calls, janitor };
}

/** Lets the janitor's timer fire once and its work settle. */
async function tick(): Promise<void> {
  await vi.advanceTimersByTimeAsync(1000);
}

describe('InboxJanitor', () => {
  it('works only while the node leads, each job when due by the server clock', async () => {
    vi.useFakeTimers();
    const { clock, cluster, calls, janitor } = janitorFixture();
    janitor.start();
    await tick();
    expect(calls).toEqual([]);

    await cluster.start();
    await tick();
    expect(calls).toEqual(['warn 5 at 14:00:00', 'purge at 14:00:00']);
    calls.length = 0;
    clock.advance(10);
    await tick();
    expect(calls).toEqual([]);
    clock.advance(5);
    await tick();
    expect(calls).toEqual(['warn 5 at 14:00:15']);
    calls.length = 0;
    clock.advance(3600);
    await tick();
    expect(calls).toEqual(['warn 5 at 15:00:15', 'purge at 15:00:15']);
    calls.length = 0;

    await cluster.close();
    clock.advance(7200);
    await tick();
    expect(calls).toEqual([]);
    await janitor.close();
  });

  it('gives no warnings when they are turned off, and still purges', async () => {
    vi.useFakeTimers();
    const { cluster, calls, janitor } = janitorFixture(0);
    await cluster.start();
    janitor.start();
    await tick();
    expect(calls).toEqual(['purge at 14:00:00']);
    expect(await janitor.warnExpiring()).toBe(0);
    await janitor.close();
  });
});
