import { sql, type Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { ApiError } from '../http/errors.js';
import { periodOf } from './calendar.js';
import { chargeFor, formatMoney } from './money.js';
import { billingClassOf, plansOfUsers, priceOf, type PlanRow } from './metering.js';
import { OpenChargeBook, spentCost60, type SpendTarget } from './spend.js';

/** The time a lease must be able to pay for, per device, to be granted: the most a budget may be overspent by. */
export const MINIMUM_BILLABLE_SECONDS = 60;

export type QuotaName = 'maxConcurrentDevices' | 'maxLeaseTtlSeconds' | 'minutesPerPeriod';

export interface QuotaViolation {
  name: QuotaName;
  limit: number;
  current: number;
  requested: number;
}

/** What a lease asks of its user's plan and budgets. */
export interface AdmissionRequest {
  userId: string;
  project: string | null;
  count: number;
  ttlSeconds: number;
}

/** The devices of a grant, as billing prices them. */
export interface PricedDevice {
  kind: string;
  labels: Readonly<Record<string, string>>;
}

export interface BudgetState {
  id: string;
  scope: 'user' | 'project';
  target: string;
  currency: string;
  amount: number;
  /** Spent this period up to now, ×60. */
  spent60: bigint;
}

/** Why a lease cannot be granted; `waitable` when it may be later without anyone changing a plan or a budget. */
export interface Refusal {
  error: ApiError;
  waitable: boolean;
  quota?: QuotaViolation;
}

/** One transaction's view of the quotas and budgets of the leases it decides on. */
export class Admission {
  readonly #plans: Map<string, PlanRow>;
  readonly #held: Map<string, number>;
  readonly #usedSeconds: Map<string, number>;
  readonly #budgets: BudgetState[];
  readonly #includedLeft: Map<string, number>;

  constructor(state: {
    plans: Map<string, PlanRow>;
    held: Map<string, number>;
    usedSeconds: Map<string, number>;
    budgets: BudgetState[];
    includedLeft: Map<string, number>;
  }) {
    this.#plans = state.plans;
    this.#held = state.held;
    this.#usedSeconds = state.usedSeconds;
    this.#budgets = state.budgets;
    this.#includedLeft = state.includedLeft;
  }

  /**
   * Why the lease cannot be granted the given devices now (undefined when it can). Without devices, only what
   * no device choice changes is checked: the TTL, the size of the request, the minutes and whether a budget is
   * already spent.
   */
  check(request: AdmissionRequest, devices?: readonly PricedDevice[]): Refusal | undefined {
    const plan = this.#plans.get(request.userId);
    if (plan === undefined) return undefined;
    const quota = (violation: QuotaViolation, waitable: boolean): Refusal => ({
      error: quotaExceeded(violation),
      waitable,
      quota: violation,
    });
    if (plan.max_lease_ttl_seconds !== null && request.ttlSeconds > plan.max_lease_ttl_seconds) {
      const limit = plan.max_lease_ttl_seconds;
      return quota({ name: 'maxLeaseTtlSeconds', limit, current: request.ttlSeconds, requested: request.ttlSeconds }, false);
    }
    const held = this.#held.get(request.userId) ?? 0;
    if (plan.max_concurrent_devices !== null && held + request.count > plan.max_concurrent_devices) {
      const violation = { name: 'maxConcurrentDevices' as const, limit: plan.max_concurrent_devices, current: held, requested: request.count };
      return quota(violation, request.count <= plan.max_concurrent_devices);
    }
    if (plan.minutes_per_period !== null) {
      const used = this.#usedSeconds.get(request.userId) ?? 0;
      if (used >= plan.minutes_per_period * 60) {
        const violation = { name: 'minutesPerPeriod' as const, limit: plan.minutes_per_period, current: Math.floor(used / 60), requested: request.count };
        return quota(violation, false);
      }
    }
    for (const budget of this.#paying(request, plan)) {
      const remaining60 = BigInt(budget.amount) * 60n - budget.spent60;
      const needed60 = devices === undefined ? 0n : this.#minimumCost60(request, plan, devices);
      if (remaining60 <= 0n || needed60 > remaining60) {
        return { error: budgetExhausted(budget, devices === undefined ? undefined : needed60), waitable: false };
      }
    }
    return undefined;
  }

  /** Every quota the request exceeds now (an estimate shows them all; `check` stops at the first). */
  violations(request: AdmissionRequest): QuotaViolation[] {
    const plan = this.#plans.get(request.userId);
    if (plan === undefined) return [];
    const found: QuotaViolation[] = [];
    if (plan.max_lease_ttl_seconds !== null && request.ttlSeconds > plan.max_lease_ttl_seconds) {
      found.push({ name: 'maxLeaseTtlSeconds', limit: plan.max_lease_ttl_seconds, current: request.ttlSeconds, requested: request.ttlSeconds });
    }
    const held = this.#held.get(request.userId) ?? 0;
    if (plan.max_concurrent_devices !== null && held + request.count > plan.max_concurrent_devices) {
      found.push({ name: 'maxConcurrentDevices', limit: plan.max_concurrent_devices, current: held, requested: request.count });
    }
    const used = this.#usedSeconds.get(request.userId) ?? 0;
    if (plan.minutes_per_period !== null && used >= plan.minutes_per_period * 60) {
      found.push({ name: 'minutesPerPeriod', limit: plan.minutes_per_period, current: Math.floor(used / 60), requested: request.count });
    }
    return found;
  }

  /** The budgets that pay for the request, each with what is left of it and whether it affords the devices. */
  budgetsFor(
    request: AdmissionRequest,
    devices: readonly PricedDevice[],
  ): { id: string; scope: 'user' | 'project'; currency: string; remaining: number; allowed: boolean }[] {
    const plan = this.#plans.get(request.userId);
    if (plan === undefined) return [];
    const needed60 = this.#minimumCost60(request, plan, devices);
    return this.#paying(request, plan).map((budget) => {
      const remaining60 = BigInt(budget.amount) * 60n - budget.spent60;
      return {
        id: budget.id,
        scope: budget.scope,
        currency: budget.currency,
        remaining: budget.amount - Number(chargeFor(budget.spent60)),
        allowed: remaining60 > 0n && needed60 <= remaining60,
      };
    });
  }

  /** Counts a grant made in this transaction against the quotas and budgets that follow. */
  granted(request: AdmissionRequest, devices: readonly PricedDevice[]): void {
    this.#held.set(request.userId, (this.#held.get(request.userId) ?? 0) + devices.length);
    const plan = this.#plans.get(request.userId);
    if (plan === undefined) return;
    const cost60 = this.#minimumCost60(request, plan, devices);
    for (const budget of this.#paying(request, plan)) budget.spent60 += cost60;
  }

  #paying(request: AdmissionRequest, plan: PlanRow): BudgetState[] {
    return this.#budgets.filter(
      (budget) =>
        budget.currency === plan.currency &&
        ((budget.scope === 'user' && budget.target === request.userId) ||
          (budget.scope === 'project' && budget.target === request.project)),
    );
  }

  /** The charge (×60) of `MINIMUM_BILLABLE_SECONDS` on each device, after the included seconds left. */
  #minimumCost60(request: AdmissionRequest, plan: PlanRow, devices: readonly PricedDevice[]): bigint {
    let included = this.#includedLeft.get(request.userId) ?? 0;
    let cost = 0n;
    for (const device of devices) {
      const covered = Math.min(included, MINIMUM_BILLABLE_SECONDS);
      included -= covered;
      cost += BigInt(MINIMUM_BILLABLE_SECONDS - covered) * BigInt(priceOf(plan, billingClassOf(device)));
    }
    return cost;
  }
}

export function quotaExceeded(violation: QuotaViolation): ApiError {
  const what = {
    maxConcurrentDevices: `at most ${violation.limit} device${violation.limit === 1 ? '' : 's'} at once; you hold ${violation.current} and asked for ${violation.requested} more`,
    maxLeaseTtlSeconds: `leases of at most ${violation.limit} s; ${violation.requested} s was asked for`,
    minutesPerPeriod: `${violation.limit} device-minutes per period; ${violation.current} are used`,
  }[violation.name];
  return new ApiError('quota_exceeded', `Your plan's ${violation.name} quota allows ${what}.`, {
    extensions: { quota: violation },
  });
}

function budgetExhausted(budget: BudgetState, needed60: bigint | undefined): ApiError {
  const spent = Number(chargeFor(budget.spent60));
  const owner = budget.scope === 'user' ? 'Your budget' : `The budget of project ${budget.target}`;
  const why =
    needed60 === undefined || BigInt(budget.amount) * 60n <= budget.spent60
      ? 'is spent'
      : `cannot pay for the first ${MINIMUM_BILLABLE_SECONDS} s of this lease`;
  return new ApiError(
    'budget_exhausted',
    `${owner} (${budget.id}) ${why}: ${formatMoney(spent, budget.currency)} of ${formatMoney(budget.amount, budget.currency)} this period.`,
    { extensions: { budget: { id: budget.id, scope: budget.scope, currency: budget.currency, amount: budget.amount, spent } } },
  );
}

/**
 * Reads, in the caller's transaction, the quotas and budgets of the leases' users and projects: what `Admission`
 * needs to decide them without another query.
 */
export async function loadAdmission(
  trx: Kysely<DB>,
  requests: readonly { userId: string; project: string | null }[],
  now: Date,
  timeZone: string,
): Promise<Admission> {
  const userIds = [...new Set(requests.map((request) => request.userId))];
  const projects = [...new Set(requests.flatMap((request) => (request.project === null ? [] : [request.project])))];
  const plans = await plansOfUsers(trx, userIds);
  const period = periodOf(now.getTime(), timeZone);
  const held = new Map<string, number>();
  const usedSecondsByUser = new Map<string, number>();
  const includedLeft = new Map<string, number>();
  const book = new OpenChargeBook(trx, period, now, timeZone, plans);
  const limited = userIds.filter((id) => plans.get(id)!.max_concurrent_devices !== null);
  if (limited.length > 0) {
    const rows = await trx
      .selectFrom('lease_devices')
      .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
      .select(['leases.user_id as userId', sql<number>`count(*)`.as('held')])
      .where('lease_devices.released_at', 'is', null)
      .where('leases.user_id', 'in', limited)
      .groupBy('leases.user_id')
      .execute();
    for (const row of rows) held.set(row.userId, Number(row.held));
  }
  const budgetRows =
    userIds.length === 0
      ? []
      : await trx
          .selectFrom('budgets')
          .selectAll()
          .where((eb) =>
            eb.or([
              eb.and([eb('scope', '=', 'user'), eb('target', 'in', userIds)]),
              ...(projects.length > 0 ? [eb.and([eb('scope', '=', 'project'), eb('target', 'in', projects)])] : []),
            ]),
          )
          .execute();
  // The minutes quota needs the seconds recorded, the budgets the included seconds: one query reads both.
  const metered = userIds.filter((id) => plans.get(id)!.minutes_per_period !== null);
  const included = budgetRows.length === 0 ? [] : userIds.filter((id) => plans.get(id)!.included_minutes !== 0);
  const recorded = new Map<string, { seconds: number; included: number }>();
  const readRecords = [...new Set([...metered, ...included])];
  if (readRecords.length > 0) {
    const rows = await trx
      .selectFrom('usage_records')
      .select([
        'user_id as userId',
        sql<number>`cast(sum(seconds) as bigint)`.as('seconds'),
        sql<number>`cast(sum(included_seconds) as bigint)`.as('included'),
      ])
      .where('user_id', 'in', readRecords)
      .where('period', '=', period)
      .groupBy('user_id')
      .execute();
    for (const row of rows) recorded.set(row.userId, { seconds: Number(row.seconds), included: Number(row.included) });
  }
  for (const userId of metered) {
    const open = await book.of([userId]);
    const seconds = open.reduce((sum, charge) => sum + charge.seconds, recorded.get(userId)?.seconds ?? 0);
    usedSecondsByUser.set(userId, seconds);
  }
  const budgets: BudgetState[] = [];
  for (const row of budgetRows) {
    const target: SpendTarget = { scope: row.scope, target: row.target, currency: row.currency };
    budgets.push({
      id: row.id,
      scope: row.scope,
      target: row.target,
      currency: row.currency,
      amount: row.amount,
      spent60: await spentCost60(trx, target, period, now, timeZone, book),
    });
  }
  for (const userId of included) {
    const plan = plans.get(userId)!;
    includedLeft.set(userId, Math.max(0, plan.included_minutes * 60 - (recorded.get(userId)?.included ?? 0)));
  }
  return new Admission({ plans, held, usedSeconds: usedSecondsByUser, budgets, includedLeft });
}
