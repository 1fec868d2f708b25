import type { LeaseEstimate, UsageReport, UsageSummary } from '@cloudphone/sdk';
import { describe, expect, it } from 'vitest';
import { currencyExponent, formatAmount, formatDuration, formatMoney, renderEstimate, renderUsageReport, renderUsageSummary } from '../src/lib/billing.js';

const PLAIN = { color: false };

const summary: UsageSummary = {
  userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
  username: 'alice',
  period: '2026-12',
  periodStart: '2026-12-01T00:00:00Z',
  periodEnd: '2027-01-01T00:00:00Z',
  timeZone: 'UTC',
  plan: { id: 'pln_01JDX9P1A2B3C4D5E6F7G8H9J0', name: 'Team' },
  currency: 'EUR',
  deviceSeconds: 48000,
  includedSeconds: 36000,
  includedSecondsUsed: 36000,
  billableSeconds: 12000,
  usageAmount: 1400,
  monthlyFee: 2900,
  total: 4300,
  openLeases: 1,
  classes: [
    { billingClass: 'flagship', seconds: 30000, includedSeconds: 24000, pricePerMinute: 12, amount: 1200 },
    { billingClass: 'emulator', seconds: 18000, includedSeconds: 12000, pricePerMinute: 2, amount: 200 },
  ],
  quotas: {
    maxConcurrentDevices: { limit: 10, used: 2 },
    maxLeaseTtlSeconds: { limit: 14400 },
    minutesPerPeriod: { limit: null, used: 800 },
  },
  budgets: [
    {
      id: 'bdg_01JDXB4C5D6E7F8G9H0J1K2M3N',
      scope: 'user',
      userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
      username: 'alice',
      project: null,
      currency: 'EUR',
      amount: 50000,
      thresholds: [50, 80, 100],
      period: '2026-12',
      spent: 1400,
      remaining: 48600,
      percentUsed: 2.8,
      exhausted: false,
      createdAt: '2026-12-01T09:05:00Z',
      updatedAt: '2026-12-01T09:05:00Z',
    },
  ],
};

describe('money and time', () => {
  it('knows the exponent of currencies whose minor unit is not the hundredth', () => {
    expect([currencyExponent('JPY'), currencyExponent('USD'), currencyExponent('KWD'), currencyExponent('CLF')]).toEqual([0, 2, 3, 4]);
  });

  it('writes minor units in major units without rounding', () => {
    expect(formatAmount(1234, 'USD')).toBe('12.34');
    expect(formatAmount(5, 'USD')).toBe('0.05');
    expect(formatAmount(0, 'EUR')).toBe('0.00');
    expect(formatAmount(1234, 'JPY')).toBe('1234');
    expect(formatAmount(1234, 'KWD')).toBe('1.234');
    expect(formatAmount(7, 'KWD')).toBe('0.007');
    expect(formatAmount(-250, 'EUR')).toBe('-2.50');
    expect(formatAmount(9_007_199_254_740_991, 'USD')).toBe('90071992547409.91');
    expect(formatMoney(4300, 'EUR')).toBe('43.00 EUR');
  });

  it('writes seconds as h:mm:ss with hours unbounded', () => {
    expect([0, 59, 61, 3600, 48000, 360_000 + 7].map(formatDuration)).toEqual(['0:00:00', '0:00:59', '0:01:01', '1:00:00', '13:20:00', '100:00:07']);
  });
});

describe('usage summary', () => {
  it('shows plan, time, cost, fee, total, budget and quotas, then the classes', () => {
    expect(renderUsageSummary(summary, PLAIN)).toBe(
      [
        'User                alice (usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA)',
        'Period              2026-12 (UTC)',
        'Plan                Team (pln_01JDX9P1A2B3C4D5E6F7G8H9J0)',
        'Device time         13:20:00 (1 open lease counted up to now)',
        'Included time       10:00:00 used, 0:00:00 left of 10:00:00',
        'Billable time       3:20:00',
        'Cost so far         14.00 EUR',
        'Monthly fee         29.00 EUR',
        'Total               43.00 EUR',
        'Budget              14.00 EUR of 500.00 EUR spent (2.8%), 486.00 EUR left',
        'Concurrent devices  2 of 10',
        'Minutes             800 (no limit)',
        'Lease TTL           at most 4:00:00',
        '',
        'CLASS     TIME     INCLUDED  PER MINUTE  AMOUNT',
        'flagship  8:20:00  6:40:00   0.12 EUR    12.00 EUR',
        'emulator  5:00:00  3:20:00   0.02 EUR    2.00 EUR',
        '',
      ].join('\n'),
    );
  });

  it('says when there is no budget, no included time and no limit, and an exhausted budget', () => {
    const spent = { ...summary.budgets[0]!, spent: 50100, remaining: -100, percentUsed: 100.2, exhausted: true };
    const text = renderUsageSummary({ ...summary, includedSeconds: 0, includedSecondsUsed: 0, openLeases: 0, classes: [], budgets: [spent] }, PLAIN);
    expect(text).toContain('Budget              501.00 EUR of 500.00 EUR spent (100.2%), -1.00 EUR left, exhausted\n');
    expect(text).toContain('Included time       none\n');
    expect(text).toContain('Device time         13:20:00\n');
    expect(text).not.toContain('CLASS');
    const none = renderUsageSummary({ ...summary, budgets: [], quotas: { ...summary.quotas, maxLeaseTtlSeconds: { limit: null } } }, PLAIN);
    expect(none).toContain('Budget              none\n');
    expect(none).toContain('Lease TTL           no limit\n');
  });
});

describe('usage report', () => {
  it('shows the grouped columns in the CSV order, the measures, then the totals', () => {
    const report: UsageReport = {
      from: '2026-12-01',
      to: '2026-12-07',
      timeZone: 'UTC',
      groupBy: ['day', 'project'],
      rows: [
        { project: 'checkout-app', day: '2026-12-06', currency: 'EUR', deviceSeconds: 570, billableSeconds: 570, amount: 114 },
        { project: null, day: '2026-12-07', currency: 'JPY', deviceSeconds: 3600, billableSeconds: 0, amount: 0 },
      ],
      totals: [
        { currency: 'EUR', deviceSeconds: 570, billableSeconds: 570, amount: 114 },
        { currency: 'JPY', deviceSeconds: 3600, billableSeconds: 0, amount: 0 },
      ],
    };
    expect(renderUsageReport(report, PLAIN)).toBe(
      [
        'PROJECT       DAY         DEVICE TIME  BILLABLE TIME  AMOUNT',
        'checkout-app  2026-12-06  0:09:30      0:09:30        1.14 EUR',
        '-             2026-12-07  1:00:00      0:00:00        0 JPY',
        '',
        'TOTALS  DEVICE TIME  BILLABLE TIME  AMOUNT',
        'EUR     0:09:30      0:09:30        1.14 EUR',
        'JPY     1:00:00      0:00:00        0 JPY',
        '',
      ].join('\n'),
    );
  });
});

describe('lease estimate', () => {
  const estimate: LeaseEstimate = {
    currency: 'KWD',
    count: 2,
    ttlSeconds: 1800,
    devicesMatching: 5,
    devicesAvailable: 3,
    classes: [{ billingClass: 'flagship', devices: 2, pricePerMinute: 12 }],
    estimatedCost: 720,
    includedSecondsLeft: 0,
    allowed: false,
    quota: { allowed: false, violations: [{ name: 'maxConcurrentDevices', limit: 2, current: 1, requested: 2 }] },
    budget: { allowed: true, budgets: [{ id: 'bdg_01JDXB4C5D6E7F8G9H0J1K2M3N', scope: 'user', remaining: 48600, currency: 'KWD' }] },
  };

  it('shows whether it is allowed, the cost, the prices, the budgets and the quotas exceeded', () => {
    expect(renderEstimate(estimate, PLAIN)).toBe(
      [
        'Allowed             no',
        'Estimated cost      0.720 KWD for 2 devices × 0:30:00',
        'Devices             5 matching, 3 free now',
        'Included time left  0:00:00',
        'Quotas              exceeded',
        'Budgets             can pay: user budget bdg_01JDXB4C5D6E7F8G9H0J1K2M3N, 48.600 KWD left',
        '',
        'CLASS     DEVICES  PER MINUTE',
        'flagship  2        0.012 KWD',
        '',
        'NAME                  LIMIT  CURRENT  REQUESTED',
        'maxConcurrentDevices  2      1        2',
        '',
      ].join('\n'),
    );
  });

  it('says when a budget pays for the start of the lease but not its whole TTL', () => {
    const short = { ...estimate, budget: { allowed: true, budgets: [{ ...estimate.budget.budgets[0]!, remaining: 500 }] } };
    expect(renderEstimate(short, PLAIN)).toContain(
      'Budgets             can pay for a start, not the whole TTL: the lease ends when a budget runs out: user budget bdg_01JDXB4C5D6E7F8G9H0J1K2M3N, 0.500 KWD left',
    );
  });

  it('says when no budget pays and every quota holds', () => {
    const text = renderEstimate({ ...estimate, allowed: true, classes: [], quota: { allowed: true, violations: [] }, budget: { allowed: true, budgets: [] } }, PLAIN);
    expect(text).toBe(
      [
        'Allowed             yes',
        'Estimated cost      0.720 KWD for 2 devices × 0:30:00',
        'Devices             5 matching, 3 free now',
        'Included time left  0:00:00',
        'Quotas              within',
        'Budgets             none',
        '',
      ].join('\n'),
    );
  });
});
