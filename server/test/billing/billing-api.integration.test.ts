import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudPhone, PaymentRequiredError } from '../../../sdk/src/index.js';
import { allDevices, eventually, type Json } from '../api/device-helpers.js';
import { ADMIN_PASSWORD, startApi, type Api, type Caller } from '../api/harness.js';
import { testEngine } from '../helpers/database.js';

/** How often the leader checks budgets: the most device time a spent budget may keep paying for, with the check. */
const CHECK_SECONDS = 1;
/** Minor units (cents) per device-minute of the class `virtual`: 10 per second. */
const PRICE = 600;
/** Exactly the minimum a lease must be able to pay for (60 s of one device), so the budget is spent 60 s in. */
const AMOUNT = 600;
/** Device seconds a cost in minor units pays for at `PRICE`. */
const secondsOf = (amount: number) => (amount * 60) / PRICE;

async function onlineDevices(api: Api, count: number): Promise<Json[]> {
  return eventually(async () => {
    const online = await allDevices(api, api.admin.token, { state: 'online' });
    return online.length === count && online.every((d) => d.available) ? online : undefined;
  }, 30_000, `${count} devices online`);
}

async function eventsOf(api: Api, token: string, type: string): Promise<Json[]> {
  const page = await api.call('listEvents', { token, query: { type: [type], limit: 100 } });
  expect(page.status).toBe(200);
  return page.body.data;
}

function sdk(api: Api, caller: Caller): CloudPhone {
  return new CloudPhone({ baseUrl: api.url, token: caller.token, maxRetries: 0 });
}

// A minute of real time: a budget must pay for a lease's first minute, so the shortest lease it ends runs one. The
// enforcement's queries run on both engines in scenarios.test.ts; what this adds, the overspend against a real
// clock, does not depend on the engine, so it runs once.
describe.skipIf(testEngine === 'postgres')('a budget that runs out (real time)', () => {
  let api: Api;
  let member: Caller;
  let other: Caller;
  /** Leases two devices at once for a project with a budget of its own. */
  let team: Caller;

  beforeAll(async () => {
    api = await startApi({ virtualDevices: 3, billingCheckSeconds: CHECK_SECONDS, clock: () => new Date() });
    member = await api.addCaller('member');
    other = await api.addCaller('member');
    team = await api.addCaller('member');
    await onlineDevices(api, 3);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  it('ends the lease it pays for within the check interval, refuses the next with 402, and reports the usage', { timeout: 150_000 }, async () => {
    const admin = api.admin.token;
    const plan = await api.call('createPlan', {
      token: admin,
      body: { name: 'Metered', description: 'Virtual devices by the second', currency: 'USD', prices: { virtual: PRICE } },
    });
    expect(plan.status).toBe(201);
    expect(plan.body).toMatchObject({ currency: 'USD', prices: { virtual: PRICE }, defaultPrice: 0, isDefault: false, users: 0 });
    const assigned = await api.call('assignPlan', { token: admin, path: { userId: member.userId }, body: { planId: plan.body.id } });
    expect(assigned.status).toBe(200);
    expect(assigned.body).toMatchObject({ userId: member.userId, assigned: true, plan: { id: plan.body.id, users: 1 } });
    expect((await api.call('getUserPlan', { token: member.token, path: { userId: member.userId } })).body.plan.id).toBe(plan.body.id);
    expect((await api.call('getPlan', { token: member.token, path: { planId: plan.body.id } })).status).toBe(200);
    // Another member's plan is not theirs to see, nor is another member.
    expect((await api.call('getPlan', { token: other.token, path: { planId: plan.body.id } })).body.code).toBe('plan_not_found');
    expect((await api.call('getUserPlan', { token: other.token, path: { userId: member.userId } })).status).toBe(404);

    const budget = await api.call('createBudget', {
      token: admin,
      body: { scope: 'user', userId: member.userId, currency: 'USD', amount: AMOUNT },
    });
    expect(budget.status).toBe(201);
    expect(budget.body).toMatchObject({ scope: 'user', userId: member.userId, thresholds: [50, 80, 100], spent: 0, remaining: AMOUNT, exhausted: false });

    // What a 10-minute lease would cost: the budget affords its first minute.
    const estimate = await api.call('estimateLease', { token: member.token, body: { count: 1, ttlSeconds: 600, project: 'checkout' } });
    expect(estimate.status).toBe(200);
    expect(estimate.body).toMatchObject({
      currency: 'USD',
      count: 1,
      ttlSeconds: 600,
      devicesMatching: 3,
      devicesAvailable: 3,
      // The device a grant would pick.
      classes: [{ billingClass: 'virtual', devices: 1, pricePerMinute: PRICE }],
      estimatedCost: 10 * PRICE,
      includedSecondsLeft: 0,
      allowed: true,
      quota: { allowed: true, violations: [] },
      budget: { allowed: true, budgets: [{ id: budget.body.id, scope: 'user', remaining: AMOUNT, currency: 'USD' }] },
    });
    expect(await sdk(api, member).leases.estimate({ count: 1, ttlSeconds: 600, project: 'checkout' })).toEqual(estimate.body);

    // At the same time, two devices for a project whose budget pays for a minute of each.
    expect((await api.call('assignPlan', { token: admin, path: { userId: team.userId }, body: { planId: plan.body.id } })).status).toBe(200);
    const projectBudget = await api.call('createBudget', {
      token: admin,
      body: { scope: 'project', project: 'burst', currency: 'USD', amount: 2 * AMOUNT, thresholds: [100] },
    });
    expect(projectBudget.status).toBe(201);

    const created = await api.call('createLease', { token: member.token, body: { count: 1, ttlSeconds: 600, project: 'checkout' } });
    expect(created.status).toBe(201);
    expect(created.body.project).toBe('checkout');
    const burst = await api.call('createLease', { token: team.token, body: { count: 2, ttlSeconds: 600, project: 'burst' } });
    expect(burst.status).toBe(201);
    const leaseId = created.body.id as string;
    const endOf = (token: string, id: string) =>
      eventually(async () => {
        const got = await api.call('getLease', { token, path: { leaseId: id } });
        return got.body.status === 'granted' ? undefined : got.body;
      }, 90_000, 'a budget to end the lease');
    const [ended, burstEnded] = await Promise.all([endOf(member.token, leaseId), endOf(team.token, burst.body.id)]);
    expect(ended).toMatchObject({ status: 'released', endReason: 'budget_exhausted' });
    expect(burstEnded).toMatchObject({ status: 'released', endReason: 'budget_exhausted' });

    const projectSpent = (await api.call('getBudget', { token: admin, path: { budgetId: projectBudget.body.id } })).body.spent as number;
    const projectOverspend = secondsOf(projectSpent - 2 * AMOUNT) / 2;
    console.log(
      `project budget overspend with billingCheckSeconds ${CHECK_SECONDS}: ${projectSpent - 2 * AMOUNT} minor units = ` +
        `${projectOverspend} s per device over 2 devices ` +
        `(wall time ${((Date.parse(burstEnded.endedAt) - Date.parse(burstEnded.grantedAt)) / 1000).toFixed(3)} s)`,
    );
    expect(projectOverspend).toBeGreaterThanOrEqual(0);
    expect(projectOverspend).toBeLessThanOrEqual(CHECK_SECONDS + 2);

    // Every started second of the lease, once: the device's grant floored to the second, the end ceiled.
    const records = await api.call('listUsageRecords', { token: member.token, query: { limit: 100 } });
    expect(records.status).toBe(200);
    const seconds = records.body.data.reduce((sum: number, r: Json) => sum + r.seconds, 0);
    expect(seconds).toBe(Math.ceil(Date.parse(ended.endedAt) / 1000) - Math.floor(Date.parse(ended.grantedAt) / 1000));
    for (const record of records.body.data) {
      expect(record).toMatchObject({
        leaseId,
        userId: member.userId,
        deviceId: created.body.devices[0].id,
        project: 'checkout',
        billingClass: 'virtual',
        planId: plan.body.id,
        currency: 'USD',
        pricePerMinute: PRICE,
        includedSeconds: 0,
      });
      expect(Date.parse(record.endedAt) - Date.parse(record.startedAt)).toBe(record.seconds * 1000);
    }

    const spentBudget = await api.call('getBudget', { token: member.token, path: { budgetId: budget.body.id } });
    const spent = spentBudget.body.spent as number;
    expect(spent).toBe(Math.ceil((seconds * PRICE) / 60));
    expect(spentBudget.body).toMatchObject({ exhausted: true, remaining: AMOUNT - spent });
    const overspend = secondsOf(spent - AMOUNT);
    console.log(
      `budget overspend with billingCheckSeconds ${CHECK_SECONDS}: ${spent - AMOUNT} minor units = ${overspend} device seconds ` +
        `(lease billed ${seconds} s; wall time ${((Date.parse(ended.endedAt) - Date.parse(ended.grantedAt)) / 1000).toFixed(3)} s)`,
    );
    expect(overspend).toBeGreaterThanOrEqual(0);
    expect(overspend).toBeLessThanOrEqual(CHECK_SECONDS + 2);

    // The next lease cannot pay for its first minute.
    const refused = await api.call('createLease', { token: member.token, body: { count: 1, ttlSeconds: 600 } });
    expect([refused.status, refused.body.code]).toEqual([402, 'budget_exhausted']);
    expect(refused.body.budget).toEqual({ id: budget.body.id, scope: 'user', currency: 'USD', amount: AMOUNT, spent });
    const waiting = await api.call('createLease', { token: member.token, body: { count: 1, waitSeconds: 30 } });
    expect([waiting.status, waiting.body.code]).toEqual([402, 'budget_exhausted']);
    const error = await sdk(api, member).leases.create({ count: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PaymentRequiredError);
    expect((error as PaymentRequiredError).budget).toEqual(refused.body.budget);
    const after = await api.call('estimateLease', { token: member.token, body: { count: 1 } });
    expect(after.body).toMatchObject({ allowed: false, budget: { allowed: false, budgets: [{ id: budget.body.id, remaining: AMOUNT - spent }] } });

    // The period at a glance, for the member and for the admin.
    const usage = await api.call('getUsage', { token: member.token });
    expect(usage.status).toBe(200);
    expect(usage.body).toMatchObject({
      userId: member.userId,
      username: member.username,
      plan: { id: plan.body.id, name: 'Metered' },
      currency: 'USD',
      deviceSeconds: seconds,
      includedSeconds: 0,
      includedSecondsUsed: 0,
      billableSeconds: seconds,
      usageAmount: spent,
      monthlyFee: 0,
      total: spent,
      openLeases: 0,
      classes: [{ billingClass: 'virtual', seconds, includedSeconds: 0, pricePerMinute: PRICE, amount: spent }],
      quotas: { maxConcurrentDevices: { limit: null, used: 0 }, minutesPerPeriod: { limit: null, used: Math.floor(seconds / 60) } },
      budgets: [{ id: budget.body.id, spent, exhausted: true }],
    });
    expect((await api.call('getUsage', { token: admin, query: { userId: member.userId } })).body).toEqual(usage.body);

    // Reports: JSON, and the same as CSV (amounts in dollars).
    const report = await api.call('getUsageReport', { token: member.token, query: { groupBy: ['project', 'class'] } });
    expect(report.status).toBe(200);
    expect(report.body.rows).toEqual([{ project: 'checkout', billingClass: 'virtual', currency: 'USD', deviceSeconds: seconds, billableSeconds: seconds, amount: spent }]);
    expect(report.body.totals).toEqual([{ currency: 'USD', deviceSeconds: seconds, billableSeconds: seconds, amount: spent }]);
    const csv = await api.call('getUsageReport', {
      token: member.token,
      query: { groupBy: ['project', 'class'], format: 'csv' },
      headers: { accept: 'text/csv' },
    });
    expect(csv.status).toBe(200);
    expect(csv.contentType).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="usage-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv"$/);
    const lines = (csv.body as string).split(/\r?\n/).filter((line) => line !== '');
    expect(lines).toEqual([
      'project,billing_class,currency,device_seconds,billable_seconds,amount',
      `checkout,virtual,USD,${seconds},${seconds},${(spent / 100).toFixed(2)}`,
    ]);
    expect(await sdk(api, member).usage.getReportCsv({ groupBy: ['project', 'class'] })).toBe(csv.body);
    const byUser = await api.call('getUsageReport', { token: admin, query: { groupBy: ['user'] } });
    expect(byUser.body.rows).toContainEqual(
      { userId: member.userId, username: member.username, currency: 'USD', deviceSeconds: seconds, billableSeconds: seconds, amount: spent },
    );
    expect(byUser.body.rows.find((row: Json) => row.userId === team.userId)).toMatchObject({ amount: projectSpent });

    // The thresholds, each once, then the exhaustion with the lease it ended.
    const ofBudget = (events: Json[], id: string) => events.filter((e) => e.subject.id === id);
    const reached = await eventsOf(api, admin, 'usage.threshold_reached');
    const thresholds = ofBudget(reached, budget.body.id);
    expect(thresholds.map((e) => e.data.threshold).sort((a, b) => a - b)).toEqual([50, 80, 100]);
    for (const event of thresholds) expect(event).toMatchObject({ subject: { type: 'budget', id: budget.body.id }, data: { budget: { id: budget.body.id } } });
    expect(ofBudget(reached, projectBudget.body.id).map((e) => e.data.threshold)).toEqual([100]);
    const allExhausted = await eventsOf(api, admin, 'budget.exhausted');
    expect(ofBudget(allExhausted, projectBudget.body.id)).toMatchObject([{ data: { leaseIds: [burst.body.id], budget: { scope: 'project', project: 'burst' } } }]);
    const exhausted = ofBudget(allExhausted, budget.body.id);
    expect(exhausted).toHaveLength(1);
    expect(exhausted[0]).toMatchObject({ subject: { type: 'budget', id: budget.body.id }, data: { leaseIds: [leaseId], budget: { id: budget.body.id, amount: AMOUNT } } });
    expect(exhausted[0]!.data.spent).toBeGreaterThanOrEqual(AMOUNT);
  });

  it("shows members only their own usage and budgets", async () => {
    const theirs = await api.call('getUsage', { token: other.token, query: { userId: member.userId } });
    expect([theirs.status, theirs.body.code]).toEqual([403, 'insufficient_role']);
    const records = await api.call('listUsageRecords', { token: other.token, query: { userId: member.userId } });
    expect([records.status, records.body.code]).toEqual([403, 'insufficient_role']);
    const report = await api.call('getUsageReport', { token: other.token, query: { userId: member.userId } });
    expect([report.status, report.body.code]).toEqual([403, 'insufficient_role']);
    const preview = await api.call('previewInvoice', { token: other.token, query: { userId: member.userId } });
    expect([preview.status, preview.body.code]).toEqual([403, 'insufficient_role']);
    // Without a user, each sees their own: nothing.
    expect((await api.call('listUsageRecords', { token: other.token })).body.data).toEqual([]);
    expect((await api.call('getUsageReport', { token: other.token })).body.rows).toEqual([]);
    expect((await api.call('getUsage', { token: other.token })).body).toMatchObject({ userId: other.userId, deviceSeconds: 0, budgets: [] });

    const budgets = await api.call('listBudgets', { token: member.token });
    expect(budgets.body.data.map((b: Json) => b.userId)).toEqual([member.userId]);
    expect((await api.call('listBudgets', { token: other.token })).body.data).toEqual([]);
    const budgetId = budgets.body.data[0].id as string;
    const hidden = await api.call('getBudget', { token: other.token, path: { budgetId } });
    expect([hidden.status, hidden.body.code]).toEqual([404, 'budget_not_found']);
    const raised = await api.call('updateBudget', { token: member.token, path: { budgetId }, body: { amount: 1_000_000 } });
    expect([raised.status, raised.body.code]).toEqual([403, 'insufficient_role']);
  });
});

describe('invoices at the end of a period (manual clock)', () => {
  let api: Api;
  let member: Caller;
  let other: Caller;
  let dir: string;
  /** The first instant of the month after the one the clock started in: the period under test ends there. */
  let boundary: number;

  beforeAll(async () => {
    api = await startApi({ virtualDevices: 2, billingCheckSeconds: CHECK_SECONDS });
    const start = api.clock.now();
    boundary = Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1);
    // Ten minutes before the period ends; the admin's first token has expired by then.
    api.clock.advance((boundary - start.getTime()) / 1000 - 600);
    api.admin.token = (await api.login('admin', ADMIN_PASSWORD)).accessToken;
    member = await api.addCaller('member');
    other = await api.addCaller('member');
    await onlineDevices(api, 2);
    dir = mkdtempSync(join(tmpdir(), 'cloudphone-invoice-'));
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** Moves the clock to `at` (epoch ms). */
  function moveTo(at: number): void {
    api.clock.advance((at - api.clock.now().getTime()) / 1000);
  }

  it('cuts a lease open at the period end, drafts the lines of the preview; adjusts, finalizes with number 1, voids, renders PDF and CSV', { timeout: 90_000 }, async () => {
    const admin = api.admin.token;
    const plan = await api.call('createPlan', {
      token: admin,
      body: { name: 'Monthly', currency: 'USD', monthlyFee: 999, prices: { virtual: 120 }, includedMinutes: 1 },
    });
    expect(plan.status).toBe(201);
    expect((await api.call('assignPlan', { token: admin, path: { userId: member.userId }, body: { planId: plan.body.id } })).status).toBe(200);

    // One lease used and released in the period, one still open when it ends.
    const first = await api.call('createLease', { token: member.token, body: { count: 1, ttlSeconds: 900 } });
    expect(first.status).toBe(201);
    api.clock.advance(150);
    const released = await api.call('releaseLease', { token: member.token, path: { leaseId: first.body.id } });
    expect(released.body.status).toBe('released');
    const firstSeconds = Math.ceil(Date.parse(released.body.endedAt) / 1000) - Math.floor(Date.parse(released.body.grantedAt) / 1000);
    // 150 s, or 151 when the grant was not on a whole second.
    expect(firstSeconds - 150).toBeLessThanOrEqual(1);
    const open = await api.call('createLease', { token: member.token, body: { count: 1, ttlSeconds: 900 } });
    expect(open.status).toBe(201);
    const openSeconds = boundary / 1000 - Math.floor(Date.parse(open.body.grantedAt) / 1000);
    const seconds = firstSeconds + openSeconds;

    // The last millisecond of the period: the open lease counts up to its end.
    moveTo(boundary - 1);
    const preview = await api.call('previewInvoice', { token: member.token });
    expect(preview.status).toBe(200);
    const usageAmount = Math.round((seconds * 120) / 60);
    expect(preview.body.lines).toEqual([
      expect.objectContaining({ kind: 'usage', billingClass: 'virtual', seconds, pricePerMinute: 120, amount: usageAmount }),
      expect.objectContaining({ kind: 'fee', amount: 999 }),
      expect.objectContaining({ kind: 'included', seconds: 60, amount: -120 }),
    ]);
    expect(preview.body).toMatchObject({
      userId: member.userId,
      currency: 'USD',
      planId: plan.body.id,
      periodEnd: new Date(boundary).toISOString(),
      usageSeconds: seconds,
      total: usageAmount + 999 - 120,
    });
    expect((await api.call('previewInvoice', { token: admin, query: { userId: member.userId } })).body.lines).toEqual(preview.body.lines);

    // Into the next month: the leader closes the period into drafts.
    moveTo(boundary + 10_000);
    const drafts = await eventually(async () => {
      const page = await api.call('listInvoices', { token: admin, query: { period: preview.body.period } });
      return page.body.data.length > 0 ? page.body.data : undefined;
    }, 20_000, 'the period closed');
    // Only the member used devices or pays a fee.
    expect(drafts).toHaveLength(1);
    const draft = drafts[0];
    expect(draft).toMatchObject({
      number: null,
      userId: member.userId,
      username: member.username,
      period: preview.body.period,
      periodStart: preview.body.periodStart,
      periodEnd: preview.body.periodEnd,
      status: 'draft',
      currency: 'USD',
      planId: plan.body.id,
      planName: 'Monthly',
      lines: preview.body.lines,
      usageSeconds: seconds,
      total: preview.body.total,
      finalizedAt: null,
      voidedAt: null,
      voidReason: null,
    });
    const invoiceId = draft.id as string;

    // The open lease was cut at the boundary: its device time before is the old period's, after it the new one's.
    const beforeEnd = await api.call('listUsageRecords', { token: member.token, query: { limit: 100 } });
    const cut = beforeEnd.body.data.filter((r: Json) => r.leaseId === open.body.id);
    expect(cut).toMatchObject([{ endedAt: new Date(boundary).toISOString(), seconds: openSeconds, period: preview.body.period }]);
    expect((await api.call('getLease', { token: member.token, path: { leaseId: open.body.id } })).body.status).toBe('granted');
    const ended = await api.call('releaseLease', { token: member.token, path: { leaseId: open.body.id } });
    const records = (await api.call('listUsageRecords', { token: member.token, query: { limit: 100 } })).body.data.filter(
      (r: Json) => r.leaseId === open.body.id,
    );
    const after = records.find((r: Json) => r.period !== preview.body.period);
    expect(after).toMatchObject({ startedAt: new Date(boundary).toISOString(), endedAt: new Date(Math.ceil(Date.parse(ended.body.endedAt) / 1000) * 1000).toISOString() });
    expect(records).toHaveLength(2);
    const current = await api.call('getUsage', { token: member.token });
    expect(current.body).toMatchObject({ deviceSeconds: after.seconds, includedSecondsUsed: after.seconds, usageAmount: 0, monthlyFee: 999 });
    expect(current.body.period).not.toBe(preview.body.period);
    const last = await api.call('getUsage', { token: member.token, query: { period: preview.body.period } });
    expect(last.body).toMatchObject({ deviceSeconds: seconds, includedSecondsUsed: 60, billableSeconds: seconds - 60, usageAmount: usageAmount - 120 });
    expect((await api.call('listInvoices', { token: member.token })).body.data.map((i: Json) => i.id)).toEqual([invoiceId]);
    expect((await api.call('listInvoices', { token: other.token })).body.data).toEqual([]);
    const hidden = await api.call('getInvoice', { token: other.token, path: { invoiceId } });
    expect([hidden.status, hidden.body.code]).toEqual([404, 'invoice_not_found']);
    const hiddenDocument = await api.call('downloadInvoice', { token: other.token, path: { invoiceId } });
    expect([hiddenDocument.status, hiddenDocument.body.code]).toEqual([404, 'invoice_not_found']);
    const byMember = await api.call('finalizeInvoice', { token: member.token, path: { invoiceId } });
    expect([byMember.status, byMember.body.code]).toEqual([403, 'insufficient_role']);

    const adjusted = await api.call('addInvoiceAdjustment', { token: admin, path: { invoiceId }, body: { amount: -250, reason: 'Goodwill credit' } });
    expect(adjusted.status).toBe(200);
    expect(adjusted.body.total).toBe(preview.body.total - 250);
    expect(adjusted.body.lines.at(-1)).toMatchObject({ kind: 'adjustment', amount: -250, reason: 'Goodwill credit', createdBy: api.admin.userId });

    const finalized = await api.call('finalizeInvoice', { token: admin, path: { invoiceId } });
    expect(finalized.status).toBe(200);
    expect(finalized.body).toMatchObject({ status: 'finalized', number: 1, total: preview.body.total - 250 });
    expect(finalized.body.finalizedAt).toBe(api.clock.now().toISOString());
    for (const [operationId, body] of [
      ['finalizeInvoice', undefined],
      ['addInvoiceAdjustment', { amount: 1, reason: 'too late' }],
    ] as const) {
      const refused = await api.call(operationId, { token: admin, path: { invoiceId }, ...(body === undefined ? {} : { body }) });
      expect([refused.status, refused.body.code]).toEqual([409, 'invoice_not_draft']);
    }

    // The documents, as the member downloads them.
    const pdf = await api.call('downloadInvoice', { token: member.token, path: { invoiceId }, binary: true, headers: { accept: 'application/pdf' } });
    expect(pdf.status).toBe(200);
    expect(pdf.contentType).toBe('application/pdf');
    expect(pdf.headers.get('content-disposition')).toBe('attachment; filename="invoice-1.pdf"');
    expect((pdf.body as Buffer).subarray(0, 5).toString()).toBe('%PDF-');
    const file = join(dir, 'invoice-1.pdf');
    writeFileSync(file, pdf.body as Buffer);
    const text = execFileSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
    expect(text).toContain('Invoice 1');
    expect(text).toContain(member.username);
    expect(text).toContain(preview.body.period);
    expect(text).toContain('Goodwill credit');
    expect(text).toContain(((preview.body.total - 250) / 100).toFixed(2));

    const csv = await api.call('downloadInvoice', { token: member.token, path: { invoiceId }, query: { format: 'csv' }, headers: { accept: 'text/csv' } });
    expect(csv.status).toBe(200);
    expect(csv.contentType).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toBe('attachment; filename="invoice-1.csv"');
    const rows = (csv.body as string).split(/\r?\n/).filter((line) => line !== '');
    expect(rows.some((row) => row.includes('Goodwill credit') && row.includes('-2.50'))).toBe(true);
    expect(rows.at(-1)).toContain(((preview.body.total - 250) / 100).toFixed(2));
    const viaSdk = await new CloudPhone({ baseUrl: api.url, token: member.token, maxRetries: 0 }).invoices.download(invoiceId, { format: 'csv' });
    expect(await viaSdk.text()).toBe(csv.body);

    const voided = await api.call('voidInvoice', { token: admin, path: { invoiceId }, body: { reason: 'Issued twice' } });
    expect(voided.status).toBe(200);
    expect(voided.body).toMatchObject({ status: 'void', number: 1, voidReason: 'Issued twice' });
    const again = await api.call('voidInvoice', { token: admin, path: { invoiceId }, body: { reason: 'again' } });
    expect([again.status, again.body.code]).toEqual([409, 'invoice_already_void']);

    const types = (await api.call('listEvents', { token: admin, query: { type: ['invoice.*'], limit: 100 } })).body.data.map((e: Json) => e.type);
    expect(types).toEqual(['invoice.created', 'invoice.adjusted', 'invoice.finalized', 'invoice.voided']);
  });

  it('refuses leases beyond the quotas with 403 and the quota, and ends a lease when the minutes run out', { timeout: 60_000 }, async () => {
    const admin = api.admin.token;
    const quotaUser = await api.addCaller('member');
    const plan = await api.call('createPlan', {
      token: admin,
      body: { name: 'Limited', currency: 'USD', quotas: { maxConcurrentDevices: 1, maxLeaseTtlSeconds: 600, minutesPerPeriod: 1 } },
    });
    expect(plan.status).toBe(201);
    expect((await api.call('assignPlan', { token: admin, path: { userId: quotaUser.userId }, body: { planId: plan.body.id } })).status).toBe(200);
    await onlineDevices(api, 2);

    const refusals: [Json, Json][] = [
      [{ count: 2, ttlSeconds: 300 }, { name: 'maxConcurrentDevices', limit: 1, current: 0, requested: 2 }],
      [{ count: 1, ttlSeconds: 900 }, { name: 'maxLeaseTtlSeconds', limit: 600, requested: 900 }],
    ];
    for (const [body, quota] of refusals) {
      const refused = await api.call('createLease', { token: quotaUser.token, body });
      expect([refused.status, refused.body.code]).toEqual([403, 'quota_exceeded']);
      expect(refused.body.quota).toMatchObject(quota);
    }
    const lease = await api.call('createLease', { token: quotaUser.token, body: { count: 1, ttlSeconds: 300 } });
    expect(lease.status).toBe(201);
    const second = await api.call('createLease', { token: quotaUser.token, body: { count: 1, ttlSeconds: 300 } });
    expect([second.status, second.body.code, second.body.quota?.name]).toEqual([403, 'quota_exceeded', 'maxConcurrentDevices']);
    const renewal = await api.call('renewLease', { token: quotaUser.token, path: { leaseId: lease.body.id }, body: { ttlSeconds: 900 } });
    expect([renewal.status, renewal.body.code, renewal.body.quota?.name]).toEqual([403, 'quota_exceeded', 'maxLeaseTtlSeconds']);

    // A minute of device time used up: the leader ends the lease.
    api.clock.advance(61);
    const ended = await eventually(async () => {
      const got = await api.call('getLease', { token: quotaUser.token, path: { leaseId: lease.body.id } });
      return got.body.status === 'granted' ? undefined : got.body;
    }, 20_000, 'the minutes quota to end the lease');
    expect(ended).toMatchObject({ status: 'released', endReason: 'quota_exhausted' });
    const spent = await api.call('createLease', { token: quotaUser.token, body: { count: 1, ttlSeconds: 300 } });
    expect([spent.status, spent.body.code, spent.body.quota?.name]).toEqual([403, 'quota_exceeded', 'minutesPerPeriod']);
    const usage = await api.call('getUsage', { token: quotaUser.token });
    expect(usage.body.quotas).toMatchObject({
      maxConcurrentDevices: { limit: 1, used: 0 },
      maxLeaseTtlSeconds: { limit: 600 },
      minutesPerPeriod: { limit: 1, used: 1 },
    });
    const events = (await api.call('listEvents', { token: admin, query: { type: ['quota.exceeded'], limit: 100 } })).body.data.filter(
      (e: Json) => e.subject.id === quotaUser.userId,
    );
    expect(events.map((e: Json) => [e.data.quota.name, e.data.leaseId])).toEqual([
      ['maxConcurrentDevices', null],
      ['maxLeaseTtlSeconds', null],
      ['maxConcurrentDevices', null],
      ['maxLeaseTtlSeconds', null],
      ['minutesPerPeriod', lease.body.id],
      ['minutesPerPeriod', null],
    ]);
  });
});
