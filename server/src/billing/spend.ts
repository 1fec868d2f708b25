import { sql, type Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { periodBounds } from './calendar.js';
import { billedSeconds, openUsage, plansOfUsers, priceOf, type OpenUsage, type PlanRow } from './metering.js';

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
 * Prices open usage within `period` up to `now` at each user's plan, the included seconds each user's records left
 * (`includedUsed`: what their records consumed this period) consumed in the order the devices were granted.
 */
export function priceOpen(
  open: readonly OpenUsage[],
  plans: ReadonlyMap<string, PlanRow>,
  includedUsed: ReadonlyMap<string, number>,
  period: string,
  now: Date,
  timeZone: string,
): OpenCharge[] {
  if (open.length === 0) return [];
  const { startMs, endMs } = periodBounds(period, timeZone);
  const includedLeft = new Map<string, number>();
  const charges: OpenCharge[] = [];
  for (const usage of open) {
    const plan = plans.get(usage.userId)!;
    const expiresMs = usage.expiresAt === null ? Infinity : Date.parse(usage.expiresAt);
    const fromMs = Math.max(Date.parse(usage.from), startMs);
    const toMs = Math.min(now.getTime(), expiresMs, endMs);
    const { startS, endS } = billedSeconds(fromMs, toMs);
    const seconds = endS - startS;
    if (seconds <= 0) continue;
    const left = includedLeft.get(usage.userId) ?? Math.max(0, plan.included_minutes * 60 - (includedUsed.get(usage.userId) ?? 0));
    const included = Math.min(seconds, left);
    includedLeft.set(usage.userId, left - included);
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

/** What the given users' records hold for a period: seconds and included seconds, by user. */
async function recordedByUser(
  db: Kysely<DB>,
  userIds: readonly string[],
  period: string,
): Promise<Map<string, { seconds: number; included: number }>> {
  const recorded = new Map<string, { seconds: number; included: number }>();
  if (userIds.length === 0) return recorded;
  const rows = await db
    .selectFrom('usage_records')
    .select([
      'user_id as userId',
      sql<number>`cast(sum(seconds) as bigint)`.as('seconds'),
      sql<number>`cast(sum(included_seconds) as bigint)`.as('included'),
    ])
    .where('user_id', 'in', [...new Set(userIds)])
    .where('period', '=', period)
    .groupBy('user_id')
    .execute();
  for (const row of rows) recorded.set(row.userId, { seconds: Number(row.seconds), included: Number(row.included) });
  return recorded;
}

/** The open usage of the given users within `period`, up to `now`, priced as `priceOpen` does. */
export async function openCharges(
  db: Kysely<DB>,
  userIds: readonly string[],
  period: string,
  now: Date,
  timeZone: string,
): Promise<OpenCharge[]> {
  const open = await openUsage(db, { userIds });
  if (open.length === 0) return [];
  const users = [...new Set(open.map((usage) => usage.userId))];
  const plans = await plansOfUsers(db, users);
  const recorded = await recordedByUser(db, users, period);
  const included = new Map([...recorded].map(([id, use]) => [id, use.included]));
  return priceOpen(open, plans, included, period, now, timeZone);
}

/** Whose usage a budget pays for. */
export interface SpendTarget {
  scope: 'user' | 'project';
  /** The user's id or the project. */
  target: string;
  currency: string;
}

/** The recorded charge (×60) of a user's or a project's usage in a period, in one currency. */
async function recordedCost60(db: Kysely<DB>, target: SpendTarget, period: string): Promise<bigint> {
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

/** The open charges a budget's target has in a period, in its currency. */
export async function openChargesOf(
  db: Kysely<DB>,
  target: SpendTarget,
  period: string,
  now: Date,
  timeZone: string,
): Promise<OpenCharge[]> {
  const users = target.scope === 'user' ? [target.target] : await usersOpenIn(db, target.target);
  const charges = await openCharges(db, users, period, now, timeZone);
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
): Promise<bigint> {
  const recorded = await recordedCost60(db, target, period);
  const open = await openChargesOf(db, target, period, now, timeZone);
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
