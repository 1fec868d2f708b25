import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextPeriod, periodBounds, periodOf } from '../../src/billing/calendar.js';
import { FREE_PLAN_ID } from '../../src/billing/plans.js';
import { systemCause } from '../../src/events/types.js';
import { ApiError } from '../../src/http/errors.js';
import type { Principal } from '../../src/http/handler.js';
import { testEngine } from '../helpers/database.js';
import { billingFixture, type BillingFixture, type UsageRecordRow } from './fixture.js';

/** Before the clocks go back in Europe (25 October) and in New York (1 November): days of 25 hours. */
const START = '2026-10-20T00:00:00.000Z';
const CLASSES = ['physical', 'flagship', 'emulator'] as const;
type Prices = Record<(typeof CLASSES)[number], number>;

const prices: fc.Arbitrary<Prices> = fc.record({
  physical: fc.integer({ min: 0, max: 50 }),
  flagship: fc.integer({ min: 0, max: 50 }),
  emulator: fc.integer({ min: 0, max: 50 }),
});

const plan = fc.record({
  prices,
  includedMinutes: fc.integer({ min: 0, max: 30 }),
  monthlyFee: fc.constantFrom(0, 0, 500, 999),
});

const action = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('lease' as const), user: fc.nat(2), count: fc.integer({ min: 1, max: 2 }), ttlSeconds: fc.noBias(fc.integer({ min: 30, max: 86_400 })) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('renew' as const), pick: fc.nat(), ttlSeconds: fc.integer({ min: 30, max: 86_400 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('sweep' as const) }) },
  // Plan 2 is no plan: the default plan applies.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('assign' as const), user: fc.nat(2), plan: fc.nat(2) }) },
  // Plan 2 is the free plan the fixture starts with as the default.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('default' as const), plan: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reprice' as const), plan: fc.nat(1), prices }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('check' as const) }) },
);

/**
 * Whole milliseconds between steps, at least a second (so no two steps share a second): minutes (releases before
 * expiry) or hours to days, unbiased so that histories span about two months.
 */
const step = fc.record({
  afterMs: fc.noBias(fc.oneof(fc.integer({ min: 1000, max: 900_000 }), fc.integer({ min: 6 * 3_600_000, max: 8 * 86_400_000 }))),
  action,
});

const history = fc.record({
  timeZone: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York'),
  plans: fc.tuple(plan, plan),
  initial: fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2)),
  steps: fc.noBias(fc.array(step, { minLength: 15, maxLength: 45 })),
});

/** Who has which plan and what each plan charges, from a second on. */
interface Pricing {
  fromS: number;
  planOf: Record<string, string>;
  prices: Record<string, Prices>;
}

/** Exact cost ×60 rounded half up: this test's own arithmetic, not the billing code's. */
const halfUp = (cost60: number) => Math.floor((cost60 + 30) / 60);

type History = typeof history extends fc.Arbitrary<infer T> ? T : never;

async function run(input: History) {
  const f = await billingFixture({ timeZone: input.timeZone, start: START });
  try {
    await f.device('dev_p');
    await f.device('dev_f', { labels: '{"tier":"flagship"}' });
    await f.device('dev_e', { kind: 'emulator' });
    const users: Principal[] = [];
    for (const name of ['ann', 'ben', 'cai']) users.push(await f.user(name));
    const plans = [];
    for (const [i, p] of input.plans.entries()) {
      plans.push(await f.plan({ name: `Plan ${i}`, currency: 'USD', ...p }));
    }
    const planIds = [...plans.map((p) => p.id), FREE_PLAN_ID];
    const zero: Prices = { physical: 0, flagship: 0, emulator: 0 };
    const pricing: Pricing[] = [{ fromS: -Infinity, planOf: {}, prices: { [plans[0]!.id]: input.plans[0].prices, [plans[1]!.id]: input.plans[1].prices, [FREE_PLAN_ID]: zero } }];
    /** Each user's plan (null: the default plan's). */
    const assigned = new Map<string, string | null>();
    let defaultPlan = FREE_PLAN_ID;
    const changedPlan = new Set<string>();
    const change = (update: (next: Pricing) => void) => {
      const previous = pricing.at(-1)!;
      const next = structuredClone({ ...previous, fromS: Math.floor(f.clock.now().getTime() / 1000) });
      update(next);
      for (const user of users) {
        next.planOf[user.userId] = assigned.get(user.userId) ?? defaultPlan;
        if (next.planOf[user.userId] !== previous.planOf[user.userId]) changedPlan.add(user.userId);
      }
      pricing.push(next);
    };
    const assign = async (user: Principal, index: number) => {
      const planId = index === 2 ? null : planIds[index]!;
      await f.plans.assign(user.userId, planId, systemCause);
      assigned.set(user.userId, planId);
    };
    for (const [i, user] of users.entries()) {
      await assign(user, input.initial[i]!);
      pricing[0]!.planOf[user.userId] = assigned.get(user.userId) ?? defaultPlan;
    }
    /** The plan each user had when each period was closed. */
    const closedWith = new Map<string, Record<string, string>>();
    const check = async () => {
      const before = new Set((await f.db.selectFrom('billing_periods').select('period').execute()).map((r) => r.period));
      await f.enforcer.check();
      for (const { period } of await f.db.selectFrom('billing_periods').select('period').execute()) {
        if (!before.has(period)) closedWith.set(period, { ...pricing.at(-1)!.planOf });
      }
    };

    const ownerOf = (row: { user_id: string }) => users.find((u) => u.userId === row.user_id)!;
    /** One of the granted leases, by a number picked at random. */
    const granted = async (pick: number) => {
      const rows = await f.db.selectFrom('leases').selectAll().where('status', '=', 'granted').orderBy('id').execute();
      return rows.length === 0 ? undefined : rows[pick % rows.length];
    };

    for (const { afterMs, action } of input.steps) {
      f.clock.advance(afterMs / 1000);
      switch (action.kind) {
        case 'lease':
          await f.leases.create(users[action.user]!, { count: action.count, ttlSeconds: action.ttlSeconds }, null).catch((error: unknown) => {
            if (!(error instanceof ApiError && error.code === 'no_devices_available')) throw error;
          });
          break;
        case 'release': {
          const row = await granted(action.pick);
          if (row !== undefined) await f.leases.release(ownerOf(row), row.id, null);
          break;
        }
        case 'renew': {
          const row = await granted(action.pick);
          if (row !== undefined && Date.parse(row.expires_at!) > f.clock.now().getTime()) {
            await f.leases.renew(ownerOf(row), row.id, { ttlSeconds: action.ttlSeconds }, null);
          }
          break;
        }
        case 'sweep':
          await f.leases.sweep();
          break;
        case 'assign':
          await assign(users[action.user]!, action.plan);
          change(() => undefined);
          break;
        case 'default':
          await f.plans.update(planIds[action.plan]!, { isDefault: true }, systemCause);
          defaultPlan = planIds[action.plan]!;
          change(() => undefined);
          break;
        case 'reprice': {
          const planId = planIds[action.plan]!;
          await f.plans.update(planId, { prices: action.prices }, systemCause);
          change((next) => (next.prices[planId] = action.prices));
          break;
        }
        case 'check':
          await check();
          break;
      }
      await f.leases.settled();
    }

    // Everything ends, then every period up to now closes.
    for (const row of await f.db.selectFrom('leases').selectAll().where('status', 'in', ['granted', 'queued']).execute()) {
      await f.leases.release(ownerOf(row), row.id, null);
    }
    const lastPeriod = periodOf(f.clock.now().getTime(), input.timeZone);
    f.at(new Date(periodBounds(nextPeriod(lastPeriod), input.timeZone).startMs + 60_000).toISOString());
    await check();

    const records = await f.records();
    await expectNoSecondLostOrTwice(f, records);
    for (const record of records) {
      expect(record.seconds).toBe(record.end_s - record.start_s);
      expect(record.included_seconds).toBeLessThanOrEqual(record.seconds);
      expect(record.period).toBe(periodOf(record.start_s * 1000, input.timeZone));
      expect(periodOf(record.end_s * 1000 - 1, input.timeZone)).toBe(record.period);
      // Priced at the plan the user had, at that plan's prices, when the record's first second was used.
      const state = pricing.findLast((p) => p.fromS <= record.start_s)!;
      expect(record.plan_id).toBe(state.planOf[record.user_id]);
      expect(record.price_per_minute).toBe(state.prices[record.plan_id]![record.billing_class as keyof Prices]);
    }

    const invoices = await f.db.selectFrom('invoices').selectAll().execute();
    const planById = new Map([...plans.map((p) => [p.id, p] as const)]);
    for (const [period, planOf] of closedWith) {
      for (const user of users) {
        const own = records.filter((r) => r.user_id === user.userId && r.period === period);
        const planId = planOf[user.userId]!;
        const fee = planById.get(planId)?.monthlyFee ?? 0;
        const invoice = invoices.find((i) => i.user_id === user.userId && i.period === period);
        // A fee alone is invoiced to users who existed before the period ended.
        const feeDue = fee > 0 && Date.parse(START) < periodBounds(period, input.timeZone).endMs;
        if (own.length === 0 && !feeDue) {
          expect(invoice, `${user.username} ${period}`).toBeUndefined();
          continue;
        }
        expect(invoice, `${user.username} ${period}`).toBeDefined();
        expect(invoice!.plan_id).toBe(planId);
        const lines = JSON.parse(invoice!.lines) as { kind: string; billingClass: string | null; seconds: number | null; pricePerMinute: number | null; amount: number }[];
        expect(lines.filter((l) => l.kind === 'usage').reduce((sum, l) => sum + l.seconds!, 0)).toBe(own.reduce((sum, r) => sum + r.seconds, 0));
        expect(invoice!.usage_seconds).toBe(own.reduce((sum, r) => sum + r.seconds, 0));
        const expected = expectedLines(own, fee);
        expect(lines.map((l) => [l.kind, l.billingClass, l.seconds, l.pricePerMinute, l.amount])).toEqual(expected);
        const total = expected.reduce((sum, line) => sum + (line[4] as number), 0);
        expect(invoice!.total).toBe(total);
        // Within the rounding of its lines, the total is the exact charge for the billable seconds plus the fee.
        const exact = own.reduce((sum, r) => sum + (r.seconds - r.included_seconds) * r.price_per_minute, 0) / 60 + fee;
        expect(Math.abs(invoice!.total - exact)).toBeLessThanOrEqual(expected.length / 2);
        const included = own.reduce((sum, r) => sum + r.included_seconds, 0);
        const seconds = own.reduce((sum, r) => sum + r.seconds, 0);
        if (!changedPlan.has(user.userId)) {
          const allowance = (planById.get(planId)?.includedMinutes ?? 0) * 60;
          expect(included, `${user.username} ${period} included`).toBe(Math.min(seconds, allowance));
        } else {
          expect(included).toBeLessThanOrEqual(Math.max(...input.plans.map((p) => p.includedMinutes)) * 60);
        }
      }
    }
    // Every period with usage was closed.
    for (const record of records) expect(closedWith.has(record.period), record.period).toBe(true);
  } finally {
    await f.close();
  }
}

/** Per leased device, its records tile the whole seconds from its grant (floored) to its end (ceiled). */
async function expectNoSecondLostOrTwice(f: BillingFixture, records: readonly UsageRecordRow[]): Promise<void> {
  const leased = await f.db
    .selectFrom('lease_devices')
    .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .select(['lease_devices.lease_id as leaseId', 'lease_devices.device_id as deviceId', 'lease_devices.granted_at as grantedAt', 'lease_devices.released_at as releasedAt', 'leases.expires_at as expiresAt'])
    .execute();
  let covered = 0;
  for (const device of leased) {
    expect(device.releasedAt).not.toBeNull();
    const endMs = Math.min(Date.parse(device.releasedAt!), Date.parse(device.expiresAt!));
    const fromS = Math.floor(Date.parse(device.grantedAt) / 1000);
    const toS = Math.ceil(endMs / 1000);
    const own = records.filter((r) => r.lease_id === device.leaseId && r.device_id === device.deviceId).sort((a, b) => a.start_s - b.start_s);
    covered += own.length;
    // A device released the instant it was granted used no second.
    if (endMs <= Date.parse(device.grantedAt)) {
      expect(own).toEqual([]);
      continue;
    }
    expect(own[0]?.start_s).toBe(fromS);
    for (let i = 1; i < own.length; i++) expect(own[i]!.start_s).toBe(own[i - 1]!.end_s);
    expect(own.at(-1)!.end_s).toBe(toS);
    expect(own.reduce((sum, r) => sum + r.seconds, 0)).toBe(toS - fromS);
  }
  expect(covered).toBe(records.length);
}

/** The invoice lines the records call for: one per class and price, rounded once; the fee; the included credit. */
function expectedLines(records: readonly UsageRecordRow[], fee: number): (string | number | null)[][] {
  const groups = new Map<string, { billingClass: string; price: number; seconds: number }>();
  let included = 0;
  let included60 = 0;
  for (const r of records) {
    const key = `${r.billing_class}/${r.price_per_minute}`;
    const group = groups.get(key) ?? { billingClass: r.billing_class, price: r.price_per_minute, seconds: 0 };
    group.seconds += r.seconds;
    groups.set(key, group);
    included += r.included_seconds;
    included60 += r.included_seconds * r.price_per_minute;
  }
  const lines: (string | number | null)[][] = [...groups.values()]
    .sort((a, b) => a.billingClass.localeCompare(b.billingClass) || a.price - b.price)
    .map((g) => ['usage', g.billingClass, g.seconds, g.price, halfUp(g.seconds * g.price)]);
  if (fee > 0) lines.push(['fee', null, null, null, fee]);
  if (included > 0) lines.push(['included', null, included, null, 0 - halfUp(included60)]);
  return lines;
}

describe('billing over random lease histories', () => {
  it('meters every second once, prices it at the plan in effect and invoices exactly the records', { timeout: 180_000 }, async () => {
    // Each run takes a database of its own, which costs a few hundred milliseconds more on PostgreSQL.
    await fc.assert(fc.asyncProperty(history, run), { numRuns: testEngine === 'postgres' ? 10 : 30 });
  });
});
