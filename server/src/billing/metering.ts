import { sql, type Kysely } from 'kysely';
import { newId } from '../db/ids.js';
import type { DB, PlansTable } from '../db/schema.js';
import { splitByDay } from './calendar.js';

/** The device label whose value, when set, is the device's billing class (`tier=flagship`). */
export const BILLING_CLASS_LABEL = 'tier';

/** A device's billing class: its `tier` label when set, else its kind. */
export function billingClassOf(device: { kind: string; labels: Readonly<Record<string, string>> }): string {
  const tier = device.labels[BILLING_CLASS_LABEL];
  return tier !== undefined && tier !== '' ? tier : device.kind;
}

export type PlanRow = PlansTable;

/** The price per device-minute of a billing class under a plan, in the plan currency's minor units. */
export function priceOf(plan: PlanRow, billingClass: string): number {
  const prices = JSON.parse(plan.prices) as Record<string, number>;
  return prices[billingClass] ?? plan.default_price;
}

/**
 * The whole seconds `[startS, endS)` the time from `fromMs` to `toMs` is billed as: every started second counts
 * (the start is floored, the end ceiled). Empty (`endS <= startS`) when `toMs <= fromMs`.
 */
export function billedSeconds(fromMs: number, toMs: number): { startS: number; endS: number } {
  if (toMs <= fromMs) return { startS: 0, endS: 0 };
  return { startS: Math.floor(fromMs / 1000), endS: Math.ceil(toMs / 1000) };
}

/** The default plan's row. */
export async function defaultPlan(db: Kysely<DB>): Promise<PlanRow> {
  const plan = await db.selectFrom('plans').selectAll().where('is_default', '=', 1).executeTakeFirst();
  if (plan === undefined) throw new Error('no default plan: the billing service creates one at start');
  return plan;
}

/** Each user's plan (the default plan for those without one). */
export async function plansOfUsers(db: Kysely<DB>, userIds: readonly string[]): Promise<Map<string, PlanRow>> {
  const plans = new Map<string, PlanRow>();
  if (userIds.length === 0) return plans;
  const rows = await db
    .selectFrom('users')
    .innerJoin('plans', (join) =>
      join.on((eb) =>
        eb.or([
          eb('plans.id', '=', eb.ref('users.plan_id')),
          eb.and([eb('users.plan_id', 'is', null), eb('plans.is_default', '=', 1)]),
        ]),
      ),
    )
    .selectAll('plans')
    .select('users.id as userId')
    .where('users.id', 'in', [...new Set(userIds)])
    .execute();
  for (const { userId, ...plan } of rows) plans.set(userId, plan);
  // A user deleted since keeps being billed at the default plan.
  const missing = userIds.filter((id) => !plans.has(id));
  if (missing.length > 0) {
    const fallback = await defaultPlan(db);
    for (const id of missing) plans.set(id, fallback);
  }
  return plans;
}

/** The included seconds a user has consumed in each of the given periods. */
export async function includedSecondsUsed(
  db: Kysely<DB>,
  userId: string,
  periods: readonly string[],
): Promise<Map<string, number>> {
  const used = new Map<string, number>(periods.map((period) => [period, 0]));
  if (periods.length === 0) return used;
  const rows = await db
    .selectFrom('usage_records')
    .select(['period', sql<number>`cast(sum(included_seconds) as bigint)`.as('used')])
    .where('user_id', '=', userId)
    .where('period', 'in', [...periods])
    .groupBy('period')
    .execute();
  for (const row of rows) used.set(row.period, Number(row.used));
  return used;
}

/** A leased device's time not yet in a usage record. */
export interface OpenUsage {
  leaseId: string;
  deviceId: string;
  userId: string;
  project: string | null;
  billingClass: string;
  /** Where the unrecorded time starts (ISO). */
  from: string;
  /** The lease's expiry (ISO): nothing after it is billed. */
  expiresAt: string | null;
}

/**
 * The usage records `open` makes up to `until` (never past the lease's expiry): split at the billing time zone's
 * day boundaries, priced at the user's plan now, with the plan's included minutes left consumed first.
 */
export async function priceUsage(
  db: Kysely<DB>,
  open: readonly OpenUsage[],
  until: Date,
  timeZone: string,
): Promise<DB['usage_records'][]> {
  if (open.length === 0) return [];
  const plans = await plansOfUsers(
    db,
    open.map((usage) => usage.userId),
  );
  const recordedAt = until.toISOString();
  const rows: DB['usage_records'][] = [];
  const includedLeft = new Map<string, number>();
  for (const usage of open) {
    const endMs = Math.min(until.getTime(), usage.expiresAt === null ? Infinity : Date.parse(usage.expiresAt));
    const { startS, endS } = billedSeconds(Date.parse(usage.from), endMs);
    if (endS <= startS) continue;
    const plan = plans.get(usage.userId)!;
    const pieces = splitByDay(startS, endS, timeZone);
    const periods = [...new Set(pieces.map((piece) => piece.period))].filter(
      (period) => !includedLeft.has(`${usage.userId}:${period}`),
    );
    const used = await includedSecondsUsed(db, usage.userId, periods);
    for (const [period, seconds] of used) {
      includedLeft.set(`${usage.userId}:${period}`, Math.max(0, plan.included_minutes * 60 - seconds));
    }
    for (const piece of pieces) {
      const key = `${usage.userId}:${piece.period}`;
      const seconds = piece.endS - piece.startS;
      const included = Math.min(seconds, includedLeft.get(key)!);
      includedLeft.set(key, includedLeft.get(key)! - included);
      rows.push({
        id: newId('use', piece.startS * 1000),
        lease_id: usage.leaseId,
        device_id: usage.deviceId,
        user_id: usage.userId,
        project: usage.project,
        billing_class: usage.billingClass,
        plan_id: plan.id,
        currency: plan.currency,
        price_per_minute: priceOf(plan, usage.billingClass),
        started_at: new Date(piece.startS * 1000).toISOString(),
        ended_at: new Date(piece.endS * 1000).toISOString(),
        start_s: piece.startS,
        end_s: piece.endS,
        seconds,
        included_seconds: included,
        day: piece.day,
        period: piece.period,
        recorded_at: recordedAt,
      });
    }
  }
  return rows;
}

/**
 * Writes the usage of `open` up to `until` (`priceUsage`), in the caller's transaction: the one that changes the
 * lease (or cuts the usage), so usage is neither lost nor counted twice.
 */
export async function recordUsage(
  trx: Kysely<DB>,
  open: readonly OpenUsage[],
  until: Date,
  timeZone: string,
): Promise<void> {
  const rows = await priceUsage(trx, open, until, timeZone);
  for (let i = 0; i < rows.length; i += 500) {
    await trx.insertInto('usage_records').values(rows.slice(i, i + 500)).execute();
  }
}

/** Unreleased leased devices, optionally only those of some users, of one project, or of users on one plan. */
export async function openUsage(
  db: Kysely<DB>,
  filter: { userIds?: readonly string[]; project?: string; planId?: string; leaseId?: string } = {},
): Promise<OpenUsage[]> {
  let query = db
    .selectFrom('lease_devices')
    .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
    .leftJoin('devices', 'devices.id', 'lease_devices.device_id')
    .select([
      'lease_devices.lease_id as leaseId',
      'lease_devices.device_id as deviceId',
      'leases.user_id as userId',
      'leases.project as project',
      'lease_devices.billing_class as billingClass',
      'devices.kind as kind',
      'devices.labels as labels',
      'lease_devices.metered_from as meteredFrom',
      'lease_devices.granted_at as grantedAt',
      'leases.expires_at as expiresAt',
    ])
    .where('lease_devices.released_at', 'is', null);
  if (filter.userIds !== undefined) {
    if (filter.userIds.length === 0) return [];
    query = query.where('leases.user_id', 'in', [...filter.userIds]);
  }
  if (filter.project !== undefined) query = query.where('leases.project', '=', filter.project);
  if (filter.leaseId !== undefined) query = query.where('leases.id', '=', filter.leaseId);
  if (filter.planId !== undefined) {
    const planId = filter.planId;
    query = query.where((eb) =>
      eb.exists(
        eb
          .selectFrom('users')
          .select('users.id')
          .whereRef('users.id', '=', 'leases.user_id')
          .where((inner) =>
            inner.or([
              inner('users.plan_id', '=', planId),
              inner.and([
                inner('users.plan_id', 'is', null),
                inner.exists(inner.selectFrom('plans').select('plans.id').where('plans.id', '=', planId).where('plans.is_default', '=', 1)),
              ]),
            ]),
          ),
      ),
    );
  }
  const rows = await query.orderBy('lease_devices.granted_at').orderBy('lease_devices.lease_id').orderBy('lease_devices.device_id').execute();
  return rows.map((row) => ({
    leaseId: row.leaseId,
    deviceId: row.deviceId,
    userId: row.userId,
    project: row.project,
    billingClass:
      row.billingClass ??
      billingClassOf({ kind: row.kind ?? 'physical', labels: row.labels === null ? {} : (JSON.parse(row.labels) as Record<string, string>) }),
    from: row.meteredFrom ?? row.grantedAt,
    expiresAt: row.expiresAt,
  }));
}

/**
 * Records the unrecorded device time of `open` up to `at` and moves its metering position there: done when what
 * prices it changes (the user's plan, the plan's prices) and when a billing period closes. The caller holds the
 * scheduling lock, so no lease ends in between.
 */
export async function cutUsage(trx: Kysely<DB>, open: readonly OpenUsage[], at: Date, timeZone: string): Promise<void> {
  const cut = new Date(Math.floor(at.getTime() / 1000) * 1000);
  const due = open.filter((usage) => Date.parse(usage.from) < cut.getTime());
  await recordUsage(trx, due, cut, timeZone);
  for (const usage of due) {
    await trx
      .updateTable('lease_devices')
      .set({ metered_from: cut.toISOString() })
      .where('lease_id', '=', usage.leaseId)
      .where('device_id', '=', usage.deviceId)
      .where('released_at', 'is', null)
      .execute();
  }
}
