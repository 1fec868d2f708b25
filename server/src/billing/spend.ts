import { sql, type Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { periodBounds } from './calendar.js';
import { billedSeconds, includedSecondsUsed, openUsage, plansOfUsers, priceOf, type OpenUsage, type PlanRow } from './metering.js';

/**
 * Device time not yet recorded, counted up to now within one period: what every report, budget check and preview
 * adds to the usage records. `cost60` is its charge times 60 (seconds × price per minute), exact.
 */
export interface OpenCharge {
  usage: OpenUsage;
  plan: PlanRow;
  seconds: number;
  includedSeconds: number;
  pricePerMinute: number;
  cost60: bigint;
}

/**
 * The open usage of the given users within `period`, up to `now`, priced at each user's plan, with the included
 * seconds their records left consumed in the order the devices were granted.
 */
export async function openCharges(
  db: Kysely<DB>,
  userIds: readonly string[],
  period: string,
  now: Date,
  timeZone: string,
  plans?: Map<string, PlanRow>,
): Promise<OpenCharge[]> {
  const open = await openUsage(db, { userIds });
  if (open.length === 0) return [];
  const { startMs, endMs } = periodBounds(period, timeZone);
  const planOf = plans ?? (await plansOfUsers(db, [...new Set(open.map((usage) => usage.userId))]));
  const includedLeft = new Map<string, number>();
  const charges: OpenCharge[] = [];
  for (const usage of open) {
    const plan = planOf.get(usage.userId) ?? (await plansOfUsers(db, [usage.userId])).get(usage.userId)!;
    const expiresMs = usage.expiresAt === null ? Infinity : Date.parse(usage.expiresAt);
    const fromMs = Math.max(Date.parse(usage.from), startMs);
    const toMs = Math.min(now.getTime(), expiresMs, endMs);
    const { startS, endS } = billedSeconds(fromMs, toMs);
    const seconds = endS - startS;
    if (seconds <= 0) continue;
    if (!includedLeft.has(usage.userId)) {
      const used = (await includedSecondsUsed(db, usage.userId, [period])).get(period) ?? 0;
      includedLeft.set(usage.userId, Math.max(0, plan.included_minutes * 60 - used));
    }
    const included = Math.min(seconds, includedLeft.get(usage.userId)!);
    includedLeft.set(usage.userId, includedLeft.get(usage.userId)! - included);
    const pricePerMinute = priceOf(plan, usage.billingClass);
    charges.push({
      usage,
      plan,
      seconds,
      includedSeconds: included,
      pricePerMinute,
      cost60: BigInt(seconds - included) * BigInt(pricePerMinute),
    });
  }
  return charges;
}

/**
 * The open charges of users within one period up to one instant, each user's read once: the checks of one
 * admission (the minutes quota, the user's budget, the budgets of the projects) price the same open leases.
 */
export class OpenChargeBook {
  readonly #db: Kysely<DB>;
  readonly #period: string;
  readonly #now: Date;
  readonly #timeZone: string;
  readonly #plans: Map<string, PlanRow>;
  readonly #byUser = new Map<string, OpenCharge[]>();

  constructor(db: Kysely<DB>, period: string, now: Date, timeZone: string, plans: Map<string, PlanRow>) {
    this.#db = db;
    this.#period = period;
    this.#now = now;
    this.#timeZone = timeZone;
    this.#plans = new Map(plans);
  }

  /** The open charges of `userIds`, as `openCharges` prices them. */
  async of(userIds: readonly string[]): Promise<OpenCharge[]> {
    const users = [...new Set(userIds)];
    const missing = users.filter((id) => !this.#byUser.has(id));
    if (missing.length > 0) {
      const unplanned = missing.filter((id) => !this.#plans.has(id));
      for (const [id, plan] of await plansOfUsers(this.#db, unplanned)) this.#plans.set(id, plan);
      const charges = await openCharges(this.#db, missing, this.#period, this.#now, this.#timeZone, this.#plans);
      for (const id of missing) this.#byUser.set(id, []);
      for (const charge of charges) this.#byUser.get(charge.usage.userId)!.push(charge);
    }
    return users.flatMap((id) => this.#byUser.get(id)!);
  }
}

/** Whose usage a budget pays for. */
export interface SpendTarget {
  scope: 'user' | 'project';
  /** The user's id or the project. */
  target: string;
  currency: string;
}

/** The recorded charge (×60) of a user's or a project's usage in a period, in one currency. */
export async function recordedCost60(db: Kysely<DB>, target: SpendTarget, period: string): Promise<bigint> {
  const row = await db
    .selectFrom('usage_records')
    .select(sql<number | null>`cast(sum((seconds - included_seconds) * price_per_minute) as bigint)`.as('cost'))
    .where(target.scope === 'user' ? 'user_id' : 'project', '=', target.target)
    .where('period', '=', period)
    .where('currency', '=', target.currency)
    .executeTakeFirst();
  return BigInt(row?.cost ?? 0);
}

/** The users with device time open in a project (for a project budget's open charges). */
async function usersOpenIn(db: Kysely<DB>, project: string): Promise<string[]> {
  const rows = await db
    .selectFrom('lease_devices')
    .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .select('leases.user_id as userId')
    .distinct()
    .where('lease_devices.released_at', 'is', null)
    .where('leases.project', '=', project)
    .execute();
  return rows.map((row) => row.userId);
}

/** The open charges a budget's target has in a period, in its currency (from `book` when given, of that period). */
export async function openChargesOf(
  db: Kysely<DB>,
  target: SpendTarget,
  period: string,
  now: Date,
  timeZone: string,
  book?: OpenChargeBook,
): Promise<OpenCharge[]> {
  const users = target.scope === 'user' ? [target.target] : await usersOpenIn(db, target.target);
  const charges = book === undefined ? await openCharges(db, users, period, now, timeZone) : await book.of(users);
  return charges.filter(
    (charge) =>
      charge.plan.currency === target.currency && (target.scope === 'user' || charge.usage.project === target.target),
  );
}

/** What a budget's target has spent in a period up to now (×60: seconds × price per minute), open leases included. */
export async function spentCost60(
  db: Kysely<DB>,
  target: SpendTarget,
  period: string,
  now: Date,
  timeZone: string,
  book?: OpenChargeBook,
): Promise<bigint> {
  const recorded = await recordedCost60(db, target, period);
  const open = await openChargesOf(db, target, period, now, timeZone, book);
  return open.reduce((sum, charge) => sum + charge.cost60, recorded);
}

/** The device seconds a user has used in a period (records and open leases up to now), for the minutes quota. */
export async function usedSeconds(
  db: Kysely<DB>,
  userId: string,
  period: string,
  now: Date,
  timeZone: string,
): Promise<number> {
  const row = await db
    .selectFrom('usage_records')
    .select(sql<number | null>`cast(sum(seconds) as bigint)`.as('seconds'))
    .where('user_id', '=', userId)
    .where('period', '=', period)
    .executeTakeFirst();
  const open = await openCharges(db, [userId], period, now, timeZone);
  return open.reduce((sum, charge) => sum + charge.seconds, Number(row?.seconds ?? 0));
}
