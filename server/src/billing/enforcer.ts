import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Cluster } from '../cluster/cluster.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { systemCause, type Cause } from '../events/types.js';
import type { ApiError } from '../http/errors.js';
import type { LeaseAdmission, LeaseBilling, LeaseService } from '../leases/service.js';
import { EXHAUSTED, loadAdmission, type QuotaViolation } from './admission.js';
import type { BudgetRow } from './budgets.js';
import { periodOf } from './calendar.js';
import { billingClassOf, openUsage, plansOfUsers, recordUsage } from './metering.js';
import { chargeFor } from './money.js';
import { spentCost60, usedSeconds } from './spend.js';
import { toBudgetSummary } from './view.js';

/** How often the leader checks budgets and minute quotas: a lease overspends by at most this much device time. */
export const DEFAULT_ENFORCE_INTERVAL_MS = 5000;

type Log = Pick<FastifyBaseLogger, 'warn' | 'error'>;

/**
 * Where billing meets the lease: quotas and budgets at every grant, metering at every end, and a leader-only
 * check that ends the leases of spent budgets and used-up minute quotas.
 */
export class BillingEnforcer {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #log: Log;
  readonly #timeZone: string;
  readonly #intervalMs: number;
  readonly #cluster: Cluster | undefined;
  readonly #leases: () => LeaseService;
  readonly #periodic: (now: Date) => Promise<void>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    log: Log;
    timeZone: string;
    intervalMs?: number | undefined;
    cluster?: Cluster | undefined;
    leases: () => LeaseService;
    /** More leader-only work on every check (closing billing periods). */
    periodic?: (now: Date) => Promise<void>;
  }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#timeZone = deps.timeZone;
    this.#intervalMs = deps.intervalMs ?? DEFAULT_ENFORCE_INTERVAL_MS;
    this.#cluster = deps.cluster;
    this.#leases = deps.leases;
    this.#periodic = deps.periodic ?? (() => Promise.resolve());
  }

  /** The lease service's view of billing. */
  leaseBilling(): LeaseBilling {
    const timeZone = this.#timeZone;
    return {
      admission: async (trx, leases, now): Promise<LeaseAdmission> => loadAdmission(trx, leases, now, timeZone, { lazy: true }),
      classOf: (device) => billingClassOf(device),
      meter: async (trx, lease, devices, at) => {
        const open = devices.map((device) => ({
          leaseId: lease.id,
          deviceId: device.deviceId,
          userId: lease.user_id,
          project: lease.project,
          billingClass: device.billingClass,
          from: device.meteredFrom,
          expiresAt: lease.expires_at,
        }));
        await recordUsage(trx, open, at, timeZone);
      },
      refused: (userId, error, cause) => this.#recordRefusal(userId, error, cause),
    };
  }

  start(): void {
    this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  #tick(): Promise<void> {
    if (this.#running !== null || this.#cluster?.isLeader() === false) return this.#running ?? Promise.resolve();
    this.#running = this.check()
      .catch((error: unknown) => this.#log.error({ err: error }, 'billing check failed'))
      .finally(() => {
        this.#running = null;
      });
    return this.#running;
  }

  /**
   * Announces the budget thresholds crossed, ends the leases of spent budgets (`budget_exhausted`) and of users
   * whose minutes quota is used up (`quota_exhausted`), then runs the periodic work. Public so that tests with a
   * manual clock can drive it.
   */
  async check(): Promise<void> {
    const now = this.#clock();
    const period = periodOf(now.getTime(), this.#timeZone);
    for (const budget of await this.#db.selectFrom('budgets').selectAll().execute()) {
      await this.#checkBudget(budget, period, now);
    }
    await this.#checkMinutes(period, now);
    await this.#periodic(now);
  }

  async #checkBudget(budget: BudgetRow, period: string, now: Date): Promise<void> {
    const spent60 = await spentCost60(this.#db, budget, period, now, this.#timeZone);
    const amount60 = BigInt(budget.amount) * 60n;
    const spent = Number(chargeFor(spent60));
    const thresholds = JSON.parse(budget.thresholds) as number[];
    const reached = thresholds.filter((threshold) => spent60 * 100n >= amount60 * BigInt(threshold));
    const exhausted = spent60 >= amount60;
    if (reached.length > 0) {
      await this.#db.transaction().execute(async (trx) => {
        for (const threshold of reached) {
          if (!(await this.#alert(trx, budget.id, period, threshold, now))) continue;
          await appendEvent(trx, {
            type: 'usage.threshold_reached',
            actor: systemCause.actor,
            subject: { type: 'budget', id: budget.id },
            data: { budget: toBudgetSummary(budget), period, threshold, spent },
            requestId: null,
            occurredAt: now,
          });
        }
      });
    }
    if (!exhausted) return;
    const leaseIds = await this.#leasesPaidBy(budget);
    // The exhaustion is announced once per period, with the leases it ended then; later ones end with the reason.
    await this.#leases().endForBilling(leaseIds, 'budget_exhausted', async (trx, ended) => {
      if (!(await this.#alert(trx, budget.id, period, EXHAUSTED, now))) return;
      await appendEvent(trx, {
        type: 'budget.exhausted',
        actor: systemCause.actor,
        subject: { type: 'budget', id: budget.id },
        data: { budget: toBudgetSummary(budget), period, spent, leaseIds: ended },
        requestId: null,
        occurredAt: now,
      });
    });
  }

  /** Records that a budget reached a threshold this period (0: exhausted); false when it already had. */
  async #alert(trx: Kysely<DB>, budgetId: string, period: string, threshold: number, now: Date): Promise<boolean> {
    const result = await trx
      .insertInto('budget_alerts')
      .values({ budget_id: budgetId, period, threshold, reached_at: now.toISOString() })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /** The active leases a budget pays for: its user's (in its currency), or its project's. */
  async #leasesPaidBy(budget: BudgetRow): Promise<string[]> {
    let query = this.#db.selectFrom('leases').select(['id', 'user_id']).where('status', 'in', ['queued', 'granted']);
    query = budget.scope === 'user' ? query.where('user_id', '=', budget.target) : query.where('project', '=', budget.target);
    const rows = await query.execute();
    const plans = await plansOfUsers(this.#db, [...new Set(rows.map((row) => row.user_id))]);
    return rows.filter((row) => plans.get(row.user_id)?.currency === budget.currency).map((row) => row.id);
  }

  async #checkMinutes(period: string, now: Date): Promise<void> {
    const open = await openUsage(this.#db);
    const users = [...new Set(open.map((usage) => usage.userId))];
    const plans = await plansOfUsers(this.#db, users);
    for (const userId of users) {
      const limit = plans.get(userId)!.minutes_per_period;
      if (limit === null) continue;
      const used = await usedSeconds(this.#db, userId, period, now, this.#timeZone);
      if (used < limit * 60) continue;
      const leaseIds = [...new Set(open.filter((usage) => usage.userId === userId).map((usage) => usage.leaseId))];
      const quota: QuotaViolation = { name: 'minutesPerPeriod', limit, current: Math.floor(used / 60), requested: 0 };
      await this.#leases().endForBilling(leaseIds, 'quota_exhausted', async (trx, ended) => {
        if (ended.length === 0) return;
        await appendEvent(trx, {
          type: 'quota.exceeded',
          actor: systemCause.actor,
          subject: { type: 'user', id: userId },
          data: { userId, quota, leaseId: ended[0] ?? null },
          requestId: null,
          occurredAt: now,
        });
      });
    }
  }

  async #recordRefusal(userId: string, error: ApiError, cause: Cause): Promise<void> {
    const quota = error.extensions?.quota as QuotaViolation | undefined;
    if (quota === undefined) return;
    try {
      await appendEvent(this.#db, {
        type: 'quota.exceeded',
        actor: cause.actor,
        subject: { type: 'user', id: userId },
        data: { userId, quota, leaseId: null },
        requestId: cause.requestId,
        occurredAt: this.#clock(),
      });
    } catch (failure) {
      this.#log.warn({ err: failure, userId }, 'could not record a refused lease request');
    }
  }
}
