import { expect } from 'vitest';
import { BudgetService } from '../../src/billing/budgets.js';
import { BillingEnforcer } from '../../src/billing/enforcer.js';
import { InvoiceService } from '../../src/billing/invoices.js';
import { PlanService, type NewPlan } from '../../src/billing/plans.js';
import { UsageService } from '../../src/billing/usage.js';
import type { Invoice, Plan } from '../../src/billing/view.js';
import type { DB } from '../../src/db/schema.js';
import { systemCause } from '../../src/events/types.js';
import type { Principal } from '../../src/http/handler.js';
import { ManualClock } from '../helpers/clock.js';
import { leaseFixture, type LeaseFixture } from '../leases/fixture.js';

export type UsageRecordRow = DB['usage_records'];

export interface BillingFixture extends LeaseFixture {
  timeZone: string;
  plans: PlanService;
  budgets: BudgetService;
  usage: UsageService;
  invoices: InvoiceService;
  enforcer: BillingEnforcer;
  admin: Principal;
  /** Moves the clock to an instant (never backwards). */
  at(instant: string): void;
  /** Creates a plan and assigns it to the given users. */
  plan(input: NewPlan, ...users: Principal[]): Promise<Plan>;
  /** Usage records, oldest first. */
  records(filter?: { userId?: string; leaseId?: string; period?: string }): Promise<UsageRecordRow[]>;
  /** The user's invoice of a period. */
  invoice(user: Principal, period: string): Promise<Invoice>;
  /** Ends granted leases whose time is up, then waits for their devices' resets and schedules again. */
  sweep(): Promise<void>;
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined } as never;

/**
 * A lease service with billing, wired as the server wires it (plans, budgets, usage, invoices and the enforcer that
 * closes periods), every service on one manual clock.
 */
export async function billingFixture(options: { timeZone?: string; start?: string } = {}): Promise<BillingFixture> {
  const timeZone = options.timeZone ?? 'UTC';
  const clock = new ManualClock(options.start);
  let services: Pick<BillingFixture, 'plans' | 'budgets' | 'usage' | 'invoices' | 'enforcer'> | undefined;
  const base: LeaseFixture = await leaseFixture({
    clock,
    billing: (db) => {
      const now = clock.now;
      const plans = new PlanService({ db, clock: now, timeZone });
      const budgets = new BudgetService({ db, clock: now, timeZone });
      const usage = new UsageService({ db, clock: now, timeZone, budgets });
      const invoices = new InvoiceService({ db, clock: now, timeZone, log: silent });
      const enforcer = new BillingEnforcer({
        db,
        clock: now,
        log: silent,
        timeZone,
        leases: () => base.leases,
        periodic: (at) => invoices.closePeriods(at),
      });
      services = { plans, budgets, usage, invoices, enforcer };
      return enforcer.leaseBilling();
    },
  });
  const { plans, budgets, usage, invoices, enforcer } = services!;
  await plans.ensureDefault();
  await base.leases.start();
  const admin = await base.user('admin', 'admin');
  return {
    ...base,
    timeZone,
    plans,
    budgets,
    usage,
    invoices,
    enforcer,
    admin,
    at(instant) {
      const seconds = (Date.parse(instant) - clock.now().getTime()) / 1000;
      if (seconds < 0) throw new Error(`the clock is past ${instant} already`);
      clock.advance(seconds);
    },
    async plan(input, ...users) {
      const plan = await plans.create(input, systemCause);
      for (const user of users) await plans.assign(user.userId, plan.id, systemCause);
      return plan;
    },
    async records(filter = {}) {
      let select = base.db.selectFrom('usage_records').selectAll();
      if (filter.userId !== undefined) select = select.where('user_id', '=', filter.userId);
      if (filter.leaseId !== undefined) select = select.where('lease_id', '=', filter.leaseId);
      if (filter.period !== undefined) select = select.where('period', '=', filter.period);
      return select.orderBy('start_s').orderBy('device_id').execute();
    },
    async invoice(user, period) {
      const page = await invoices.list(admin, { userId: user.userId, period, limit: 10 });
      expect(page.data, `${user.username}'s invoices of ${period}`).toHaveLength(1);
      return page.data[0]!;
    },
    async sweep() {
      await base.leases.sweep();
      await base.leases.settled();
      await base.leases.schedule();
    },
  };
}

/** Σ seconds of records. */
export function secondsOf(records: readonly { seconds: number }[]): number {
  return records.reduce((sum, record) => sum + Number(record.seconds), 0);
}

/** Σ seconds of an invoice's usage lines, optionally of one billing class. */
export function usageLineSeconds(invoice: Pick<Invoice, 'lines'>, billingClass?: string): number {
  return invoice.lines
    .filter((line) => line.kind === 'usage' && (billingClass === undefined || line.billingClass === billingClass))
    .reduce((sum, line) => sum + (line.seconds ?? 0), 0);
}
