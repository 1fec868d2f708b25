import { sql, type Kysely } from 'kysely';
import { aggregatesByHashing } from '../db/dialect.js';
import type { DB } from '../db/schema.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { normaliseSelector } from '../leases/service.js';
import { schedulableDevices } from '../leases/repository.js';
import { matchesSelector, preferenceOrder, type DeviceSelector } from '../leases/scheduler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { loadAdmission } from './admission.js';
import type { BudgetService } from './budgets.js';
import { dayBounds, dayOf, periodBounds, periodOf } from './calendar.js';
import { ownOrAdmin } from './invoices.js';
import { billingClassOf, openUsage, plansOfUsers, priceOf, priceUsage } from './metering.js';
import { chargeFor } from './money.js';
import { openCharges } from './spend.js';
import type { LeaseEstimate, UsageGroupBy, UsageRecord, UsageReport, UsageReportRow, UsageSummary } from './view.js';

const recordPosition = idPosition(/^use_[0-9A-Z]{26}$/);
const DAY = /^\d{4}-\d{2}-\d{2}$/;

export interface ReportQuery {
  from?: string | undefined;
  to?: string | undefined;
  groupBy?: UsageGroupBy[] | undefined;
  userId?: string | undefined;
  project?: string | undefined;
}

/** The columns a report groups by, in the order rows and CSV list them. */
const GROUP_COLUMNS: Record<UsageGroupBy, string> = {
  user: 'user_id',
  project: 'project',
  device: 'device_id',
  class: 'billing_class',
  day: 'day',
};

/**
 * The leading columns of the report's index (usage_records_report), in its order. An engine without hash
 * aggregation groups by these up to the last one a report asks for, in index order and without sorting, and the
 * report adds up the finer rows; a grouping by device sorts instead, as one by device would return about a row per
 * record.
 */
const INDEX_ORDER = ['day', 'currency', 'project', 'user_id', 'billing_class'];

/** What the report's aggregate groups by: the columns asked for and the currency, or an index prefix holding them. */
function groupingOf(db: Kysely<DB>, columns: string[]): string[] {
  const asked = [...columns, 'currency'];
  if (aggregatesByHashing(db) || !asked.every((column) => INDEX_ORDER.includes(column))) return asked;
  return INDEX_ORDER.slice(0, Math.max(...asked.map((column) => INDEX_ORDER.indexOf(column))) + 1);
}

interface ReportAccumulator {
  key: Partial<Record<UsageGroupBy, string | null>>;
  currency: string;
  deviceSeconds: number;
  billableSeconds: number;
  cost60: bigint;
}

/** Usage: a period at a glance, the records, grouped reports, and what a lease would cost. */
export class UsageService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #timeZone: string;
  readonly #budgets: BudgetService;

  constructor(deps: { db: Kysely<DB>; clock: () => Date; timeZone: string; budgets: BudgetService }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#timeZone = deps.timeZone;
    this.#budgets = deps.budgets;
  }

  /** A user's period: device time and its cost so far (open leases up to now), the plan's quotas and the budget. */
  async summary(principal: Principal, query: { userId?: string | undefined; period?: string | undefined }): Promise<UsageSummary> {
    const userId = ownOrAdmin(principal, query.userId, "Other users' usage needs the admin role.") ?? principal.userId;
    const user = await this.#db.selectFrom('users').select(['id', 'username']).where('id', '=', userId).executeTakeFirst();
    if (user === undefined) throw new ApiError('not_found', `No user ${userId}.`);
    const now = this.#clock();
    const current = periodOf(now.getTime(), this.#timeZone);
    const period = query.period ?? current;
    const { startMs, endMs } = periodBounds(period, this.#timeZone);
    const plan = (await plansOfUsers(this.#db, [userId])).get(userId)!;
    const rows = await this.#db
      .selectFrom('usage_records')
      .select([
        'billing_class',
        'price_per_minute',
        sql<number>`cast(sum(seconds) as bigint)`.as('seconds'),
        sql<number>`cast(sum(included_seconds) as bigint)`.as('included'),
      ])
      .where('user_id', '=', userId)
      .where('period', '=', period)
      .groupBy(['billing_class', 'price_per_minute'])
      .execute();
    const classes = new Map<string, { billingClass: string; pricePerMinute: number; seconds: number; includedSeconds: number }>();
    const add = (billingClass: string, pricePerMinute: number, seconds: number, included: number) => {
      const key = `${billingClass}\u0000${pricePerMinute}`;
      const entry = classes.get(key) ?? { billingClass, pricePerMinute, seconds: 0, includedSeconds: 0 };
      entry.seconds += seconds;
      entry.includedSeconds += included;
      classes.set(key, entry);
    };
    for (const row of rows) add(row.billing_class, Number(row.price_per_minute), Number(row.seconds), Number(row.included));
    const open = period === current ? await openCharges(this.#db, [userId], period, now, this.#timeZone) : [];
    for (const charge of open) add(charge.usage.billingClass, charge.pricePerMinute, charge.seconds, charge.includedSeconds);
    const list = [...classes.values()]
      .sort((a, b) => (a.billingClass === b.billingClass ? a.pricePerMinute - b.pricePerMinute : a.billingClass < b.billingClass ? -1 : 1))
      .map((entry) => ({
        ...entry,
        amount: Number(chargeFor(BigInt(entry.seconds - entry.includedSeconds) * BigInt(entry.pricePerMinute))),
      }));
    const deviceSeconds = list.reduce((sum, entry) => sum + entry.seconds, 0);
    const includedSecondsUsed = list.reduce((sum, entry) => sum + entry.includedSeconds, 0);
    const usage60 = list.reduce((sum, entry) => sum + BigInt(entry.seconds - entry.includedSeconds) * BigInt(entry.pricePerMinute), 0n);
    const usageAmount = Number(chargeFor(usage60));
    const held = await this.#db
      .selectFrom('lease_devices')
      .innerJoin('leases', 'leases.id', 'lease_devices.lease_id')
      .select([sql<number>`count(*)`.as('devices'), sql<number>`count(distinct leases.id)`.as('leases')])
      .where('lease_devices.released_at', 'is', null)
      .where('leases.user_id', '=', userId)
      .executeTakeFirst();
    return {
      userId,
      username: user.username,
      period,
      periodStart: new Date(startMs).toISOString(),
      periodEnd: new Date(endMs).toISOString(),
      timeZone: this.#timeZone,
      plan: { id: plan.id, name: plan.name },
      currency: plan.currency,
      deviceSeconds,
      includedSeconds: Number(plan.included_minutes) * 60,
      includedSecondsUsed,
      billableSeconds: deviceSeconds - includedSecondsUsed,
      usageAmount,
      monthlyFee: Number(plan.monthly_fee),
      total: usageAmount + Number(plan.monthly_fee),
      openLeases: Number(held?.leases ?? 0),
      classes: list,
      quotas: {
        maxConcurrentDevices: { limit: plan.max_concurrent_devices, used: Number(held?.devices ?? 0) },
        maxLeaseTtlSeconds: { limit: plan.max_lease_ttl_seconds },
        minutesPerPeriod: {
          limit: plan.minutes_per_period === null ? null : Number(plan.minutes_per_period),
          used: Math.floor(deviceSeconds / 60),
        },
      },
      budgets: await this.#budgets.ofUser(userId),
    };
  }

  async records(
    principal: Principal,
    query: {
      userId?: string | undefined;
      project?: string | undefined;
      deviceId?: string | undefined;
      from?: string | undefined;
      to?: string | undefined;
      cursor?: string | undefined;
      limit: number;
    },
  ): Promise<Page<UsageRecord>> {
    const userId = ownOrAdmin(principal, query.userId, "Other users' usage needs the admin role.");
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, recordPosition);
    let select = this.#db.selectFrom('usage_records').selectAll();
    if (userId !== undefined) select = select.where('user_id', '=', userId);
    if (query.project !== undefined) select = select.where('project', '=', query.project);
    if (query.deviceId !== undefined) select = select.where('device_id', '=', query.deviceId);
    if (query.from !== undefined) select = select.where('end_s', '>', Math.floor(Date.parse(query.from) / 1000));
    if (query.to !== undefined) select = select.where('start_s', '<', Math.ceil(Date.parse(query.to) / 1000));
    if (after !== undefined) select = select.where('id', '>', after.id);
    const rows = await select.orderBy('id').limit(query.limit + 1).execute();
    return toPage(
      rows,
      query.limit,
      (row) => ({
        id: row.id,
        leaseId: row.lease_id,
        userId: row.user_id,
        deviceId: row.device_id,
        project: row.project,
        billingClass: row.billing_class,
        planId: row.plan_id,
        currency: row.currency,
        pricePerMinute: Number(row.price_per_minute),
        startedAt: row.started_at,
        endedAt: row.ended_at,
        seconds: Number(row.seconds),
        includedSeconds: Number(row.included_seconds),
        day: row.day,
        period: row.period,
      }),
      (row) => ({ id: row.id }),
    );
  }

  /**
   * Device seconds and cost over whole days of the billing time zone, grouped: the records, aggregated by the
   * database, plus open leases up to now. Each row's amount is rounded once, half up.
   */
  async report(principal: Principal, query: ReportQuery): Promise<UsageReport> {
    const userId = ownOrAdmin(principal, query.userId, "Other users' usage needs the admin role.");
    const now = this.#clock();
    const from = query.from ?? `${periodOf(now.getTime(), this.#timeZone)}-01`;
    const to = query.to ?? dayOf(now.getTime(), this.#timeZone);
    for (const [field, day] of [['from', from], ['to', to]] as const) {
      if (!DAY.test(day) || Number.isNaN(Date.parse(`${day}T00:00:00Z`))) {
        throw new ApiError('validation_failed', `${field} must be a date, YYYY-MM-DD.`, { errors: [{ field, message: 'must be a date' }] });
      }
    }
    if (from > to) {
      throw new ApiError('validation_failed', 'from must not be after to.', { errors: [{ field: 'from', message: 'must not be after to' }] });
    }
    const groupBy = [...new Set(query.groupBy ?? ['user'])];
    const order = (Object.keys(GROUP_COLUMNS) as UsageGroupBy[]).filter((by) => groupBy.includes(by));
    const columns = order.map((by) => GROUP_COLUMNS[by]);
    let select = this.#db
      .selectFrom('usage_records')
      .select([
        ...columns.map((column) => sql.ref<string | null>(column).as(column)),
        'currency',
        sql<number>`cast(sum(seconds) as bigint)`.as('seconds'),
        sql<number>`cast(sum(seconds - included_seconds) as bigint)`.as('billable'),
        sql<string>`cast(sum((seconds - included_seconds) * price_per_minute) as text)`.as('cost60'),
      ] as never[])
      .where('day', '>=', from)
      .where('day', '<=', to);
    if (userId !== undefined) select = select.where('user_id', '=', userId);
    if (query.project !== undefined) select = select.where('project', '=', query.project);
    const grouped = (await select.groupBy(groupingOf(this.#db, columns) as never[]).execute()) as unknown as Record<string, string | number | null>[];
    const groups = new Map<string, ReportAccumulator>();
    const accumulate = (
      source: Record<string, string | number | null>,
      measures: { currency: string; seconds: number; billable: number; cost60: bigint },
    ) => {
      const key: Partial<Record<UsageGroupBy, string | null>> = {};
      for (const by of order) key[by] = (source[GROUP_COLUMNS[by]] as string | null) ?? null;
      const id = JSON.stringify([order.map((by) => key[by]), measures.currency]);
      const group = groups.get(id) ?? { key, currency: measures.currency, deviceSeconds: 0, billableSeconds: 0, cost60: 0n };
      group.deviceSeconds += measures.seconds;
      group.billableSeconds += measures.billable;
      group.cost60 += measures.cost60;
      groups.set(id, group);
    };
    for (const row of grouped) {
      accumulate(row, {
        currency: String(row.currency),
        seconds: Number(row.seconds),
        billable: Number(row.billable),
        cost60: BigInt(String(row.cost60 ?? '0').split('.')[0]!),
      });
    }
    // Open leases count up to now, as the records they will become.
    const { startMs } = dayBounds(from, this.#timeZone);
    const { endMs } = dayBounds(to, this.#timeZone);
    if (endMs > startMs) {
      let open = await openUsage(this.#db, { ...(userId === undefined ? {} : { userIds: [userId] }), ...(query.project === undefined ? {} : { project: query.project }) });
      open = open.filter((usage) => Date.parse(usage.from) < endMs);
      for (const row of await priceUsage(this.#db, open, new Date(Math.min(now.getTime(), endMs)), this.#timeZone)) {
        if (row.day < from || row.day > to) continue;
        accumulate(row as unknown as Record<string, string | number | null>, {
          currency: row.currency,
          seconds: row.seconds,
          billable: row.seconds - row.included_seconds,
          cost60: BigInt(row.seconds - row.included_seconds) * BigInt(row.price_per_minute),
        });
      }
    }
    const usernames = new Map<string, string>();
    if (order.includes('user')) {
      const ids = [...new Set([...groups.values()].map((group) => group.key.user).filter((id): id is string => typeof id === 'string'))];
      if (ids.length > 0) {
        for (const user of await this.#db.selectFrom('users').select(['id', 'username']).where('id', 'in', ids).execute()) {
          usernames.set(user.id, user.username);
        }
      }
    }
    const sorted = [...groups.values()].sort((a, b) => {
      for (const by of order) {
        const x = a.key[by] ?? '';
        const y = b.key[by] ?? '';
        if (x !== y) return x < y ? -1 : 1;
      }
      return a.currency < b.currency ? -1 : a.currency > b.currency ? 1 : 0;
    });
    const rows: UsageReportRow[] = sorted.map((group) => {
      const row: UsageReportRow = {
        currency: group.currency,
        deviceSeconds: group.deviceSeconds,
        billableSeconds: group.billableSeconds,
        amount: Number(chargeFor(group.cost60)),
      };
      if (order.includes('user')) {
        row.userId = group.key.user!;
        row.username = usernames.get(group.key.user!) ?? group.key.user!;
      }
      if (order.includes('project')) row.project = group.key.project ?? null;
      if (order.includes('device')) row.deviceId = group.key.device!;
      if (order.includes('class')) row.billingClass = group.key.class!;
      if (order.includes('day')) row.day = group.key.day!;
      return row;
    });
    const totals = new Map<string, { currency: string; deviceSeconds: number; billableSeconds: number; cost60: bigint }>();
    for (const group of groups.values()) {
      const total = totals.get(group.currency) ?? { currency: group.currency, deviceSeconds: 0, billableSeconds: 0, cost60: 0n };
      total.deviceSeconds += group.deviceSeconds;
      total.billableSeconds += group.billableSeconds;
      total.cost60 += group.cost60;
      totals.set(group.currency, total);
    }
    return {
      from,
      to,
      timeZone: this.#timeZone,
      groupBy: order,
      rows,
      totals: [...totals.values()]
        .sort((a, b) => (a.currency < b.currency ? -1 : 1))
        .map((total) => ({
          currency: total.currency,
          deviceSeconds: total.deviceSeconds,
          billableSeconds: total.billableSeconds,
          amount: Number(chargeFor(total.cost60)),
        })),
    };
  }

  /**
   * What a lease would cost at the caller's prices, and whether their quotas and budgets allow it now: the devices
   * a grant would pick (the dearest matching ones when not enough are free) for the whole TTL, after the included
   * minutes left.
   */
  async estimate(
    principal: Principal,
    input: { selector?: DeviceSelector | undefined; count?: number | undefined; ttlSeconds?: number | undefined; project?: string | null | undefined },
  ): Promise<LeaseEstimate> {
    const selector = normaliseSelector(input.selector ?? {});
    const count = input.count ?? 1;
    const ttlSeconds = input.ttlSeconds ?? 900;
    const now = this.#clock();
    const period = periodOf(now.getTime(), this.#timeZone);
    const devices = await schedulableDevices(this.#db);
    const matching = devices.filter((device) => matchesSelector(selector, device));
    const available = matching.filter((device) => device.available).sort(preferenceOrder);
    const plan = (await plansOfUsers(this.#db, [principal.userId])).get(principal.userId)!;
    const price = (device: (typeof devices)[number]) => priceOf(plan, billingClassOf(device));
    const chosen = available.length >= count ? available.slice(0, count) : [...matching].sort((a, b) => price(b) - price(a)).slice(0, count);
    const classes = new Map<string, { billingClass: string; devices: number; pricePerMinute: number }>();
    for (const device of chosen) {
      const billingClass = billingClassOf(device);
      const entry = classes.get(billingClass) ?? { billingClass, devices: 0, pricePerMinute: priceOf(plan, billingClass) };
      entry.devices += 1;
      classes.set(billingClass, entry);
    }
    const usedIncluded = await this.#db
      .selectFrom('usage_records')
      .select(sql<number | null>`cast(sum(included_seconds) as bigint)`.as('used'))
      .where('user_id', '=', principal.userId)
      .where('period', '=', period)
      .executeTakeFirst();
    const openIncluded = (await openCharges(this.#db, [principal.userId], period, now, this.#timeZone)).reduce(
      (sum, charge) => sum + charge.includedSeconds,
      0,
    );
    const includedSecondsLeft = Math.max(0, Number(plan.included_minutes) * 60 - Number(usedIncluded?.used ?? 0) - openIncluded);
    let included = includedSecondsLeft;
    let cost60 = 0n;
    // The included seconds go to the devices in the order the lease's end meters them: by device id.
    for (const device of [...chosen].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
      const covered = Math.min(included, ttlSeconds);
      included -= covered;
      cost60 += BigInt(ttlSeconds - covered) * BigInt(price(device));
    }
    const request = { userId: principal.userId, project: input.project ?? null, count, ttlSeconds };
    const admission = await loadAdmission(this.#db, [request], now, this.#timeZone);
    const violations = admission.violations(request);
    const budgets = admission.budgetsFor(request, chosen);
    const budgetAllowed = budgets.every((budget) => budget.allowed);
    return {
      currency: plan.currency,
      count,
      ttlSeconds,
      devicesMatching: matching.length,
      devicesAvailable: available.length,
      classes: [...classes.values()].sort((a, b) => (a.billingClass < b.billingClass ? -1 : 1)),
      estimatedCost: Number(chargeFor(cost60)),
      includedSecondsLeft,
      allowed: violations.length === 0 && budgetAllowed && matching.length >= count,
      quota: { allowed: violations.length === 0, violations },
      budget: {
        allowed: budgetAllowed,
        budgets: budgets.map(({ id, scope, currency, remaining }) => ({ id, scope, currency, remaining })),
      },
    };
  }
}
