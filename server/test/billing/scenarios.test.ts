import { describe, expect, it } from 'vitest';
import type { NewPlan } from '../../src/billing/plans.js';
import { revokeUserSessions } from '../../src/auth/sessions.js';
import { chargeFor } from '../../src/billing/money.js';
import { systemCause } from '../../src/events/types.js';
import type { Principal } from '../../src/http/handler.js';
import { UserService } from '../../src/users/service.js';
import { rejection } from '../domains/fixture.js';
import { billingFixture, secondsOf, usageLineSeconds, type BillingFixture, type UsageRecordRow } from './fixture.js';

const iso = (ms: number) => new Date(ms).toISOString();
const plus = (instant: string, seconds: number) => iso(Date.parse(instant) + seconds * 1000);

async function leaseRow(f: BillingFixture, id: string) {
  return f.db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function lease(f: BillingFixture, user: Principal, input: Parameters<BillingFixture['leases']['create']>[1] = {}) {
  const { status, lease } = await f.leases.create(user, { ttlSeconds: 3600, ...input }, null);
  expect(status).toBe(201);
  return lease;
}

/** Holds one device from one instant to another. */
async function use(f: BillingFixture, user: Principal, deviceId: string, from: string, to: string) {
  f.at(from);
  const held = await lease(f, user, { selector: { deviceIds: [deviceId] } });
  f.at(to);
  await f.leases.release(user, held.id, null);
  await f.leases.settled();
}

/** A fixture from 10 November with Alice on a plan of her own and two physical devices, dev_1 and dev_2. */
async function aliceOn(plan: NewPlan): Promise<{ f: BillingFixture; alice: Principal }> {
  const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
  const alice = await f.user('alice');
  await f.plan(plan, alice);
  await f.device('dev_1');
  await f.device('dev_2');
  return { f, alice };
}

const flagship = '{"tier":"flagship"}';

describe('a lease across a month boundary', () => {
  it.each([
    ['UTC', '2026-12-01T00:00:00.000Z'],
    ['Europe/Berlin', '2026-11-30T23:00:00.000Z'],
    ['America/New_York', '2026-12-01T05:00:00.000Z'],
  ])('is split at the boundary of %s, the closed period invoiced, the open lease metered on', async (timeZone, boundary) => {
    const f = await billingFixture({ timeZone, start: plus(boundary, -3 * 3600) });
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.plan({ name: 'Metered', currency: 'USD', prices: { physical: 7 } }, alice, bob);
    await f.device('dev_1');
    await f.device('dev_2');

    // Alice's lease is still open when the period closes; Bob's crosses the boundary and ends before.
    f.at(plus(boundary, -1825 + 0.4));
    const aliceLease = await lease(f, alice, { ttlSeconds: 7200 });
    f.at(plus(boundary, -600 + 0.5));
    const bobLease = await lease(f, bob);
    f.at(plus(boundary, 300.2));
    await f.leases.release(bob, bobLease.id, null);
    // Every record lies in one local day: Bob's two are the last day of November and the first of December.
    const bobRecords = (await f.records({ leaseId: bobLease.id })).map((r) => `${r.day} ${r.period} ${r.seconds}`);
    expect(bobRecords).toEqual(['2026-11-30 2026-11 600', '2026-12-01 2026-12 301']);

    f.at(plus(boundary, 600));
    await f.enforcer.check();
    const novemberOfAlice = await f.records({ leaseId: aliceLease.id });
    expect(novemberOfAlice.map((r) => [r.period, r.seconds, r.ended_at])).toEqual([['2026-11', 1825, boundary]]);
    const aliceInvoice = await f.invoice(alice, '2026-11');
    expect(aliceInvoice).toMatchObject({ status: 'draft', period: '2026-11', periodEnd: boundary, usageSeconds: 1825 });
    // 1825 s at 7 per minute: 212.92, rounded once.
    expect(aliceInvoice.lines).toEqual([expect.objectContaining({ kind: 'usage', billingClass: 'physical', seconds: 1825, pricePerMinute: 7, amount: 213 })]);
    expect(aliceInvoice.total).toBe(213);
    const bobInvoice = await f.invoice(bob, '2026-11');
    expect(usageLineSeconds(bobInvoice)).toBe(secondsOf(await f.records({ userId: bob.userId, period: '2026-11' })));
    expect(bobInvoice.total).toBe(70);

    // The open lease goes on in December, from the boundary.
    const december = await f.usage.summary(alice, {});
    expect(december).toMatchObject({ period: '2026-12', deviceSeconds: 600, openLeases: 1, usageAmount: 70 });
    f.at(plus(boundary, 2710.2));
    await f.leases.release(alice, aliceLease.id, null);
    const all = await f.records({ leaseId: aliceLease.id });
    expect(all.map((r) => [r.period, r.seconds])).toEqual([
      ['2026-11', 1825],
      ['2026-12', 2711],
    ]);
    expect(all[1]!.started_at).toBe(boundary);
    // Floor of the grant to ceil of the release: no second twice, none lost.
    expect(secondsOf(all)).toBe(Math.ceil(Date.parse(plus(boundary, 2710.2)) / 1000) - Math.floor(Date.parse(plus(boundary, -1825 + 0.4)) / 1000));
    // Closing again changes nothing.
    await f.enforcer.check();
    expect((await f.invoice(alice, '2026-11')).lines).toEqual(aliceInvoice.lines);
  });
});

describe('plan and price changes', () => {
  it('prices each second at the plan in effect, with a line per price, and the fee of the plan at the period end', async () => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.plan({ name: 'Basic', currency: 'USD', prices: { physical: 7 }, monthlyFee: 500 }, alice);
    const pro = await f.plan({ name: 'Pro', currency: 'USD', prices: { physical: 11 }, monthlyFee: 2000 }, bob);
    await f.device('dev_1');
    await f.device('dev_2');
    f.at('2026-11-10T10:00:00.500Z');
    const aliceLease = await lease(f, alice);
    const bobLease = await lease(f, bob);

    f.at('2026-11-10T10:20:00.700Z');
    await f.plans.update(pro.id, { prices: { physical: 13 } }, systemCause);
    // Only the plan's users are cut.
    expect((await f.records({ userId: bob.userId })).map((r) => [r.seconds, r.price_per_minute])).toEqual([[1200, 11]]);
    expect(await f.records({ userId: alice.userId })).toEqual([]);

    f.at('2026-11-10T10:50:30.300Z');
    await f.plans.assign(alice.userId, pro.id, systemCause);
    expect((await f.records({ userId: alice.userId })).map((r) => [r.seconds, r.price_per_minute])).toEqual([[3030, 7]]);

    f.at('2026-11-10T11:00:00.100Z');
    await f.leases.release(alice, aliceLease.id, null);
    await f.leases.release(bob, bobLease.id, null);
    // A fee change cuts nothing; the invoice takes the fee the plan has when the period closes.
    await f.plans.update(pro.id, { monthlyFee: 2500 }, systemCause);
    expect((await f.records({ userId: alice.userId })).map((r) => [r.seconds, r.price_per_minute])).toEqual([
      [3030, 7],
      [571, 13],
    ]);

    f.at('2026-12-01T00:00:05.000Z');
    await f.enforcer.check();
    const aliceInvoice = await f.invoice(alice, '2026-11');
    expect(aliceInvoice.planName).toBe('Pro');
    expect(aliceInvoice.lines.map((l) => [l.kind, l.billingClass, l.seconds, l.pricePerMinute, l.amount])).toEqual([
      // 3030 s × 7 / 60 = 353.5 exactly: half up.
      ['usage', 'physical', 3030, 7, 354],
      // 571 × 13 / 60 = 123.72.
      ['usage', 'physical', 571, 13, 124],
      ['fee', null, null, null, 2500],
    ]);
    expect(aliceInvoice.total).toBe(2978);
    const bobInvoice = await f.invoice(bob, '2026-11');
    expect(bobInvoice.lines.map((l) => [l.kind, l.seconds, l.pricePerMinute, l.amount])).toEqual([
      ['usage', 1200, 11, 220],
      // 2401 × 13 / 60 = 520.22.
      ['usage', 2401, 13, 520],
      ['fee', null, null, 2500],
    ]);
    expect(bobInvoice.total).toBe(3240);
    for (const [user, invoice] of [
      [alice, aliceInvoice],
      [bob, bobInvoice],
    ] as const) {
      expect(invoice.usageSeconds).toBe(secondsOf(await f.records({ userId: user.userId, period: '2026-11' })));
      expect(invoice.usageSeconds).toBe(3601);
    }
  });

  it('refuses a plan in another currency while the user has usage this period', async () => {
    const f = await billingFixture();
    const alice = await f.user('alice');
    await f.device('dev_1');
    const yen = await f.plan({ name: 'Yen', currency: 'JPY', prices: { physical: 3 } });
    const held = await lease(f, alice);
    f.clock.advance(60);
    expect((await rejection(() => f.plans.assign(alice.userId, yen.id, systemCause))).code).toBe('currency_mismatch');
    await f.leases.release(alice, held.id, null);
    expect((await rejection(() => f.plans.assign(alice.userId, yen.id, systemCause))).code).toBe('currency_mismatch');
    // Until the leader closes November, its usage is still to be invoiced in dollars.
    f.at('2026-12-01T00:00:01.000Z');
    expect((await rejection(() => f.plans.assign(alice.userId, yen.id, systemCause))).code).toBe('currency_mismatch');
    await f.enforcer.check();
    await f.plans.assign(alice.userId, yen.id, systemCause);
    const november = await f.invoice(alice, '2026-11');
    expect(november).toMatchObject({ currency: 'USD', planName: 'Free', total: 0 });
  });
});

describe('currencies without and with three minor digits', () => {
  it('rounds each line once, half up, in JPY and KWD', async () => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const carol = await f.user('carol');
    const dave = await f.user('dave');
    await f.plan({ name: 'Yen', currency: 'JPY', prices: { physical: 3, flagship: 7 } }, carol);
    await f.plan({ name: 'Dinar', currency: 'KWD', prices: { physical: 1235, flagship: 1000 }, monthlyFee: 2500 }, dave);
    await f.device('dev_1');
    await f.device('dev_2', { labels: flagship });
    // Started seconds count: from x.25 to (x + 49).75 is 50 whole seconds.
    const seconds = async (user: Principal, deviceId: string, n: number) => {
      const now = f.clock.now().toISOString();
      await use(f, user, deviceId, plus(now, 0.25), plus(now, n - 0.25));
      f.clock.advance(0.25);
    };
    await seconds(carol, 'dev_1', 50);
    await seconds(carol, 'dev_1', 50);
    await seconds(carol, 'dev_2', 90);
    for (let i = 0; i < 3; i++) await seconds(dave, 'dev_1', 6);
    await seconds(dave, 'dev_2', 45);
    expect((await f.records({ userId: carol.userId })).map((r) => r.seconds)).toEqual([50, 50, 90]);
    expect((await f.records({ userId: dave.userId })).map((r) => r.seconds)).toEqual([6, 6, 6, 45]);

    f.at('2026-12-01T00:00:05.000Z');
    await f.enforcer.check();
    const yen = await f.invoice(carol, '2026-11');
    expect(yen.currency).toBe('JPY');
    expect(yen.lines.map((l) => [l.billingClass, l.seconds, l.amount])).toEqual([
      // 90 × 7 / 60 = 10.5 → 11.
      ['flagship', 90, 11],
      // 100 × 3 / 60 = 5 (each lease alone would be 2.5 → 3).
      ['physical', 100, 5],
    ]);
    expect(yen.total).toBe(16);
    const dinar = await f.invoice(dave, '2026-11');
    expect(dinar.currency).toBe('KWD');
    expect(dinar.lines.map((l) => [l.kind, l.billingClass, l.seconds, l.amount])).toEqual([
      ['usage', 'flagship', 45, 750],
      // 18 × 1235 / 60 = 370.5 fils → 371 (each lease alone: 123.5 → 124, three of them 372).
      ['usage', 'physical', 18, 371],
      ['fee', null, null, 2500],
    ]);
    expect(dinar.total).toBe(3621);
  });
});

describe('included minutes', () => {
  it('covers the first minutes of the period and bills the rest, credited at the price of the seconds they covered', async () => {
    const f = await billingFixture({ start: '2026-11-10T20:00:00.000Z' });
    const alice = await f.user('alice');
    await f.plan({ name: 'Starter', currency: 'USD', prices: { physical: 7, flagship: 13 }, includedMinutes: 10 }, alice);
    await f.device('dev_1');
    await f.device('dev_2', { labels: flagship });
    // Four minutes on a flagship first, all included.
    await use(f, alice, 'dev_2', '2026-11-10T23:40:00.000Z', '2026-11-10T23:44:00.000Z');
    // Then a lease across midnight uses the six minutes left on its first 360 s.
    f.at('2026-11-10T23:55:00.500Z');
    const second = await lease(f, alice, { selector: { deviceIds: ['dev_1'] } });
    f.at('2026-11-11T00:01:00.000Z');
    expect(await f.usage.summary(alice, {})).toMatchObject({ deviceSeconds: 600, includedSecondsUsed: 600, billableSeconds: 0, usageAmount: 0 });
    f.at('2026-11-11T00:02:00.000Z');
    expect(await f.usage.summary(alice, {})).toMatchObject({ deviceSeconds: 660, includedSecondsUsed: 600, billableSeconds: 60, usageAmount: 7 });
    f.at('2026-11-11T00:20:00.500Z');
    await f.leases.release(alice, second.id, null);
    expect((await f.records({ userId: alice.userId })).map((r) => [r.day, r.billing_class, r.seconds, r.included_seconds])).toEqual([
      ['2026-11-10', 'flagship', 240, 240],
      ['2026-11-10', 'physical', 300, 300],
      ['2026-11-11', 'physical', 1201, 60],
    ]);

    f.at('2026-12-01T00:00:05.000Z');
    await f.enforcer.check();
    const invoice = await f.invoice(alice, '2026-11');
    expect(invoice.lines.map((l) => [l.kind, l.billingClass, l.seconds, l.amount])).toEqual([
      // 240 × 13 / 60 = 52.
      ['usage', 'flagship', 240, 52],
      // 1501 × 7 / 60 = 175.12.
      ['usage', 'physical', 1501, 175],
      // −(240 × 13 + 360 × 7) / 60 = −94.
      ['included', null, 600, -94],
    ]);
    // What is billed: 1141 s × 7 / 60 = 133.12.
    expect(invoice.total).toBe(133);
  });
});

describe('budgets', () => {
  it('ends the leases of a spent user budget at the next check, with its thresholds announced once, and others go on', async () => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    // Two cents a second.
    await f.plan({ name: 'Dear', currency: 'USD', prices: { physical: 120 } }, alice, bob);
    await f.device('dev_1');
    await f.device('dev_2');
    await f.device('dev_3');
    const budget = await f.budgets.create({ scope: 'user', userId: alice.userId, currency: 'USD', amount: 1000 }, systemCause);
    f.at('2026-11-10T10:00:00.000Z');
    const aliceLease = await lease(f, alice);
    const bobLease = await lease(f, bob);
    const thresholds = async () => (await f.events('usage.threshold_reached')).map((e) => e.data.threshold);

    f.at('2026-11-10T10:03:00.000Z');
    await f.enforcer.check();
    expect(await thresholds()).toEqual([]);
    f.at('2026-11-10T10:04:30.000Z');
    await f.enforcer.check();
    expect(await thresholds()).toEqual([50]);
    f.at('2026-11-10T10:07:00.000Z');
    await f.enforcer.check();
    await f.enforcer.check();
    expect(await thresholds()).toEqual([50, 80]);
    expect((await leaseRow(f, aliceLease.id)).status).toBe('granted');

    // The budget is spent at 10:08:20 (500 s); the check comes 5 s later.
    const exhaustedAt = Date.parse('2026-11-10T10:08:20.000Z');
    f.at('2026-11-10T10:08:25.000Z');
    await f.enforcer.check();
    await f.enforcer.check();
    expect(await thresholds()).toEqual([50, 80, 100]);
    const exhausted = await f.events('budget.exhausted');
    expect(exhausted).toHaveLength(1);
    expect(exhausted[0]!.data).toMatchObject({ period: '2026-11', spent: 1010, leaseIds: [aliceLease.id], budget: { id: budget.id } });
    expect(await leaseRow(f, aliceLease.id)).toMatchObject({ status: 'released', end_reason: 'budget_exhausted' });
    expect(await leaseRow(f, bobLease.id)).toMatchObject({ status: 'granted', end_reason: null });

    // Overspent by no more than the device time between the exhaustion and the check.
    const records = await f.records({ userId: alice.userId });
    const cost60 = records.reduce((sum, r) => sum + (r.seconds - r.included_seconds) * r.price_per_minute, 0);
    const bound60 = ((f.clock.now().getTime() - exhaustedAt) / 1000) * 120;
    expect(cost60 - budget.amount * 60).toBe(bound60);
    expect(await f.budgets.get(f.admin, budget.id)).toMatchObject({ spent: 1010, remaining: -10, exhausted: true });

    for (const waitSeconds of [0, 60]) {
      const refused = await rejection(() => f.leases.create(alice, { waitSeconds }, null));
      expect(refused).toMatchObject({ code: 'budget_exhausted', status: 402 });
      expect(refused.extensions?.budget).toEqual({ id: budget.id, scope: 'user', currency: 'USD', amount: 1000, spent: 1010 });
    }
    expect(await f.leases.create(bob, {}, null)).toMatchObject({ status: 201 });
  });

  it('refuses a lease, or its renewal, that its budget cannot pay a minute of, even a lease that would wait', async () => {
    const { f, alice } = await aliceOn({ name: 'Dear', currency: 'USD', prices: { physical: 120, flagship: 60 } });
    await f.budgets.create({ scope: 'user', userId: alice.userId, currency: 'USD', amount: 150 }, systemCause);
    const held = await lease(f, alice, { selector: { deviceIds: ['dev_1'] } });
    // 60 spent, 90 left: less than the 120 a first minute on a physical device costs.
    f.clock.advance(30);
    for (const waitSeconds of [0, 60]) {
      const refused = await rejection(() => f.leases.create(alice, { waitSeconds }, null));
      expect(refused).toMatchObject({ code: 'budget_exhausted', status: 402 });
      expect(refused.extensions?.budget).toMatchObject({ amount: 150, spent: 60 });
    }
    expect(await f.db.selectFrom('leases').select('id').execute()).toHaveLength(1);
    expect(await f.events('lease.queued')).toEqual([]);
    const renewal = await rejection(() => f.leases.renew(alice, held.id, { ttlSeconds: 600 }, null));
    expect(renewal).toMatchObject({ code: 'budget_exhausted', status: 402 });
    // A cheaper device fits what is left.
    await f.device('dev_3', { labels: flagship });
    expect(await f.leases.create(alice, { selector: { deviceIds: ['dev_3'] }, waitSeconds: 60 }, null)).toMatchObject({ status: 201 });
  });

  it('shows what a budget spent rounded half up in its view, its events, a 402 and an estimate alike', async () => {
    const { f, alice } = await aliceOn({ name: 'Odd', currency: 'USD', prices: { physical: 7 } });
    const budget = await f.budgets.create({ scope: 'user', userId: alice.userId, currency: 'USD', amount: 1000 }, systemCause);
    f.at('2026-11-10T10:00:00.000Z');
    await lease(f, alice, { ttlSeconds: 86_400 });
    // 4286 s × 7 / 60 = 500.03.
    f.clock.advance(4286);
    await f.enforcer.check();
    expect(await f.budgets.get(f.admin, budget.id)).toMatchObject({ spent: 500, remaining: 500 });
    expect((await f.events('usage.threshold_reached')).map((e) => e.data)).toMatchObject([{ threshold: 50, spent: 500 }]);
    expect((await f.usage.estimate(alice, {})).budget.budgets).toEqual([{ id: budget.id, scope: 'user', currency: 'USD', remaining: 500 }]);
    // 8572 s × 7 / 60 = 1000.07.
    f.at('2026-11-10T12:22:52.000Z');
    await f.enforcer.check();
    expect((await f.events('budget.exhausted')).map((e) => e.data.spent)).toEqual([1000]);
    expect(await f.budgets.get(f.admin, budget.id)).toMatchObject({ spent: 1000, remaining: 0, exhausted: true });
    expect((await rejection(() => f.leases.create(alice, {}, null))).extensions?.budget).toMatchObject({ spent: 1000 });
  });

  it('ends only the leases of the spent project', async () => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.plan({ name: 'Dear', currency: 'USD', prices: { physical: 120 } }, alice, bob);
    for (let i = 0; i < 4; i++) await f.device(`dev_${i}`);
    const budget = await f.budgets.create({ scope: 'project', project: 'ci', currency: 'USD', amount: 600 }, systemCause);
    f.at('2026-11-10T10:00:00.000Z');
    const aliceCi = await lease(f, alice, { project: 'ci' });
    const aliceOwn = await lease(f, alice);
    const bobCi = await lease(f, bob, { project: 'ci' });
    const bobOther = await lease(f, bob, { project: 'other' });
    // Two leases at 2 cents a second spend 600 in 150 s.
    f.at('2026-11-10T10:02:29.000Z');
    await f.enforcer.check();
    expect(await f.events('budget.exhausted')).toEqual([]);
    f.at('2026-11-10T10:02:31.000Z');
    await f.enforcer.check();
    const exhausted = await f.events('budget.exhausted');
    expect(exhausted).toHaveLength(1);
    expect(new Set(exhausted[0]!.data.leaseIds)).toEqual(new Set([aliceCi.id, bobCi.id]));
    for (const id of [aliceCi.id, bobCi.id]) expect((await leaseRow(f, id)).end_reason).toBe('budget_exhausted');
    for (const id of [aliceOwn.id, bobOther.id]) expect((await leaseRow(f, id)).status).toBe('granted');
    const spent = (await f.records()).filter((r) => r.project === 'ci').reduce((sum, r) => sum + r.seconds * r.price_per_minute, 0);
    expect(spent / 60).toBe(604);
    expect((await rejection(() => f.leases.create(alice, { project: 'ci' }, null))).code).toBe('budget_exhausted');
    await f.leases.settled();
    expect(await f.leases.create(alice, { project: 'other' }, null)).toMatchObject({ status: 201 });
    expect(await f.budgets.get(f.admin, budget.id)).toMatchObject({ spent: 604, exhausted: true });
  });
});

describe('quotas', () => {
  it('refuses a request over maxConcurrentDevices that cannot wait, and queues one that can without holding back a free device', async () => {
    const f = await billingFixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    await f.plan({ name: 'One at a time', currency: 'USD', quotas: { maxConcurrentDevices: 1 } }, alice);
    await f.device('dev_1');
    await f.device('dev_2');
    const first = await lease(f, alice);

    const refused = await rejection(() => f.leases.create(alice, {}, 'req_2'));
    expect(refused).toMatchObject({ code: 'quota_exceeded', status: 403 });
    const quota = { name: 'maxConcurrentDevices', limit: 1, current: 1, requested: 1 };
    expect(refused.extensions?.quota).toEqual(quota);
    expect((await f.events('quota.exceeded')).map((e) => e.data)).toEqual([{ userId: alice.userId, quota, leaseId: null }]);

    const queued = await f.leases.create(alice, { waitSeconds: 600 }, null);
    expect(queued.status).toBe(202);
    // The free device is not reserved for a lease its quota keeps waiting.
    const bobs = await f.leases.create(bob, {}, null);
    expect(bobs.status).toBe(201);
    expect((await leaseRow(f, queued.lease.id)).status).toBe('queued');

    f.clock.advance(30);
    await f.leases.release(alice, first.id, null);
    await f.leases.settled();
    await f.leases.schedule();
    const granted = await leaseRow(f, queued.lease.id);
    expect(granted.status).toBe('granted');
    expect(await f.doubleBooked()).toEqual([]);
  });

  it('limits the TTL at create and at renew', async () => {
    const f = await billingFixture();
    const alice = await f.user('alice');
    await f.plan({ name: 'Short', currency: 'USD', quotas: { maxLeaseTtlSeconds: 600 } }, alice);
    await f.device('dev_1');
    const tooLong = await rejection(() => f.leases.create(alice, { ttlSeconds: 601 }, null));
    expect(tooLong).toMatchObject({ code: 'quota_exceeded', status: 403 });
    expect(tooLong.extensions?.quota).toEqual({ name: 'maxLeaseTtlSeconds', limit: 600, current: 601, requested: 601 });
    const held = await lease(f, alice, { ttlSeconds: 600 });
    const renewal = await rejection(() => f.leases.renew(alice, held.id, { ttlSeconds: 900 }, null));
    expect(renewal.code).toBe('quota_exceeded');
    expect(renewal.extensions?.quota).toMatchObject({ name: 'maxLeaseTtlSeconds', requested: 900 });
    expect((await f.events('quota.exceeded')).map((e) => e.data.quota.requested)).toEqual([601, 900]);
    expect((await f.leases.renew(alice, held.id, { ttlSeconds: 300 }, null)).expiresAt).toBe(plus(f.clock.now().toISOString(), 300));
  });

  it('refuses leases once minutesPerPeriod is used up and ends the running one at the next check', async () => {
    const { f, alice } = await aliceOn({ name: 'Five minutes', currency: 'USD', quotas: { minutesPerPeriod: 5 } });
    f.at('2026-11-10T10:00:00.000Z');
    const held = await lease(f, alice);
    f.at('2026-11-10T10:04:59.000Z');
    await f.enforcer.check();
    expect((await leaseRow(f, held.id)).status).toBe('granted');
    f.at('2026-11-10T10:05:01.000Z');
    await f.enforcer.check();
    expect(await leaseRow(f, held.id)).toMatchObject({ status: 'released', end_reason: 'quota_exhausted' });
    const quota = { name: 'minutesPerPeriod', limit: 5, current: 5, requested: 0 };
    expect((await f.events('quota.exceeded')).map((e) => e.data)).toEqual([{ userId: alice.userId, quota, leaseId: held.id }]);
    const refused = await rejection(() => f.leases.create(alice, {}, null));
    expect(refused.code).toBe('quota_exceeded');
    expect(refused.extensions?.quota).toEqual({ name: 'minutesPerPeriod', limit: 5, current: 5, requested: 1 });
    // A new period has its own minutes.
    f.at('2026-12-01T00:00:00.000Z');
    expect(await f.leases.create(alice, {}, null)).toMatchObject({ status: 201 });
  });
});

describe('estimates', () => {
  it.each([
    ['one class', 1, 0],
    ['two classes', 2, 0],
    ['two classes with included minutes left', 2, 3],
  ])('match the cost of the lease run for its whole TTL: %s', async (_name, count, includedMinutes) => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const alice = await f.user('alice');
    await f.plan({ name: 'Mixed', currency: 'USD', prices: { physical: 7, flagship: 13 }, includedMinutes }, alice);
    await f.device('dev_a');
    await f.device('dev_b', { labels: flagship });
    const ttlSeconds = 617;
    const estimate = await f.usage.estimate(alice, { count, ttlSeconds });
    expect(estimate).toMatchObject({ allowed: true, count, includedSecondsLeft: includedMinutes * 60 });
    const held = await lease(f, alice, { count, ttlSeconds });
    f.clock.advance(ttlSeconds + 5);
    await f.sweep();
    expect((await leaseRow(f, held.id)).end_reason).toBe('expired');
    const records = await f.records({ leaseId: held.id });
    expect(secondsOf(records)).toBe(count * ttlSeconds);
    const cost60 = records.reduce((sum, r) => sum + (r.seconds - r.included_seconds) * r.price_per_minute, 0);
    expect(estimate.estimatedCost).toBe(Math.floor((cost60 + 30) / 60));
  });
});

describe('invoices', () => {
  it('drafts what the preview showed, takes adjustments until finalized, numbers without gaps and voids keeping the number', async () => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const alice = await f.user('alice');
    const others: Principal[] = [];
    for (let i = 0; i < 6; i++) others.push(await f.user(`user${i}`));
    await f.plan({ name: 'Team', currency: 'USD', prices: { physical: 7, flagship: 13 }, includedMinutes: 2, monthlyFee: 500 }, alice, ...others);
    await f.device('dev_1');
    await f.device('dev_2', { labels: flagship });
    await use(f, alice, 'dev_1', '2026-11-30T20:00:00.300Z', '2026-11-30T20:17:45.100Z');
    // A lease that expires unswept before the preview: counted to its expiry in both.
    f.at('2026-11-30T21:00:00.700Z');
    await lease(f, alice, { selector: { deviceIds: ['dev_2'] }, ttlSeconds: 1234 });
    f.at('2026-11-30T23:00:00.000Z');
    const preview = await f.invoices.preview(f.admin, alice.userId);
    const othersPreview = await f.invoices.preview(others[0]!, undefined);
    expect(othersPreview.lines).toEqual([expect.objectContaining({ kind: 'fee', amount: 500 })]);

    f.at('2026-12-01T00:00:10.000Z');
    await f.enforcer.check();
    const draft = await f.invoice(alice, '2026-11');
    expect(draft.lines).toEqual(preview.lines);
    expect(draft.total).toBe(preview.total);
    expect(draft.usageSeconds).toBe(preview.usageSeconds);
    expect(draft.lines.map((l) => [l.kind, l.billingClass, l.seconds, l.amount])).toEqual([
      // 1235 s × 13 / 60 = 267.58.
      ['usage', 'flagship', 1235, 268],
      // 1066 s × 7 / 60 = 124.37.
      ['usage', 'physical', 1066, 124],
      ['fee', null, null, 500],
      ['included', null, 120, -14],
    ]);
    expect(draft.total).toBe(878);
    expect((await f.invoice(others[0]!, '2026-11')).total).toBe(othersPreview.total);

    const adjusted = await f.invoices.adjust(draft.id, { amount: -150, reason: 'Goodwill' }, f.admin, systemCause);
    expect(adjusted.lines.at(-1)).toMatchObject({ kind: 'adjustment', amount: -150, reason: 'Goodwill', createdBy: f.admin.userId });
    expect(adjusted.total).toBe(728);

    const drafts = [draft, ...(await Promise.all(others.map((user) => f.invoice(user, '2026-11'))))];
    const numbers: number[] = [];
    for (const invoice of drafts.slice(0, 3)) numbers.push((await f.invoices.finalize(invoice.id, systemCause)).number!);
    expect(numbers).toEqual([1, 2, 3]);
    const together = await Promise.all(drafts.slice(3).map((invoice) => f.invoices.finalize(invoice.id, systemCause)));
    expect(together.map((invoice) => invoice.number).sort((a, b) => a! - b!)).toEqual([4, 5, 6, 7]);
    const finalized = await f.invoices.get(f.admin, draft.id);
    expect(finalized).toMatchObject({ status: 'finalized', number: 1, total: 728 });

    const notDraft = await rejection(() => f.invoices.adjust(draft.id, { amount: 10, reason: 'Late fee' }, f.admin, systemCause));
    expect(notDraft).toMatchObject({ code: 'invoice_not_draft', status: 409 });
    expect((await rejection(() => f.invoices.finalize(draft.id, systemCause))).code).toBe('invoice_not_draft');
    expect((await f.invoices.get(f.admin, draft.id)).total).toBe(728);

    const voided = await f.invoices.void(draft.id, 'Billed twice', systemCause);
    expect(voided).toMatchObject({ status: 'void', number: 1, voidReason: 'Billed twice', voidedAt: f.clock.now().toISOString() });
    const again = await rejection(() => f.invoices.void(draft.id, 'Again', systemCause));
    expect(again).toMatchObject({ code: 'invoice_already_void', status: 409 });
    // The next number follows the highest given, the void one's included.
    f.at('2027-01-01T00:00:10.000Z');
    await f.enforcer.check();
    const december = await f.invoice(others[0]!, '2026-12');
    expect((await f.invoices.finalize(december.id, systemCause)).number).toBe(8);
    expect((await f.events('invoice.finalized')).length).toBe(8);
  });
});

describe('deleted users', () => {
  it('invoices the usage of a user deleted mid-lease, under the name they had, at the default plan', async () => {
    const f = await billingFixture({ start: '2026-11-10T09:00:00.000Z' });
    const alice = await f.user('alice');
    await f.device('dev_1');
    await f.plans.update((await f.plans.ofUser(alice.userId)).plan.id, { defaultPrice: 6 }, systemCause);
    await lease(f, alice);
    f.at('2026-11-10T09:10:00.000Z');
    const users = new UserService({
      db: f.db,
      clock: () => new Date(Date.parse('2026-11-10T09:10:00.000Z')),
      sessions: { revokeUserSessions },
      leases: { endLeasesOfUser: (trx, userId, cause) => f.leases.endLeasesOfUser(trx, userId, cause) },
    });
    await users.delete(alice.userId, systemCause);
    await f.leases.settled();
    expect(secondsOf(await f.records({ userId: alice.userId }))).toBe(600);

    f.at('2026-12-01T00:00:05.000Z');
    await f.enforcer.check();
    const invoice = await f.invoice(alice, '2026-11');
    expect(invoice).toMatchObject({ username: 'alice', usageSeconds: 600, total: 60 });
  });
});

describe('usage reports', () => {
  it('add up the same records under every grouping, whichever way the engine groups them', async () => {
    const f = await billingFixture({ start: '2026-11-20T09:00:00.000Z' });
    const users = [await f.user('alice'), await f.user('bob'), await f.user('carol')];
    const projects = ['apps', 'web', null];
    const devices = [
      { id: 'dev_1', billingClass: 'physical' },
      { id: 'dev_2', billingClass: 'physical' },
      { id: 'dev_3', billingClass: 'emulator' },
    ];
    const days = ['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04'];
    const records: UsageRecordRow[] = [];
    for (let i = 0; i < 180; i++) {
      const user = users[i % 3]!;
      const device = devices[Math.floor(i / 3) % 3]!;
      const day = days[Math.floor(i / 9) % 4]!;
      const startS = Date.parse(`${day}T00:00:00.000Z`) / 1000 + i * 60;
      const seconds = 61 + ((i * 37) % 500);
      const currency = i % 7 === 0 ? 'EUR' : 'USD';
      records.push({
        id: `use_${String(i).padStart(26, '0')}`,
        lease_id: `lse_${i % 11}`,
        device_id: device.id,
        user_id: user.userId,
        project: projects[Math.floor(i / 27) % 3]!,
        billing_class: device.billingClass,
        plan_id: 'pln_report',
        currency,
        price_per_minute: 1 + (i % 5) * 3,
        started_at: iso(startS * 1000),
        ended_at: iso((startS + seconds) * 1000),
        start_s: startS,
        end_s: startS + seconds,
        seconds,
        included_seconds: i % 4 === 0 ? 60 : 0,
        day,
        period: '2026-11',
        recorded_at: iso((startS + seconds) * 1000),
      });
    }
    await f.db.insertInto('usage_records').values(records).execute();
    const from = '2026-11-02';
    const to = '2026-11-04';
    const by = { user: 'user_id', project: 'project', device: 'device_id', class: 'billing_class', day: 'day' } as const;
    const names = Object.keys(by) as (keyof typeof by)[];
    const usernames = new Map(users.map((user) => [user.userId, user.username]));
    for (let mask = 0; mask < 1 << names.length; mask++) {
      const groupBy = names.filter((_, n) => mask & (1 << n));
      const groups = new Map<string, { row: UsageRecordRow; seconds: number; billable: number; cost60: bigint }>();
      for (const record of records.filter((r) => r.day >= from && r.day <= to)) {
        const id = JSON.stringify([...groupBy.map((name) => record[by[name]]), record.currency]);
        const group = groups.get(id) ?? { row: record, seconds: 0, billable: 0, cost60: 0n };
        group.seconds += record.seconds;
        group.billable += record.seconds - record.included_seconds;
        group.cost60 += BigInt(record.seconds - record.included_seconds) * BigInt(record.price_per_minute);
        groups.set(id, group);
      }
      const sortKey = (group: { row: UsageRecordRow }) => [...groupBy.map((name) => group.row[by[name]] ?? ''), group.row.currency];
      const expected = [...groups.values()]
        .sort((a, b) => {
          const [x, y] = [sortKey(a), sortKey(b)];
          const n = x.findIndex((value, i) => value !== y[i]);
          return n < 0 ? 0 : x[n]! < y[n]! ? -1 : 1;
        })
        .map(({ row, seconds, billable, cost60 }) => ({
          ...(groupBy.includes('user') ? { userId: row.user_id, username: usernames.get(row.user_id) } : {}),
          ...(groupBy.includes('project') ? { project: row.project } : {}),
          ...(groupBy.includes('device') ? { deviceId: row.device_id } : {}),
          ...(groupBy.includes('class') ? { billingClass: row.billing_class } : {}),
          ...(groupBy.includes('day') ? { day: row.day } : {}),
          currency: row.currency,
          deviceSeconds: seconds,
          billableSeconds: billable,
          amount: Number(chargeFor(cost60)),
        }));
      const report = await f.usage.report(f.admin, { from, to, groupBy });
      expect(report.rows, groupBy.join(',')).toEqual(expected);
    }
  });
});
