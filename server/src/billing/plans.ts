import type { Kysely } from 'kysely';
import { lockForTransaction, isUniqueViolation } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import type { Cause } from '../events/types.js';
import { ApiError, type FieldError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { SCHEDULING_LOCK } from '../leases/service.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { cutUsage, openUsage, type PlanRow } from './metering.js';
import { isCurrency } from './money.js';
import { toPlan, toPlanSummary, type Plan, type UserPlan } from './view.js';

/** The plan a fresh install gives everyone: free and unlimited, so nothing changes for those who do not bill. */
export const FREE_PLAN_ID = 'pln_00000000000000000000000000';

const planPosition = idPosition(/^pln_[0-9A-Z]{26}$/);

export interface PlanQuotasInput {
  maxConcurrentDevices?: number | null | undefined;
  maxLeaseTtlSeconds?: number | null | undefined;
  minutesPerPeriod?: number | null | undefined;
}

export interface NewPlan {
  name: string;
  description?: string | null | undefined;
  currency: string;
  monthlyFee?: number | undefined;
  prices?: Record<string, number> | undefined;
  defaultPrice?: number | undefined;
  includedMinutes?: number | undefined;
  quotas?: PlanQuotasInput | undefined;
  isDefault?: boolean | undefined;
}

export type PlanPatch = Partial<Omit<NewPlan, 'currency'>>;

/** Plans and who has which: admins define them, every user has one (the default plan unless assigned). */
export class PlanService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #timeZone: string;

  constructor(deps: { db: Kysely<DB>; clock: () => Date; timeZone: string }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#timeZone = deps.timeZone;
  }

  /** Creates the free default plan unless a default plan exists (a fresh install, or one from before billing). */
  async ensureDefault(): Promise<void> {
    const at = this.#clock().toISOString();
    await this.#db.transaction().execute(async (trx) => {
      if ((await trx.selectFrom('plans').select('id').where('is_default', '=', 1).executeTakeFirst()) !== undefined) return;
      // Nodes starting together may both get here: the fixed id lets one insert win.
      await trx
        .insertInto('plans')
        .values({
          id: FREE_PLAN_ID,
          name: 'Free',
          description: 'No charge and no limits.',
          currency: 'USD',
          monthly_fee: 0,
          prices: '{}',
          default_price: 0,
          included_minutes: 0,
          max_concurrent_devices: null,
          max_lease_ttl_seconds: null,
          minutes_per_period: null,
          is_default: 1,
          created_at: at,
          updated_at: at,
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
    });
  }

  async list(query: { cursor?: string | undefined; limit: number }): Promise<Page<Plan>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, planPosition);
    let select = this.#db.selectFrom('plans').selectAll();
    if (after !== undefined) select = select.where('id', '>', after.id);
    const rows = await select.orderBy('id').limit(query.limit + 1).execute();
    const users = await this.#userCounts(rows.map((row) => row.id));
    return toPage(rows, query.limit, (row) => toPlan(row, users.get(row.id) ?? 0), (row) => ({ id: row.id }));
  }

  async get(id: string): Promise<Plan> {
    const row = await this.#find(this.#db, id);
    return toPlan(row, (await this.#userCounts([id])).get(id) ?? 0);
  }

  async create(input: NewPlan, cause: Cause): Promise<Plan> {
    const now = this.#clock();
    const at = now.toISOString();
    const errors = validatePlan(input);
    if (!isCurrency(input.currency)) errors.push({ field: '/currency', message: 'must be an ISO 4217 currency code' });
    if (errors.length > 0) throw new ApiError('validation_failed', 'The plan is invalid.', { errors });
    const row: PlanRow = {
      id: newId('pln', now.getTime()),
      name: input.name,
      description: input.description ?? null,
      currency: input.currency,
      monthly_fee: input.monthlyFee ?? 0,
      prices: JSON.stringify(input.prices ?? {}),
      default_price: input.defaultPrice ?? 0,
      included_minutes: input.includedMinutes ?? 0,
      max_concurrent_devices: input.quotas?.maxConcurrentDevices ?? null,
      max_lease_ttl_seconds: input.quotas?.maxLeaseTtlSeconds ?? null,
      minutes_per_period: input.quotas?.minutesPerPeriod ?? null,
      is_default: 0,
      created_at: at,
      updated_at: at,
    };
    await this.#write(async (trx) => {
      if (input.isDefault === true) await trx.updateTable('plans').set({ is_default: 0, updated_at: at }).where('is_default', '=', 1).execute();
      await trx.insertInto('plans').values({ ...row, is_default: input.isDefault === true ? 1 : 0 }).execute();
      await recordPlan(trx, 'plan.created', { ...row, is_default: input.isDefault === true ? 1 : 0 }, cause, now);
    }, input.isDefault === true);
    return this.get(row.id);
  }

  /**
   * Changes a plan. A change to what it charges (prices) first records its users' open device time at the old
   * prices, so each second is priced at the plan in effect while it was used.
   */
  async update(id: string, patch: PlanPatch, cause: Cause): Promise<Plan> {
    const errors = validatePlan(patch);
    if (errors.length > 0) throw new ApiError('validation_failed', 'The plan change is invalid.', { errors });
    await this.#write(async (trx) => {
      const now = this.#clock();
      const at = now.toISOString();
      const row = await this.#find(trx, id);
      if (patch.isDefault === false && row.is_default === 1) {
        throw new ApiError('validation_failed', 'One plan is always the default: make another plan the default instead.', {
          errors: [{ field: '/isDefault', message: 'set isDefault on another plan to change the default' }],
        });
      }
      const pricing = patch.prices !== undefined || patch.defaultPrice !== undefined || patch.isDefault === true;
      if (pricing) await cutUsage(trx, await openUsage(trx, { planId: id }), now, this.#timeZone);
      if (patch.isDefault === true && row.is_default === 0) {
        // Users without a plan move to this one: their open time is priced at the old default until now.
        const previous = await trx.selectFrom('plans').select('id').where('is_default', '=', 1).executeTakeFirst();
        if (previous !== undefined) await cutUsage(trx, await openUsage(trx, { planId: previous.id }), now, this.#timeZone);
        await trx.updateTable('plans').set({ is_default: 0, updated_at: at }).where('is_default', '=', 1).execute();
      }
      const quotas = patch.quotas;
      const next: PlanRow = {
        ...row,
        name: patch.name ?? row.name,
        description: patch.description === undefined ? row.description : patch.description,
        monthly_fee: patch.monthlyFee ?? row.monthly_fee,
        prices: patch.prices === undefined ? row.prices : JSON.stringify(patch.prices),
        default_price: patch.defaultPrice ?? row.default_price,
        included_minutes: patch.includedMinutes ?? row.included_minutes,
        max_concurrent_devices:
          quotas?.maxConcurrentDevices === undefined ? row.max_concurrent_devices : quotas.maxConcurrentDevices,
        max_lease_ttl_seconds: quotas?.maxLeaseTtlSeconds === undefined ? row.max_lease_ttl_seconds : quotas.maxLeaseTtlSeconds,
        minutes_per_period: quotas?.minutesPerPeriod === undefined ? row.minutes_per_period : quotas.minutesPerPeriod,
        is_default: patch.isDefault === true ? 1 : row.is_default,
        updated_at: at,
      };
      const { id: _id, created_at: _created, ...changes } = next;
      await trx.updateTable('plans').set(changes).where('id', '=', id).execute();
      await recordPlan(trx, 'plan.updated', next, cause, now);
    }, true);
    return this.get(id);
  }

  async delete(id: string, cause: Cause): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const now = this.#clock();
      const row = await this.#find(trx, id);
      if (row.is_default === 1) throw new ApiError('plan_in_use', `Plan ${id} is the default plan; make another plan the default first.`);
      const users = (await this.#userCounts([id], trx)).get(id) ?? 0;
      if (users > 0) {
        throw new ApiError('plan_in_use', `Plan ${id} is assigned to ${users} user${users === 1 ? '' : 's'}; assign them another plan first.`);
      }
      await trx.deleteFrom('plans').where('id', '=', id).execute();
      await recordPlan(trx, 'plan.deleted', row, cause, now);
    });
  }

  /** A plan, to an admin or to a user who has it. */
  async visible(principal: Principal, id: string): Promise<Plan> {
    if (principal.role !== 'admin') {
      const own = await this.ofUser(principal.userId);
      if (own.plan.id !== id) throw new ApiError('plan_not_found', `No plan ${id}.`);
    }
    return this.get(id);
  }

  /** A user's plan, to an admin or to that user. */
  async ofVisibleUser(principal: Principal, userId: string): Promise<UserPlan> {
    // Whether another user exists is not for a member to learn.
    if (principal.role !== 'admin' && userId !== principal.userId) throw new ApiError('not_found', `No user ${userId}.`);
    return this.ofUser(userId);
  }

  /** A user's plan; `assigned` false when the default plan applies. */
  async ofUser(userId: string): Promise<UserPlan> {
    const user = await this.#db.selectFrom('users').select(['id', 'username', 'plan_id']).where('id', '=', userId).executeTakeFirst();
    if (user === undefined) throw new ApiError('not_found', `No user ${userId}.`);
    const plan = user.plan_id === null ? await this.#defaultRow(this.#db) : await this.#find(this.#db, user.plan_id);
    return {
      userId: user.id,
      username: user.username,
      plan: toPlan(plan, (await this.#userCounts([plan.id])).get(plan.id) ?? 0),
      assigned: user.plan_id !== null,
    };
  }

  /**
   * Gives a user a plan (null: the default plan). Their open device time is recorded up to now at the old plan's
   * prices; a plan in another currency is refused while they have usage this period (one invoice, one currency).
   */
  async assign(userId: string, planId: string | null, cause: Cause): Promise<UserPlan> {
    await this.#write(async (trx) => {
      const now = this.#clock();
      const user = await trx.selectFrom('users').select(['id', 'plan_id']).where('id', '=', userId).executeTakeFirst();
      if (user === undefined) throw new ApiError('not_found', `No user ${userId}.`);
      const previous = user.plan_id === null ? await this.#defaultRow(trx) : await this.#find(trx, user.plan_id);
      const next = planId === null ? await this.#defaultRow(trx) : await this.#find(trx, planId);
      if (next.currency !== previous.currency) {
        // Usage of a period not closed yet (the current one, or the last one until the leader closes it) is still to
        // be invoiced, with the plan the user has then.
        const used = await trx
          .selectFrom('usage_records')
          .select('id')
          .where('user_id', '=', userId)
          .where(({ not, exists, selectFrom }) =>
            not(exists(selectFrom('billing_periods').select('billing_periods.period').whereRef('billing_periods.period', '=', 'usage_records.period'))),
          )
          .limit(1)
          .executeTakeFirst();
        const open = await openUsage(trx, { userIds: [userId] });
        if (used !== undefined || open.length > 0) {
          throw new ApiError(
            'currency_mismatch',
            `Plan ${next.id} charges in ${next.currency}, but the usage of user ${userId} not invoiced yet is charged in ${previous.currency}; assign it from the next period.`,
          );
        }
      }
      await cutUsage(trx, await openUsage(trx, { userIds: [userId] }), now, this.#timeZone);
      await trx.updateTable('users').set({ plan_id: planId }).where('id', '=', userId).execute();
      await appendEvent(trx, {
        type: 'user.plan_assigned',
        actor: cause.actor,
        subject: { type: 'user', id: userId },
        data: { userId, planId: next.id, previousPlanId: previous.id },
        requestId: cause.requestId,
        occurredAt: now,
      });
    }, true);
    return this.ofUser(userId);
  }

  /** A transaction; one that cuts usage holds the scheduling lock, so that no lease ends in between. */
  async #write(work: (trx: Kysely<DB>) => Promise<void>, cutsUsage: boolean): Promise<void> {
    try {
      await this.#db.transaction().execute(async (trx) => {
        if (cutsUsage) await lockForTransaction(trx, SCHEDULING_LOCK);
        await work(trx);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new ApiError('plan_name_taken', 'Another plan has this name.');
      throw error;
    }
  }

  async #find(db: Kysely<DB>, id: string): Promise<PlanRow> {
    const row = await db.selectFrom('plans').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) throw new ApiError('plan_not_found', `No plan ${id}.`);
    return row;
  }

  async #defaultRow(db: Kysely<DB>): Promise<PlanRow> {
    const row = await db.selectFrom('plans').selectAll().where('is_default', '=', 1).executeTakeFirst();
    if (row === undefined) throw new Error('no default plan');
    return row;
  }

  async #userCounts(planIds: readonly string[], db: Kysely<DB> = this.#db): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    if (planIds.length === 0) return counts;
    const rows = await db
      .selectFrom('users')
      .select((eb) => ['plan_id', eb.fn.countAll<number>().as('users')])
      .where('plan_id', 'in', [...planIds])
      .groupBy('plan_id')
      .execute();
    for (const row of rows) counts.set(row.plan_id!, Number(row.users));
    return counts;
  }
}

async function recordPlan(
  trx: Kysely<DB>,
  type: 'plan.created' | 'plan.updated' | 'plan.deleted',
  row: PlanRow,
  cause: Cause,
  at: Date,
): Promise<void> {
  await appendEvent(trx, {
    type,
    actor: cause.actor,
    subject: { type: 'plan', id: row.id },
    data: { plan: toPlanSummary(row) },
    requestId: cause.requestId,
    occurredAt: at,
  });
}

function validatePlan(input: PlanPatch): FieldError[] {
  const errors: FieldError[] = [];
  for (const [name, price] of Object.entries(input.prices ?? {})) {
    if (!Number.isSafeInteger(price) || price < 0) errors.push({ field: `/prices/${name}`, message: 'must be a non-negative integer' });
  }
  return errors;
}
