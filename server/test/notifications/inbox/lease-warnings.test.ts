import { describe, expect, it } from 'vitest';
import { leaseFixture } from '../../leases/fixture.js';

describe('lease.granted', () => {
  it('says whether the lease waited in the queue', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.device('dev_1');
    const first = await f.leases.create(alice, {}, null);
    const second = await f.leases.create(bob, { waitSeconds: 600 }, null);
    expect(second.status).toBe(202);
    await f.leases.release(alice, first.lease.id, null);
    await f.leases.settled();
    const granted = await f.events('lease.granted');
    expect(granted.map((event) => [event.subjectId, event.data.queued])).toEqual([
      [first.lease.id, false],
      [second.lease.id, true],
    ]);
  });
});

describe('LeaseService.warnExpiring', () => {
  it('warns once per expiry time, within the warning, and again after a renewal', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { lease } = await f.leases.create(alice, { ttlSeconds: 900 }, null);
    f.clock.advance(9 * 60);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    f.clock.advance(60 + 15);
    expect(await f.leases.warnExpiring(5)).toBe(1);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    const warnings = await f.events('lease.expiring');
    expect(warnings).toEqual([
      {
        type: 'lease.expiring',
        subjectId: lease.id,
        actorType: 'system',
        data: {
          lease: { id: lease.id, userId: alice.userId, status: 'granted', count: 1, expiresAt: '2026-11-20T09:15:00.000Z' },
          minutesLeft: 5,
        },
      },
    ]);
    const row = await f.db.selectFrom('leases').select('expiry_warned_for').where('id', '=', lease.id).executeTakeFirstOrThrow();
    expect(row.expiry_warned_for).toBe('2026-11-20T09:15:00.000Z');

    const renewed = await f.leases.renew(alice, lease.id, { ttlSeconds: 600 }, null);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    f.clock.advance(5 * 60 + 30);
    expect(await f.leases.warnExpiring(5)).toBe(1);
    const [, again] = await f.events('lease.expiring');
    expect(again!.data).toEqual({
      lease: { id: lease.id, userId: alice.userId, status: 'granted', count: 1, expiresAt: renewed.expiresAt },
      minutesLeft: 5,
    });
  });

  it('does not warn of a lease granted or renewed for no longer than the warning', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const { lease } = await f.leases.create(alice, { ttlSeconds: 300 }, null);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    f.clock.advance(240);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    await f.leases.renew(alice, lease.id, { ttlSeconds: 120 }, null);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    await f.leases.renew(alice, lease.id, { ttlSeconds: 301 }, null);
    f.clock.advance(1);
    expect(await f.leases.warnExpiring(5)).toBe(1);
  });

  it('leaves alone leases that are queued, ended or already past their expiry', async () => {
    const f = await leaseFixture();
    await f.leases.start();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.device('dev_1');
    await f.device('dev_2');
    const ended = await f.leases.create(alice, { ttlSeconds: 120 }, null);
    await f.leases.release(alice, ended.lease.id, null);
    const overdue = await f.leases.create(bob, { ttlSeconds: 60 }, null);
    await f.leases.create(alice, { count: 2, waitSeconds: 3600 }, null);
    f.clock.advance(61);
    expect(await f.leases.warnExpiring(5)).toBe(0);
    expect(overdue.status).toBe(201);
    expect(await f.events('lease.expiring')).toEqual([]);
  });
});
