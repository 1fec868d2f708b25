import type { BudgetsTable, InvoicesTable, PlansTable } from '../db/schema.js';
import type { components } from '../generated/types.js';

type Schemas = components['schemas'];
export type Plan = Schemas['Plan'];
export type PlanSummary = Schemas['PlanSummary'];
export type UserPlan = Schemas['UserPlan'];
export type Budget = Schemas['Budget'];
export type BudgetSummary = Schemas['BudgetSummary'];
export type Invoice = Schemas['Invoice'];
export type InvoicePreview = Schemas['InvoicePreview'];
export type InvoiceLine = Schemas['InvoiceLine'];
export type InvoiceSummary = Schemas['InvoiceSummary'];
export type UsageSummary = Schemas['UsageSummary'];
export type UsageRecord = Schemas['UsageRecord'];
export type UsageReport = Schemas['UsageReport'];
export type UsageReportRow = Schemas['UsageReportRow'];
export type UsageGroupBy = Schemas['UsageGroupBy'];
export type LeaseEstimate = Schemas['LeaseEstimate'];

export function toPlan(row: PlansTable, users: number): Plan {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    currency: row.currency,
    monthlyFee: Number(row.monthly_fee),
    prices: JSON.parse(row.prices) as Record<string, number>,
    defaultPrice: Number(row.default_price),
    includedMinutes: Number(row.included_minutes),
    quotas: {
      maxConcurrentDevices: row.max_concurrent_devices,
      maxLeaseTtlSeconds: row.max_lease_ttl_seconds,
      minutesPerPeriod: row.minutes_per_period === null ? null : Number(row.minutes_per_period),
    },
    isDefault: row.is_default === 1,
    users,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toPlanSummary(row: PlansTable): PlanSummary {
  return { id: row.id, name: row.name, currency: row.currency, isDefault: row.is_default === 1 };
}

export function toBudgetSummary(row: BudgetsTable): BudgetSummary {
  return {
    id: row.id,
    scope: row.scope,
    userId: row.scope === 'user' ? row.target : null,
    project: row.scope === 'project' ? row.target : null,
    currency: row.currency,
    amount: Number(row.amount),
    thresholds: JSON.parse(row.thresholds) as number[],
  };
}

/** A budget with what its target spent this period (`spent60`: the exact charge times 60). */
export function toBudget(row: BudgetsTable, use: { period: string; spent60: bigint; username: string | null }): Budget {
  const amount = Number(row.amount);
  // Rounded half up, as invoice lines are.
  const spent = Number((use.spent60 + 30n) / 60n);
  return {
    ...toBudgetSummary(row),
    username: use.username,
    period: use.period,
    spent,
    remaining: amount - spent,
    percentUsed: amount === 0 ? (use.spent60 > 0n ? 100 : 0) : Math.round((Number(use.spent60) / 60 / amount) * 10_000) / 100,
    exhausted: use.spent60 >= BigInt(amount) * 60n,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toInvoice(row: InvoicesTable): Invoice {
  return {
    id: row.id,
    number: row.number === null ? null : Number(row.number),
    userId: row.user_id,
    username: row.username,
    period: row.period,
    periodStart: row.period_start,
    periodEnd: row.period_end,
    status: row.status,
    currency: row.currency,
    planId: row.plan_id,
    planName: row.plan_name,
    lines: JSON.parse(row.lines) as InvoiceLine[],
    usageSeconds: Number(row.usage_seconds),
    total: Number(row.total),
    createdAt: row.created_at,
    finalizedAt: row.finalized_at,
    voidedAt: row.voided_at,
    voidReason: row.void_reason,
  };
}

export function toInvoiceSummary(row: InvoicesTable): InvoiceSummary {
  return {
    id: row.id,
    number: row.number === null ? null : Number(row.number),
    userId: row.user_id,
    period: row.period,
    status: row.status,
    currency: row.currency,
    total: Number(row.total),
  };
}
