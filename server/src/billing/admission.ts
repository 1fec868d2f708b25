import { sql, type Kysely } from 'kysely';
import type { BudgetsTable, DB } from '../db/schema.js';
import { ApiError } from '../http/errors.js';
import { periodOf } from './calendar.js';
import { chargeFor, formatMoney } from './money.js';
import { billingClassOf, openUsage, plansOfUsers, priceOf, type PlanRow } from './metering.js';
import { priceOpen } from './spend.js';

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

export interface AdmissionState {
  plans: Map<string, PlanRow>;
  held: Map<string, number>;
  usedSeconds: Map<string, number>;
  budgets: BudgetState[];
  includedLeft: Map<string, number>;
}

/** One transaction's view of the quotas and budgets of the leases it decides on. */
export class Admission {
  readonly #plans: Map<string, PlanRow>;
  readonly #held: Map<string, number>;
  readonly #usedSeconds: Map<string, number>;
  readonly #budgets: BudgetState[];
  readonly #includedLeft: Map<string, number>;

  readonly #load: ((admission: AdmissionState) => Promise<void>) | undefined;
  #prepared: boolean;

  /**
   * `load` reads the rest of the state (what is held and used, the budgets) into the maps given; until `prepare()`
   * has run it, only the rules of the plans themselves are checked. `loadAdmission` reads it at once when a budget
   * paying for a request is spent, so that a spent budget refuses whether or not devices are free.
   */
  constructor(state: AdmissionState, load?: (state: AdmissionState) => Promise<void>) {
    this.#plans = state.plans;
    this.#held = state.held;
    this.#usedSeconds = state.usedSeconds;
    this.#budgets = state.budgets;
    this.#includedLeft = state.includedLeft;
    this.#load = load;
    this.#prepared = load === undefined;
  }

  /** Reads what the quotas and budgets have used, once: needed before checking a grant. */
  async prepare(): Promise<void> {
    if (this.#prepared) return;
    this.#prepared = true;
    await this.#load!({
      plans: this.#plans,
      held: this.#held,
      usedSeconds: this.#usedSeconds,
      budgets: this.#budgets,
      includedLeft: this.#includedLeft,
    });
  }

  /**
   * Why the lease cannot be granted the given devices now (undefined when it can). Without devices, only what
   * no device choice changes is checked: the TTL, the size of the request, the minutes and whether a budget is
   * already spent. Before `prepare()`, only the TTL and the size of the request.
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
    if (!this.#prepared) {
      if (plan.max_concurrent_devices === null || request.count <= plan.max_concurrent_devices) return undefined;
      return quota({ name: 'maxConcurrentDevices', limit: plan.max_concurrent_devices, current: 0, requested: request.count }, false);
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
 * needs to decide them without another query. The farm's open usage (at most one row per device) is read once and
 * serves every quota and budget; a user on a plan without quotas and without budgets costs two statements.
 */
export async function loadAdmission(
  trx: Kysely<DB>,
  requests: readonly { userId: string; project: string | null }[],
  now: Date,
  timeZone: string,
  options: { lazy?: boolean } = {},
): Promise<Admission> {
  const userIds = [...new Set(requests.map((request) => request.userId))];
  const projects = [...new Set(requests.flatMap((request) => (request.project === null ? [] : [request.project])))];
  const state: AdmissionState = {
    plans: await plansOfUsers(trx, userIds),
    held: new Map(),
    usedSeconds: new Map(),
    budgets: [],
    includedLeft: new Map(),
  };
  const period = periodOf(now.getTime(), timeZone);
  // The budgets paying for the requests, each with whether the leader found it spent this period.
  const budgetRows =
    userIds.length === 0
      ? []
      : await trx
          .selectFrom('budgets')
          .selectAll()
          .select((eb) =>
            eb
              .exists(
                eb
                  .selectFrom('budget_alerts')
                  .select('budget_alerts.budget_id')
                  .whereRef('budget_alerts.budget_id', '=', 'budgets.id')
                  .where('budget_alerts.period', '=', period)
                  .where('budget_alerts.threshold', '=', EXHAUSTED),
              )
              .as('spent'),
          )
          .where((eb) =>
            eb.or([
              eb.and([eb('scope', '=', 'user'), eb('target', 'in', userIds)]),
              ...(projects.length > 0 ? [eb.and([eb('scope', '=', 'project'), eb('target', 'in', projects)])] : []),
            ]),
          )
          .execute();
  const load = (into: AdmissionState) => loadUse(trx, into, budgetRows, userIds, period, now, timeZone);
  // A budget the leader found spent refuses at once, saying what it spent: read in full, which is rare.
  if (options.lazy !== true || budgetRows.some((row) => Boolean(row.spent))) {
    await load(state);
    return new Admission(state);
  }
  return new Admission(state, load);
}

/** The `budget_alerts` threshold that records a budget spent in a period. */
export const EXHAUSTED = 0;

function budgetState(row: BudgetsTable): Omit<BudgetState, 'spent60'> {
  return { id: row.id, scope: row.scope, target: row.target, currency: row.currency, amount: row.amount };
}

/** What the users' quotas and the budgets paying for them have used, into `state`. */
async function loadUse(
  trx: Kysely<DB>,
  state: AdmissionState,
  budgetRows: readonly BudgetsTable[],
  userIds: readonly string[],
  period: string,
  now: Date,
  timeZone: string,
): Promise<void> {
  const { plans, held, usedSeconds, includedLeft, budgets } = state;
  budgets.length = 0;
  const quotas = userIds.some((id) => plans.get(id)!.max_concurrent_devices !== null || plans.get(id)!.minutes_per_period !== null);
  if (!quotas && budgetRows.length === 0) return;

  const open = await openUsage(trx);
  for (const usage of open) held.set(usage.userId, (held.get(usage.userId) ?? 0) + 1);
  // Whose open usage counts: the requests' users, and those with leases open in a project whose budget pays.
  const paying = new Set(budgetRows.filter((row) => row.scope === 'project').map((row) => row.target));
  const priced = new Set(userIds);
  for (const usage of open) if (usage.project !== null && paying.has(usage.project)) priced.add(usage.userId);
  const others = [...priced].filter((id) => !plans.has(id));
  for (const [id, plan] of await plansOfUsers(trx, others)) plans.set(id, plan);
  // One read of the period's records serves the users' minutes and included seconds and every budget's spend.
  const totals = await recordedTotals(trx, period, [...priced], [...paying]);
  const recorded = new Map<string, { seconds: number; included: number }>();
  for (const total of totals) {
    if (!priced.has(total.userId)) continue;
    const use = recorded.get(total.userId) ?? { seconds: 0, included: 0 };
    use.seconds += total.seconds;
    use.included += total.included;
    recorded.set(total.userId, use);
  }
  const charges = priceOpen(
    open.filter((usage) => priced.has(usage.userId)),
    plans,
    new Map([...recorded].map(([id, use]) => [id, use.included])),
    period,
    now,
    timeZone,
  );
  for (const userId of userIds) {
    const plan = plans.get(userId)!;
    if (plan.minutes_per_period !== null) {
      const openSeconds = charges.filter((charge) => charge.usage.userId === userId).reduce((sum, charge) => sum + charge.seconds, 0);
      usedSeconds.set(userId, (recorded.get(userId)?.seconds ?? 0) + openSeconds);
    }
    const openIncluded = charges.filter((charge) => charge.usage.userId === userId).reduce((sum, charge) => sum + charge.includedSeconds, 0);
    includedLeft.set(userId, Math.max(0, plan.included_minutes * 60 - (recorded.get(userId)?.included ?? 0) - openIncluded));
  }
  for (const row of budgetRows) {
    const pays = (userId: string, project: string | null) =>
      row.scope === 'user' ? userId === row.target : project === row.target;
    const recordedCost = totals
      .filter((total) => total.currency === row.currency && pays(total.userId, total.project))
      .reduce((sum, total) => sum + total.cost60, 0n);
    const openCost = charges
      .filter(
        (charge) =>
          charge.plan.currency === row.currency && pays(charge.usage.userId, charge.usage.project),
      )
      .reduce((sum, charge) => sum + charge.cost60, 0n);
    budgets.push({ ...budgetState(row), spent60: recordedCost + openCost });
  }
}

/** A period's records of the given users or projects, summed by user, project and currency (charges ×60). */
async function recordedTotals(
  trx: Kysely<DB>,
  period: string,
  userIds: readonly string[],
  projects: readonly string[],
): Promise<{ userId: string; project: string | null; currency: string; seconds: number; included: number; cost60: bigint }[]> {
  if (userIds.length === 0 && projects.length === 0) return [];
  const rows = await trx
    .selectFrom('usage_records')
    .select([
      'user_id as userId',
      'project',
      'currency',
      sql<number>`cast(sum(seconds) as bigint)`.as('seconds'),
      sql<number>`cast(sum(included_seconds) as bigint)`.as('included'),
      sql<string>`cast(sum((seconds - included_seconds) * price_per_minute) as text)`.as('cost60'),
    ])
    .where('period', '=', period)
    .where((eb) =>
      eb.or([
        ...(userIds.length > 0 ? [eb('user_id', 'in', [...userIds])] : []),
        ...(projects.length > 0 ? [eb('project', 'in', [...projects])] : []),
      ]),
    )
    .groupBy(['user_id', 'project', 'currency'])
    .execute();
  return rows.map((row) => ({
    userId: row.userId,
    project: row.project,
    currency: row.currency,
    seconds: Number(row.seconds),
    included: Number(row.included),
    cost60: BigInt(String(row.cost60).split('.')[0]!),
  }));
}
