import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { lockForTransaction } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import type { DB, InvoicesTable } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import type { Cause } from '../events/types.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { SCHEDULING_LOCK } from '../leases/service.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { nextPeriod, periodBounds, periodOf, previousPeriod } from './calendar.js';
import { cutUsage, openUsage, plansOfUsers, type PlanRow } from './metering.js';
import { chargeFor } from './money.js';
import { openCharges } from './spend.js';
import { toInvoice, toInvoiceSummary, type Invoice, type InvoiceLine, type InvoicePreview } from './view.js';

export type InvoiceRow = InvoicesTable;

/** The lock finalizations take, so that invoice numbers are given one at a time: the sequence has no gap. */
const NUMBERING_LOCK = 'invoices.numbering';
const invoicePosition = idPosition(/^inv_[0-9A-Z]{26}$/);

/** Usage priced for an invoice: a record, or open device time counted up to now (a preview). */
export interface PricedUsage {
  billingClass: string;
  pricePerMinute: number;
  seconds: number;
  includedSeconds: number;
  currency: string;
}

/**
 * An invoice's lines: one per billing class and price (its seconds at its price per minute), the plan's monthly
 * fee, and the included minutes as a credit. Each line is rounded once, half up, from its exact amount.
 */
export function invoiceLines(usage: readonly PricedUsage[], plan: PlanRow): InvoiceLine[] {
  const groups = new Map<string, { billingClass: string; pricePerMinute: number; seconds: number }>();
  let included60 = 0n;
  let includedSeconds = 0;
  for (const item of usage) {
    const key = `${item.billingClass}\u0000${item.pricePerMinute}`;
    const group = groups.get(key) ?? { billingClass: item.billingClass, pricePerMinute: item.pricePerMinute, seconds: 0 };
    group.seconds += item.seconds;
    groups.set(key, group);
    included60 += BigInt(item.includedSeconds) * BigInt(item.pricePerMinute);
    includedSeconds += item.includedSeconds;
  }
  const lines: InvoiceLine[] = [...groups.values()]
    .sort((a, b) => (a.billingClass === b.billingClass ? a.pricePerMinute - b.pricePerMinute : a.billingClass < b.billingClass ? -1 : 1))
    .map((group) => ({
      kind: 'usage',
      description: `Device time, ${group.billingClass}`,
      billingClass: group.billingClass,
      seconds: group.seconds,
      pricePerMinute: group.pricePerMinute,
      amount: Number(chargeFor(BigInt(group.seconds) * BigInt(group.pricePerMinute))),
      reason: null,
      createdBy: null,
      createdAt: null,
    }));
  if (plan.monthly_fee > 0) {
    lines.push({
      kind: 'fee',
      description: `Monthly fee, plan ${plan.name}`,
      billingClass: null,
      seconds: null,
      pricePerMinute: null,
      amount: plan.monthly_fee,
      reason: null,
      createdBy: null,
      createdAt: null,
    });
  }
  if (includedSeconds > 0) {
    lines.push({
      kind: 'included',
      description: `Included minutes, plan ${plan.name}`,
      billingClass: null,
      seconds: includedSeconds,
      pricePerMinute: null,
      amount: -Number(chargeFor(included60)),
      reason: null,
      createdBy: null,
      createdAt: null,
    });
  }
  return lines;
}

function totalOf(lines: readonly InvoiceLine[]): number {
  return lines.reduce((sum, line) => sum + line.amount, 0);
}

function usageSecondsOf(lines: readonly InvoiceLine[]): number {
  return lines.filter((line) => line.kind === 'usage').reduce((sum, line) => sum + (line.seconds ?? 0), 0);
}

/** Draft invoices at each period's end, previews, adjustments, finalization with gap-free numbers, and voiding. */
export class InvoiceService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #timeZone: string;
  readonly #log: Pick<FastifyBaseLogger, 'info'>;

  constructor(deps: { db: Kysely<DB>; clock: () => Date; timeZone: string; log: Pick<FastifyBaseLogger, 'info'> }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#timeZone = deps.timeZone;
    this.#log = deps.log;
  }

  async list(
    principal: Principal,
    query: { userId?: string | undefined; period?: string | undefined; status?: InvoiceRow['status'] | undefined; cursor?: string | undefined; limit: number },
  ): Promise<Page<Invoice>> {
    const userId = ownOrAdmin(principal, query.userId, "Listing other users' invoices needs the admin role.");
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, invoicePosition);
    let select = this.#db.selectFrom('invoices').selectAll();
    if (userId !== undefined) select = select.where('user_id', '=', userId);
    if (query.period !== undefined) select = select.where('period', '=', query.period);
    if (query.status !== undefined) select = select.where('status', '=', query.status);
    if (after !== undefined) select = select.where('id', '>', after.id);
    const rows = await select.orderBy('id').limit(query.limit + 1).execute();
    return toPage(rows, query.limit, toInvoice, (row) => ({ id: row.id }));
  }

  async get(principal: Principal, id: string): Promise<Invoice> {
    return toInvoice(await this.#visible(principal, id));
  }

  /** The stored invoice, for its documents. */
  async row(principal: Principal, id: string): Promise<InvoiceRow> {
    return this.#visible(principal, id);
  }

  /**
   * The current period's invoice as it stands: recorded usage plus open device time up to now, at the user's plan
   * now. Once the period ends with nothing changed, its draft has these lines.
   */
  async preview(principal: Principal, userId: string | undefined): Promise<InvoicePreview> {
    const owner = ownOrAdmin(principal, userId, "Previewing other users' invoices needs the admin role.") ?? principal.userId;
    const now = this.#clock();
    const period = periodOf(now.getTime(), this.#timeZone);
    const user = await this.#db.selectFrom('users').select(['id', 'username']).where('id', '=', owner).executeTakeFirst();
    if (user === undefined) throw new ApiError('not_found', `No user ${owner}.`);
    const plan = (await plansOfUsers(this.#db, [owner])).get(owner)!;
    const usage = await this.#recordedUsage(this.#db, owner, period);
    for (const charge of await openCharges(this.#db, [owner], period, now, this.#timeZone)) {
      usage.push({
        billingClass: charge.usage.billingClass,
        pricePerMinute: charge.pricePerMinute,
        seconds: charge.seconds,
        includedSeconds: charge.includedSeconds,
        currency: charge.plan.currency,
      });
    }
    const lines = invoiceLines(usage, plan);
    const { startMs, endMs } = periodBounds(period, this.#timeZone);
    return {
      userId: user.id,
      username: user.username,
      period,
      periodStart: new Date(startMs).toISOString(),
      periodEnd: new Date(endMs).toISOString(),
      asOf: now.toISOString(),
      currency: usage[0]?.currency ?? plan.currency,
      planId: plan.id,
      planName: plan.name,
      lines,
      usageSeconds: usageSecondsOf(lines),
      total: totalOf(lines),
    };
  }

  /** Adds a credit or a charge to a draft. */
  async adjust(id: string, input: { amount: number; reason: string }, principal: Principal, cause: Cause): Promise<Invoice> {
    return this.#change(id, cause, 'invoice.adjusted', (row, now) => {
      if (row.status !== 'draft') throw new ApiError('invoice_not_draft', `Invoice ${id} is ${row.status}; only a draft can be adjusted.`);
      const lines = JSON.parse(row.lines) as InvoiceLine[];
      lines.push({
        kind: 'adjustment',
        description: input.amount < 0 ? 'Credit' : 'Charge',
        billingClass: null,
        seconds: null,
        pricePerMinute: null,
        amount: input.amount,
        reason: input.reason,
        createdBy: principal.userId,
        createdAt: now.toISOString(),
      });
      return { lines: JSON.stringify(lines), total: totalOf(lines) };
    });
  }

  /** Makes a draft immutable and gives it the next number. */
  async finalize(id: string, cause: Cause): Promise<Invoice> {
    return this.#change(id, cause, 'invoice.finalized', async (row, now, trx) => {
      if (row.status !== 'draft') throw new ApiError('invoice_not_draft', `Invoice ${id} is ${row.status}; only a draft can be finalized.`);
      await lockForTransaction(trx, NUMBERING_LOCK);
      const last = await trx.selectFrom('invoices').select((eb) => eb.fn.max('number').as('number')).executeTakeFirst();
      return { status: 'finalized' as const, number: Number(last?.number ?? 0) + 1, finalized_at: now.toISOString() };
    });
  }

  /** Voids a draft or a finalized invoice; a finalized one keeps its number. */
  async void(id: string, reason: string, cause: Cause): Promise<Invoice> {
    return this.#change(id, cause, 'invoice.voided', (row, now) => {
      if (row.status === 'void') throw new ApiError('invoice_already_void', `Invoice ${id} is already void.`);
      return { status: 'void' as const, voided_at: now.toISOString(), void_reason: reason };
    });
  }

  /**
   * Closes every billing period that has ended: the device time still open is recorded up to the period's end, and
   * each user with usage in the period, or a plan with a monthly fee, gets a draft invoice. The leader runs it.
   */
  async closePeriods(now: Date): Promise<void> {
    const current = periodOf(now.getTime(), this.#timeZone);
    const last = await this.#db.selectFrom('billing_periods').select((eb) => eb.fn.max('period').as('period')).executeTakeFirst();
    let period = last?.period == null ? await this.#firstOpenPeriod(current) : nextPeriod(last.period);
    while (period < current) {
      await this.#closePeriod(period, now);
      period = nextPeriod(period);
    }
  }

  /** Where closing starts on a database that never closed one: the oldest period with usage, else the last one. */
  async #firstOpenPeriod(current: string): Promise<string> {
    const oldest = await this.#db.selectFrom('usage_records').select((eb) => eb.fn.min('period').as('period')).executeTakeFirst();
    const open = await openUsage(this.#db);
    const periods = [previousPeriod(current)];
    if (oldest?.period != null) periods.push(oldest.period);
    for (const usage of open) periods.push(periodOf(Date.parse(usage.from), this.#timeZone));
    return periods.sort()[0]!;
  }

  async #closePeriod(period: string, now: Date): Promise<void> {
    const { startMs, endMs } = periodBounds(period, this.#timeZone);
    const end = new Date(endMs);
    let drafts = 0;
    await this.#db.transaction().execute(async (trx) => {
      await lockForTransaction(trx, SCHEDULING_LOCK);
      const closed = await trx.selectFrom('billing_periods').select('period').where('period', '=', period).executeTakeFirst();
      if (closed !== undefined) return;
      await cutUsage(trx, await openUsage(trx), end, this.#timeZone);
      const users = await trx
        .selectFrom('users')
        .select(['id', 'username'])
        .where((eb) =>
          eb.or([
            eb.exists(eb.selectFrom('usage_records').select('usage_records.id').whereRef('usage_records.user_id', '=', 'users.id').where('usage_records.period', '=', period)),
            eb.and([eb('users.created_at', '<', end.toISOString()), eb('users.disabled', '=', 0)]),
          ]),
        )
        .orderBy('id')
        .execute();
      users.push(...(await deletedUsersWithUsage(trx, period)));
      const plans = await plansOfUsers(trx, users.map((user) => user.id));
      for (const user of users) {
        const plan = plans.get(user.id)!;
        const usage = await this.#recordedUsage(trx, user.id, period);
        if (usage.length === 0 && plan.monthly_fee === 0) continue;
        const exists = await trx.selectFrom('invoices').select('id').where('user_id', '=', user.id).where('period', '=', period).executeTakeFirst();
        if (exists !== undefined) continue;
        const lines = invoiceLines(usage, plan);
        const row: InvoiceRow = {
          id: newId('inv', now.getTime()),
          number: null,
          user_id: user.id,
          username: user.username,
          period,
          period_start: new Date(startMs).toISOString(),
          period_end: end.toISOString(),
          status: 'draft',
          currency: usage[0]?.currency ?? plan.currency,
          plan_id: plan.id,
          plan_name: plan.name,
          lines: JSON.stringify(lines),
          usage_seconds: usageSecondsOf(lines),
          total: totalOf(lines),
          created_at: now.toISOString(),
          finalized_at: null,
          voided_at: null,
          void_reason: null,
        };
        await trx.insertInto('invoices').values(row).execute();
        await appendEvent(trx, {
          type: 'invoice.created',
          actor: { type: 'system' },
          subject: { type: 'invoice', id: row.id },
          data: { invoice: toInvoiceSummary(row) },
          requestId: null,
          occurredAt: now,
        });
        drafts += 1;
      }
      await trx.insertInto('billing_periods').values({ period, closed_at: now.toISOString() }).execute();
    });
    this.#log.info({ period, drafts }, 'closed a billing period');
  }

  async #recordedUsage(db: Kysely<DB>, userId: string, period: string): Promise<PricedUsage[]> {
    const rows = await db
      .selectFrom('usage_records')
      .select(['billing_class', 'price_per_minute', 'seconds', 'included_seconds', 'currency'])
      .where('user_id', '=', userId)
      .where('period', '=', period)
      .orderBy('start_s')
      .execute();
    return rows.map((row) => ({
      billingClass: row.billing_class,
      pricePerMinute: Number(row.price_per_minute),
      seconds: Number(row.seconds),
      includedSeconds: Number(row.included_seconds),
      currency: row.currency,
    }));
  }

  async #change(
    id: string,
    cause: Cause,
    type: 'invoice.adjusted' | 'invoice.finalized' | 'invoice.voided',
    change: (row: InvoiceRow, now: Date, trx: Kysely<DB>) => Partial<InvoiceRow> | Promise<Partial<InvoiceRow>>,
  ): Promise<Invoice> {
    const row = await this.#db.transaction().execute(async (trx) => {
      const now = this.#clock();
      const current = await trx.selectFrom('invoices').selectAll().where('id', '=', id).executeTakeFirst();
      if (current === undefined) throw new ApiError('invoice_not_found', `No invoice ${id}.`);
      const changes = await change(current, now, trx);
      // Only a draft changes, so a finalized invoice stays as it was finalized.
      await trx.updateTable('invoices').set(changes).where('id', '=', id).where('status', '=', current.status).execute();
      const next = { ...current, ...changes };
      await appendEvent(trx, {
        type,
        actor: cause.actor,
        subject: { type: 'invoice', id },
        data: { invoice: toInvoiceSummary(next) },
        requestId: cause.requestId,
        occurredAt: now,
      });
      return next;
    });
    return toInvoice(row);
  }

  async #visible(principal: Principal, id: string): Promise<InvoiceRow> {
    const row = await this.#db.selectFrom('invoices').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined || (principal.role !== 'admin' && row.user_id !== principal.userId)) {
      throw new ApiError('invoice_not_found', `No invoice ${id}.`);
    }
    return row;
  }
}

/**
 * The users deleted since who have usage in the period: they are invoiced like the others (at the default plan),
 * under the username the log recorded when they were deleted.
 */
async function deletedUsersWithUsage(trx: Kysely<DB>, period: string): Promise<{ id: string; username: string }[]> {
  const rows = await trx
    .selectFrom('usage_records')
    .select('user_id')
    .distinct()
    .where('period', '=', period)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('users').select('users.id').whereRef('users.id', '=', 'usage_records.user_id'))))
    .orderBy('user_id')
    .execute();
  const users: { id: string; username: string }[] = [];
  for (const { user_id: id } of rows) {
    const deleted = await trx
      .selectFrom('events')
      .select('data')
      .where('type', '=', 'user.deleted')
      .where('subject_id', '=', id)
      .executeTakeFirst();
    const username = deleted === undefined ? undefined : (JSON.parse(deleted.data) as { user?: { username?: string } }).user?.username;
    users.push({ id, username: username ?? id });
  }
  return users;
}

/** The user a member may ask about: themselves. Admins may ask about anyone (undefined: everyone). */
export function ownOrAdmin(principal: Principal, userId: string | undefined, refusal: string): string | undefined {
  if (principal.role === 'admin') return userId;
  if (userId !== undefined && userId !== principal.userId) throw new ApiError('insufficient_role', refusal);
  return principal.userId;
}
