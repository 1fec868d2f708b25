import type { LeaseEstimate, QuotaUse, UsageGroupBy, UsageReport, UsageSummary } from '@cloudphone/sdk';
import { renderKeyValue, renderTable, type RenderOptions } from './output.js';

/**
 * The ISO 4217 currencies whose minor unit is not the hundredth (every other has two decimals). The server checks
 * the codes; this only decides how many decimals an amount it sent is shown with.
 */
const EXPONENTS: Readonly<Record<string, number>> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0, UYI: 0, VND: 0, VUV: 0,
  XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};

/** The decimals of `currency`'s minor unit: JPY 0, USD 2, KWD 3. */
export function currencyExponent(currency: string): number {
  return EXPONENTS[currency] ?? 2;
}

/** Integer minor units in major units, without rounding: 1234 USD → `12.34`, 1234 JPY → `1234`, 1234 KWD → `1.234`. */
export function formatAmount(minor: number, currency: string): string {
  const exponent = currencyExponent(currency);
  const digits = Math.abs(minor).toFixed(0).padStart(exponent + 1, '0');
  const major = exponent === 0 ? digits : `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
  return minor < 0 ? `-${major}` : major;
}

/** An amount with its currency: `12.34 USD`. */
export function formatMoney(minor: number, currency: string): string {
  return `${formatAmount(minor, currency)} ${currency}`;
}

/** Seconds as `h:mm:ss` (hours unbounded): 48000 → `13:20:00`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${Math.floor(s / 3600)}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

/** `used of limit` for a quota, `used (no limit)` when unlimited. */
function quotaUse(quota: QuotaUse, unit = ''): string {
  return quota.limit === null ? `${quota.used}${unit} (no limit)` : `${quota.used}${unit} of ${quota.limit}${unit}`;
}

/** A percentage with at most one decimal: 2.8 → `2.8%`, 50 → `50%`. */
function percent(value: number): string {
  return `${Math.round(value * 10) / 10}%`;
}

/**
 * A usage summary for people: who, which period and plan, device time, included time used and left, the cost so far
 * (usage, monthly fee, total) in major units, the budgets and quotas, then the cost by billing class.
 */
export function renderUsageSummary(summary: UsageSummary, options: RenderOptions): string {
  const money = (minor: number): string => formatMoney(minor, summary.currency);
  const { maxConcurrentDevices, maxLeaseTtlSeconds, minutesPerPeriod } = summary.quotas;
  const open = summary.openLeases === 0 ? '' : ` (${summary.openLeases} open lease${summary.openLeases === 1 ? '' : 's'} counted up to now)`;
  const includedLeft = Math.max(0, summary.includedSeconds - summary.includedSecondsUsed);
  const lines: Record<string, string> = {
    user: `${summary.username} (${summary.userId})`,
    period: `${summary.period} (${summary.timeZone})`,
    plan: `${summary.plan.name} (${summary.plan.id})`,
    deviceTime: `${formatDuration(summary.deviceSeconds)}${open}`,
    includedTime:
      summary.includedSeconds === 0
        ? 'none'
        : `${formatDuration(summary.includedSecondsUsed)} used, ${formatDuration(includedLeft)} left of ${formatDuration(summary.includedSeconds)}`,
    billableTime: formatDuration(summary.billableSeconds),
    costSoFar: money(summary.usageAmount),
    monthlyFee: money(summary.monthlyFee),
    total: money(summary.total),
  };
  if (summary.budgets.length === 0) lines.budget = 'none';
  for (const [i, budget] of summary.budgets.entries()) {
    const key = summary.budgets.length === 1 ? 'budget' : `budget ${i + 1}`;
    const spent = `${formatMoney(budget.spent, budget.currency)} of ${formatMoney(budget.amount, budget.currency)} spent (${percent(budget.percentUsed)})`;
    lines[key] = `${spent}, ${formatMoney(budget.remaining, budget.currency)} left${budget.exhausted ? ', exhausted' : ''}`;
  }
  lines.concurrentDevices = quotaUse(maxConcurrentDevices);
  lines.minutes = quotaUse(minutesPerPeriod);
  lines.leaseTtl = maxLeaseTtlSeconds.limit === null ? 'no limit' : `at most ${formatDuration(maxLeaseTtlSeconds.limit)}`;
  const head = renderKeyValue(labelled(lines), [], options);
  if (summary.classes.length === 0) return head;
  const classes = summary.classes.map((c) => ({
    class: c.billingClass,
    time: formatDuration(c.seconds),
    included: formatDuration(c.includedSeconds),
    perMinute: money(c.pricePerMinute),
    amount: money(c.amount),
  }));
  return `${head}\n${renderTable(classes, ['class', 'time', 'included', 'perMinute', 'amount'], options)}`;
}

/** camelCase keys as words (`deviceTime` → `Device time`), for key/value blocks. */
function labelled(lines: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(lines).map(([key, value]) => {
      const words = key.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
      return [words.charAt(0).toUpperCase() + words.slice(1).replace(/\bttl\b/, 'TTL'), value];
    }),
  );
}

/** The report columns of each grouping, in the order the server's CSV has them. */
const GROUP_COLUMNS: readonly (readonly [UsageGroupBy, string])[] = [
  ['user', 'username'],
  ['project', 'project'],
  ['device', 'deviceId'],
  ['class', 'billingClass'],
  ['day', 'day'],
];

/** A usage report as a table: the grouped columns, then device time, billable time and amount; then the totals. */
export function renderUsageReport(report: UsageReport, options: RenderOptions): string {
  const grouped = GROUP_COLUMNS.filter(([group]) => report.groupBy.includes(group)).map(([, column]) => column);
  const measures = (row: { currency: string; deviceSeconds: number; billableSeconds: number; amount: number }) => ({
    deviceTime: formatDuration(row.deviceSeconds),
    billableTime: formatDuration(row.billableSeconds),
    amount: formatMoney(row.amount, row.currency),
  });
  const columns = ['deviceTime', 'billableTime', 'amount'];
  const rows = report.rows.map((row) => ({ ...row, ...measures(row) }));
  const totals = report.totals.map((total) => ({ totals: total.currency, ...measures(total) }));
  return `${renderTable(rows, [...grouped, ...columns], options)}\n${renderTable(totals, ['totals', ...columns], options)}`;
}

/**
 * Whether the budgets let the lease start, and whether they last its whole TTL: a budget that runs out ends the
 * lease then.
 */
function budgetVerdict(estimate: LeaseEstimate): string {
  if (!estimate.budget.allowed) return 'cannot pay';
  const short = estimate.budget.budgets.some((b) => b.currency === estimate.currency && b.remaining < estimate.estimatedCost);
  return short ? 'can pay for a start, not the whole TTL: the lease ends when a budget runs out' : 'can pay';
}

/** What a lease estimate says: its cost and prices, included time left, and what would refuse the lease. */
export function renderEstimate(estimate: LeaseEstimate, options: RenderOptions): string {
  const money = (minor: number): string => formatMoney(minor, estimate.currency);
  const lines: Record<string, string> = {
    allowed: estimate.allowed ? 'yes' : 'no',
    estimatedCost: `${money(estimate.estimatedCost)} for ${estimate.count} device${estimate.count === 1 ? '' : 's'} × ${formatDuration(estimate.ttlSeconds)}`,
    devices: `${estimate.devicesMatching} matching, ${estimate.devicesAvailable} free now`,
    includedTimeLeft: formatDuration(estimate.includedSecondsLeft),
    quotas: estimate.quota.allowed ? 'within' : 'exceeded',
    budgets:
      estimate.budget.budgets.length === 0
        ? 'none'
        : `${budgetVerdict(estimate)}: ${estimate.budget.budgets
            .map((b) => `${b.scope} budget ${b.id}, ${formatMoney(b.remaining, b.currency)} left`)
            .join('; ')}`,
  };
  const parts = [renderKeyValue(labelled(lines), [], options)];
  if (estimate.classes.length > 0) {
    const classes = estimate.classes.map((c) => ({ class: c.billingClass, devices: c.devices, perMinute: money(c.pricePerMinute) }));
    parts.push(renderTable(classes, ['class', 'devices', 'perMinute'], options));
  }
  if (estimate.quota.violations.length > 0) {
    parts.push(renderTable(estimate.quota.violations, ['name', 'limit', 'current', 'requested'], options));
  }
  return parts.join('\n');
}
