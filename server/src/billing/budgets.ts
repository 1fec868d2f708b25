import type { ExpressionBuilder, Kysely } from 'kysely';
import { isUniqueViolation } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import type { BudgetsTable, DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import type { Cause } from '../events/types.js';
import { ApiError, type FieldError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { periodOf } from './calendar.js';
import { isCurrency } from './money.js';
import { spentCost60 } from './spend.js';
import { toBudget, toBudgetSummary, type Budget } from './view.js';

export type BudgetRow = BudgetsTable;

export const DEFAULT_THRESHOLDS = [50, 80, 100] as const;

const budgetPosition = idPosition(/^bdg_[0-9A-Z]{26}$/);

export interface NewBudget {
  scope: 'user' | 'project';
  userId?: string | undefined;
  project?: string | undefined;
  currency: string;
  amount: number;
  thresholds?: number[] | undefined;
}

export interface BudgetPatch {
  amount?: number | undefined;
  thresholds?: number[] | undefined;
}

/** Monthly spending caps on a user's or a project's device time. */
export class BudgetService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #timeZone: string;

  constructor(deps: { db: Kysely<DB>; clock: () => Date; timeZone: string }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#timeZone = deps.timeZone;
  }

  /** Admins see every budget; others those that pay for their leases: their own, and their projects'. */
  async list(
    principal: Principal,
    query: {
      scope?: 'user' | 'project' | undefined;
      userId?: string | undefined;
      project?: string | undefined;
      cursor?: string | undefined;
      limit: number;
    },
  ): Promise<Page<Budget>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, budgetPosition);
    let select = this.#db.selectFrom('budgets').selectAll();
    if (principal.role !== 'admin') select = select.where((eb) => this.#paysFor(eb, principal.userId));
    if (query.scope !== undefined) select = select.where('scope', '=', query.scope);
    if (query.userId !== undefined) select = select.where('scope', '=', 'user').where('target', '=', query.userId);
    if (query.project !== undefined) select = select.where('scope', '=', 'project').where('target', '=', query.project);
    if (after !== undefined) select = select.where('id', '>', after.id);
    const rows = await select.orderBy('id').limit(query.limit + 1).execute();
    const views = await Promise.all(rows.slice(0, query.limit).map((row) => this.#view(row)));
    return toPage(rows, query.limit, (row) => views.find((view) => view.id === row.id)!, (row) => ({ id: row.id }));
  }

  async get(principal: Principal, id: string): Promise<Budget> {
    let select = this.#db.selectFrom('budgets').selectAll().where('id', '=', id);
    if (principal.role !== 'admin') select = select.where((eb) => this.#paysFor(eb, principal.userId));
    const row = await select.executeTakeFirst();
    if (row === undefined) throw new ApiError('budget_not_found', `No budget ${id}.`);
    return this.#view(row);
  }

  /** The budgets that pay for a user's leases: theirs, and those of the projects their leases were tagged with. */
  #paysFor(eb: ExpressionBuilder<DB, 'budgets'>, userId: string) {
    return eb.or([
      eb.and([eb('scope', '=', 'user'), eb('target', '=', userId)]),
      eb.and([
        eb('scope', '=', 'project'),
        eb(
          'target',
          'in',
          eb.selectFrom('leases').select('leases.project').where('leases.user_id', '=', userId).where('leases.project', 'is not', null),
        ),
      ]),
    ]);
  }

  async create(input: NewBudget, cause: Cause): Promise<Budget> {
    const errors: FieldError[] = [];
    if (!isCurrency(input.currency)) errors.push({ field: '/currency', message: 'must be an ISO 4217 currency code' });
    if (input.scope === 'user' && input.userId === undefined) errors.push({ field: '/userId', message: 'is required for a user budget' });
    if (input.scope === 'project' && input.project === undefined) {
      errors.push({ field: '/project', message: 'is required for a project budget' });
    }
    if (input.scope === 'user' && input.project !== undefined) errors.push({ field: '/project', message: 'is only for a project budget' });
    if (input.scope === 'project' && input.userId !== undefined) errors.push({ field: '/userId', message: 'is only for a user budget' });
    const thresholds = normaliseThresholds(input.thresholds, errors);
    if (errors.length > 0) throw new ApiError('validation_failed', 'The budget is invalid.', { errors });
    const now = this.#clock();
    const at = now.toISOString();
    const row: BudgetRow = {
      id: newId('bdg', now.getTime()),
      scope: input.scope,
      target: input.scope === 'user' ? input.userId! : input.project!,
      currency: input.currency,
      amount: input.amount,
      thresholds: JSON.stringify(thresholds),
      created_at: at,
      updated_at: at,
    };
    try {
      await this.#db.transaction().execute(async (trx) => {
        if (row.scope === 'user') {
          const user = await trx.selectFrom('users').select('id').where('id', '=', row.target).executeTakeFirst();
          if (user === undefined) {
            throw new ApiError('validation_failed', `No user ${row.target}.`, {
              errors: [{ field: '/userId', message: 'no such user' }],
            });
          }
        }
        await trx.insertInto('budgets').values(row).execute();
        await this.#record(trx, 'budget.created', row, cause, now);
      });
    } catch (error) {
      if (isUniqueViolation(error)) {
        const whose = row.scope === 'user' ? `user ${row.target}` : `project ${row.target}`;
        throw new ApiError('budget_exists', `There is already a budget for ${whose}; change it instead.`);
      }
      throw error;
    }
    return this.#view(row);
  }

  async update(id: string, patch: BudgetPatch, cause: Cause): Promise<Budget> {
    const errors: FieldError[] = [];
    const thresholds = patch.thresholds === undefined ? undefined : normaliseThresholds(patch.thresholds, errors);
    if (errors.length > 0) throw new ApiError('validation_failed', 'The budget change is invalid.', { errors });
    const row = await this.#db.transaction().execute(async (trx) => {
      const now = this.#clock();
      const current = await this.#find(trx, id);
      const next: BudgetRow = {
        ...current,
        amount: patch.amount ?? current.amount,
        thresholds: thresholds === undefined ? current.thresholds : JSON.stringify(thresholds),
        updated_at: now.toISOString(),
      };
      await trx
        .updateTable('budgets')
        .set({ amount: next.amount, thresholds: next.thresholds, updated_at: next.updated_at })
        .where('id', '=', id)
        .execute();
      // A raised cap may be crossed again: this period's alerts above the new spend's level are forgotten.
      if (patch.amount !== undefined && patch.amount > current.amount) {
        await trx.deleteFrom('budget_alerts').where('budget_id', '=', id).where('period', '=', periodOf(now.getTime(), this.#timeZone)).execute();
      }
      await this.#record(trx, 'budget.updated', next, cause, now);
      return next;
    });
    return this.#view(row);
  }

  async delete(id: string, cause: Cause): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      const row = await this.#find(trx, id);
      await trx.deleteFrom('budgets').where('id', '=', id).execute();
      await this.#record(trx, 'budget.deleted', row, cause, this.#clock());
    });
  }

  /** The budgets on a user (for their usage summary). */
  async ofUser(userId: string): Promise<Budget[]> {
    const rows = await this.#db.selectFrom('budgets').selectAll().where('scope', '=', 'user').where('target', '=', userId).execute();
    return Promise.all(rows.map((row) => this.#view(row)));
  }

  async #view(row: BudgetRow): Promise<Budget> {
    const now = this.#clock();
    const period = periodOf(now.getTime(), this.#timeZone);
    const spent60 = await spentCost60(this.#db, row, period, now, this.#timeZone);
    const username =
      row.scope === 'user'
        ? ((await this.#db.selectFrom('users').select('username').where('id', '=', row.target).executeTakeFirst())?.username ?? null)
        : null;
    return toBudget(row, { period, spent60, username });
  }

  async #record(
    trx: Kysely<DB>,
    type: 'budget.created' | 'budget.updated' | 'budget.deleted',
    row: BudgetRow,
    cause: Cause,
    at: Date,
  ): Promise<void> {
    await appendEvent(trx, {
      type,
      actor: cause.actor,
      subject: { type: 'budget', id: row.id },
      data: { budget: toBudgetSummary(row) },
      requestId: cause.requestId,
      occurredAt: at,
    });
  }

  async #find(db: Kysely<DB>, id: string): Promise<BudgetRow> {
    const row = await db.selectFrom('budgets').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) throw new ApiError('budget_not_found', `No budget ${id}.`);
    return row;
  }
}

function normaliseThresholds(thresholds: number[] | undefined, errors: FieldError[]): number[] {
  const list = [...new Set(thresholds ?? DEFAULT_THRESHOLDS)].sort((a, b) => a - b);
  if (list.some((t) => !Number.isInteger(t) || t < 1 || t > 100)) {
    errors.push({ field: '/thresholds', message: 'each must be an integer percent from 1 to 100' });
  }
  return list;
}
