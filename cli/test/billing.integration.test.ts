import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudPhone, type Invoice, type Lease, type LeaseEstimate, type Plan, type UsageReport, type UsageSummary, type UserPlan } from '@cloudphone/sdk';
import { startServer, type RunningServer } from '@cloudphone/server';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ManualClock } from '../../server/test/helpers/clock.js';
import { formatAmount } from '../src/lib/billing.js';
import { assertBuilt, runCli, type Result, type RunOptions } from './fixtures/cli.js';
import { startTestServer, type TestServer } from './fixtures/server.js';

/*
 * The built CLI's billing commands against the real server (two virtual devices, billing class `virtual`): an admin
 * makes a plan and puts a member on it, the member leases a device for a project, then reads their usage, the
 * usage report (table, CSV, JSON), a lease estimate and their invoices. A second server, on a manual clock, closes
 * a period so that there is an invoice to download.
 */

/** Minor units (euro cents) per device-minute of the plan's `virtual` class: 10 cents per second, so no row is 0. */
const PRICE = 600;
const PROJECT = 'checkout-app';
const NO_INVOICE = 'inv_00000000000000000000000000';

let server: TestServer;
let home: string;
let work: string;
let memberToken: string;
let memberId: string;
let plan: Plan;
/** The member's one lease, released by the time the tests run. */
let lease: Lease;

const admin = (args: string[], options: RunOptions = {}): Promise<Result> =>
  runCli(home, args, { cwd: work, ...options, env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: server.adminToken } });
const member = (args: string[], options: RunOptions = {}): Promise<Result> =>
  runCli(home, args, { cwd: work, ...options, env: { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: memberToken } });

function json<T>(result: Result): T {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

/** Today in the billing time zone (the server's default, UTC). */
const today = (): string => new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  assertBuilt();
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-billing-'));
  work = mkdtempSync(join(tmpdir(), 'cloudphone-cli-billing-files-'));
  server = await startTestServer('cli-billing', 2);
  const sdk = new CloudPhone({ baseUrl: server.url, token: server.adminToken });
  memberId = (await sdk.users.create({ username: 'billed', password: 'correct-horse-battery', role: 'member' })).id;
  memberToken = (await sdk.auth.login({ username: 'billed', password: 'correct-horse-battery' })).accessToken;

  const planFile = join(work, 'plan.json');
  writeFileSync(
    planFile,
    JSON.stringify({ name: 'Team', currency: 'EUR', monthlyFee: 2900, prices: { virtual: PRICE }, defaultPrice: 1, quotas: { maxConcurrentDevices: 1 } }),
  );
  plan = json<Plan>(await admin(['plans', 'create', '--data', `@${planFile}`, '--json']));
  json<UserPlan>(await admin(['plans', 'assign', memberId, '--plan-id', plan.id, '--json']));
  json(await admin(['budgets', 'create', '--scope', 'user', '--user-id', memberId, '--currency', 'EUR', '--amount', '100000', '--json']));

  lease = json<Lease>(await member(['leases', 'create', '--project', PROJECT, '--ttl', '60', '--json']));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect((await member(['leases', 'release', lease.id])).code).toBe(0);
}, 90_000);

afterAll(async () => {
  await server?.close();
  for (const dir of [home, work]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('plans', () => {
  test('an admin creates a plan from --data and from flags, and assigns it', async () => {
    expect(plan).toMatchObject({ name: 'Team', currency: 'EUR', monthlyFee: 2900, prices: { virtual: PRICE }, isDefault: false });
    expect(plan.quotas).toEqual({ maxConcurrentDevices: 1, maxLeaseTtlSeconds: null, minutesPerPeriod: null });
    const yen = await admin(['plans', 'create', '--name', 'Yen', '--currency', 'JPY', '--default-price', '3', '--included-minutes', '60']);
    expect(yen.code, yen.stderr).toBe(0);
    expect(yen.stdout).toMatch(/^name\s+Yen$/m);
    expect(yen.stdout).toMatch(/^currency\s+JPY$/m);

    const list = await admin(['plans', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+CURRENCY\s+MONTHLY FEE\s+PRICES\s+DEFAULT PRICE\s+INCLUDED MINUTES\s+IS DEFAULT\s+USERS$/);
    expect(list.stdout).toMatch(new RegExp(`^${plan.id}\\s+Team\\s+EUR\\s+2900\\s+virtual=${PRICE}\\s+1\\s+0\\s+false\\s+1$`, 'm'));

    const mine = json<UserPlan>(await member(['plans', 'user', memberId, '--json']));
    expect(mine).toMatchObject({ userId: memberId, assigned: true, plan: { id: plan.id } });
  });

  test('--plan-id null puts a user back on the default plan', async () => {
    const sdk = new CloudPhone({ baseUrl: server.url, token: server.adminToken });
    const user = await sdk.users.create({ username: 'replanned', password: 'correct-horse-battery', role: 'member' });
    json<UserPlan>(await admin(['plans', 'assign', user.id, '--plan-id', plan.id, '--json']));
    const cleared = json<UserPlan>(await admin(['plans', 'assign', user.id, '--plan-id', 'null', '--json']));
    expect(cleared).toMatchObject({ userId: user.id, assigned: false, plan: { isDefault: true } });
  });
});

describe('usage', () => {
  test('--json prints the UsageSummary with the lease metered at the plan', async () => {
    const summary = json<UsageSummary>(await member(['usage', '--json']));
    expect(summary).toMatchObject({ userId: memberId, username: 'billed', plan: { id: plan.id, name: 'Team' }, currency: 'EUR', monthlyFee: 2900, openLeases: 0 });
    expect(summary.deviceSeconds).toBeGreaterThanOrEqual(1);
    expect(summary.billableSeconds).toBe(summary.deviceSeconds);
    expect(summary.usageAmount).toBe(summary.deviceSeconds * (PRICE / 60));
    expect(summary.total).toBe(summary.usageAmount + 2900);
    expect(summary.classes).toEqual([
      { billingClass: 'virtual', seconds: summary.deviceSeconds, includedSeconds: 0, pricePerMinute: PRICE, amount: summary.usageAmount },
    ]);
    expect(summary.quotas.maxConcurrentDevices).toEqual({ limit: 1, used: 0 });
    expect(summary.budgets).toHaveLength(1);
    expect(summary.budgets[0]).toMatchObject({ amount: 100000, spent: summary.usageAmount });

    const forMember = json<UsageSummary>(await admin(['usage', '--user', memberId, '--json']));
    expect(forMember).toMatchObject({ userId: memberId, deviceSeconds: summary.deviceSeconds, total: summary.total });
  });

  test('the table shows plan, device time, cost in euros, fee, total, budget and quotas', async () => {
    const summary = json<UsageSummary>(await member(['usage', '--json']));
    const result = await member(['usage']);
    expect(result.code, result.stderr).toBe(0);
    const seconds = String(summary.deviceSeconds % 60).padStart(2, '0');
    const euros = (minor: number): string => `${formatAmount(minor, 'EUR')} EUR`;
    expect(result.stdout).toContain(`Plan                Team (${plan.id})\n`);
    expect(result.stdout).toContain(`Device time         0:${String(Math.floor(summary.deviceSeconds / 60)).padStart(2, '0')}:${seconds}\n`);
    expect(result.stdout).toContain('Included time       none\n');
    expect(result.stdout).toContain(`Cost so far         ${euros(summary.usageAmount)}\n`);
    expect(result.stdout).toContain('Monthly fee         29.00 EUR\n');
    expect(result.stdout).toContain(`Total               ${euros(summary.total)}\n`);
    expect(result.stdout).toContain(`Budget              ${euros(summary.usageAmount)} of 1000.00 EUR spent (`);
    expect(result.stdout).toContain(`, ${euros(100000 - summary.usageAmount)} left\n`);
    expect(result.stdout).toContain('Concurrent devices  0 of 1\n');
    expect(result.stdout).toContain('Minutes             ');
    expect(result.stdout).toMatch(new RegExp(`^virtual\\s+0:\\d\\d:\\d\\d\\s+0:00:00\\s+6\\.00 EUR\\s+${euros(summary.usageAmount).replace('.', '\\.')}$`, 'm'));
  });

  test('--period of another month is that month, empty', async () => {
    const summary = json<UsageSummary>(await member(['usage', '--period', '2020-01', '--json']));
    expect(summary).toMatchObject({ period: '2020-01', deviceSeconds: 0, usageAmount: 0 });
  });
});

describe('usage report', () => {
  const range = () => ['--from', today(), '--to', today(), '--group-by', 'project,day'];

  test('--format csv prints the CSV header and the lease row, as JSON has it', async () => {
    const report = json<UsageReport>(await member(['usage', 'report', ...range(), '--json']));
    expect(report.groupBy).toEqual(['project', 'day']);
    expect(report.rows).toHaveLength(1);
    const row = report.rows[0]!;
    expect(row).toMatchObject({ project: PROJECT, day: today(), currency: 'EUR' });
    expect(row.amount).toBe(row.billableSeconds * (PRICE / 60));

    const csv = await member(['usage', 'report', ...range(), '--format', 'csv']);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout).toBe(
      `project,day,currency,device_seconds,billable_seconds,amount\r\n` +
        `${PROJECT},${today()},EUR,${row.deviceSeconds},${row.billableSeconds},${formatAmount(row.amount, 'EUR')}\r\n`,
    );
  });

  test('the table shows the grouped columns, the times and the amount, then the totals', async () => {
    const result = await member(['usage', 'report', ...range()]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^PROJECT\s+DAY\s+DEVICE TIME\s+BILLABLE TIME\s+AMOUNT$/);
    expect(lines[1]).toMatch(new RegExp(`^${PROJECT}\\s+${today()}\\s+0:\\d\\d:\\d\\d\\s+0:\\d\\d:\\d\\d\\s+\\d+\\.\\d\\d EUR$`));
    expect(lines[3]).toMatch(/^TOTALS\s+DEVICE TIME\s+BILLABLE TIME\s+AMOUNT$/);
    expect(lines[4]).toMatch(/^EUR\s+/);
  });

  test('--project filters, a bad --group-by is a usage error, an empty range says so', async () => {
    const other = json<UsageReport>(await member(['usage', 'report', '--project', 'other', '--json']));
    expect(other.rows).toEqual([]);
    const bad = await member(['usage', 'report', '--group-by', 'project,week']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"week"');
    const empty = await member(['usage', 'report', '--from', '2020-01-01', '--to', '2020-01-31']);
    expect(empty).toMatchObject({ code: 0, stdout: '' });
    expect(empty.stderr).toContain('No usage from 2020-01-01 to 2020-01-31.');
  });
});

describe('leases create --estimate', () => {
  test('prints an allowed estimate, leases nothing and exits 0', async () => {
    const estimate = json<LeaseEstimate>(await member(['leases', 'create', '--estimate', '--project', PROJECT, '--ttl', '600', '--json']));
    expect(estimate).toMatchObject({
      allowed: true,
      currency: 'EUR',
      count: 1,
      ttlSeconds: 600,
      devicesMatching: 2,
      devicesAvailable: 2,
      classes: [{ billingClass: 'virtual', devices: 1, pricePerMinute: PRICE }],
      estimatedCost: 10 * PRICE,
      quota: { allowed: true, violations: [] },
    });
    expect(estimate.budget.allowed).toBe(true);

    const table = await member(['leases', 'create', '--estimate', '--ttl', '600']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain('Allowed             yes\n');
    expect(table.stdout).toContain('Estimated cost      60.00 EUR for 1 device × 0:10:00\n');
    expect(table.stdout).toMatch(/^virtual\s+1\s+6\.00 EUR$/m);
    const leases = await new CloudPhone({ baseUrl: server.url, token: memberToken }).leases.list({ status: ['granted'] });
    expect(leases.data).toEqual([]);
  });

  test('beyond a quota: the violation, "not allowed" and exit 1', async () => {
    const result = await member(['leases', 'create', '--estimate', '--count', '2', '--json']);
    expect(result.code).toBe(1);
    const estimate = JSON.parse(result.stdout) as LeaseEstimate;
    expect(estimate.allowed).toBe(false);
    expect(estimate.quota.violations).toEqual([{ name: 'maxConcurrentDevices', limit: 1, current: 0, requested: 2 }]);

    const table = await member(['leases', 'create', '--estimate', '--count', '2']);
    expect(table.code).toBe(1);
    expect(table.stdout).toContain('Allowed             no\n');
    expect(table.stdout).toMatch(/^maxConcurrentDevices\s+1\s+0\s+2$/m);
    expect(table.stderr).toContain('would not be allowed');
  });

  test('the lease created with --project carries it', () => {
    expect(lease.project).toBe(PROJECT);
  });
});

describe('invoices', () => {
  test('a member has none yet: an empty list', async () => {
    expect(json(await member(['invoices', 'list', '--json']))).toEqual([]);
    const table = await member(['invoices', 'list']);
    expect(table).toMatchObject({ code: 0, stdout: '' });
    expect(table.stderr).toContain('No results.');
  });

  test('downloading an unknown invoice exits 1 with the problem and writes no file', async () => {
    const result = await member(['invoices', 'download', NO_INVOICE, '--json']);
    expect(result.code).toBe(1);
    expect((JSON.parse(result.stdout) as { error: { code: string; status: number } }).error).toMatchObject({ code: 'invoice_not_found', status: 404 });
    const text = await member(['invoices', 'download', NO_INVOICE, '--format', 'csv']);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain('invoice_not_found');
    expect(readdirSync(work).filter((name) => name.startsWith('inv'))).toEqual([]);
    expect(existsSync(join(work, `${NO_INVOICE}.csv`))).toBe(false);
  });
});

describe('invoices of a closed period (manual clock)', () => {
  const clock = new ManualClock(new Date());
  let closing: RunningServer;
  let dir: string;
  let files: string;
  let adminKey: string;
  let memberKey: string;
  let invoice: Invoice;

  const as = (key: string, args: string[], options: RunOptions = {}): Promise<Result> =>
    runCli(dir, args, { cwd: files, ...options, env: { CLOUDPHONE_API_URL: closing.url, CLOUDPHONE_TOKEN: key } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cloudphone-cli-invoices-'));
    files = mkdtempSync(join(tmpdir(), 'cloudphone-cli-invoices-files-'));
    closing = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir, 'data'),
      adminPassword: 'admin-password-for-cli-invoices',
      virtualDevices: 1,
      billingCheckSeconds: 1,
      clock: clock.now,
      logStream: { write: () => undefined },
    });
    const anonymous = new CloudPhone({ baseUrl: closing.url });
    const adminSdk = new CloudPhone({ baseUrl: closing.url, token: (await anonymous.auth.login({ username: 'admin', password: 'admin-password-for-cli-invoices' })).accessToken });
    const user = await adminSdk.users.create({ username: 'invoiced', password: 'correct-horse-battery', role: 'member' });
    const memberSdk = new CloudPhone({ baseUrl: closing.url, token: (await anonymous.auth.login({ username: 'invoiced', password: 'correct-horse-battery' })).accessToken });
    // API tokens outlive the month the clock jumps; access tokens would not.
    adminKey = (await adminSdk.tokens.create({ name: 'cli', scopes: ['read', 'write', 'admin'] })).secret;
    memberKey = (await memberSdk.tokens.create({ name: 'cli', scopes: ['read', 'write'] })).secret;
    const deadline = Date.now() + 30_000;
    while ((await adminSdk.devices.list({ available: true })).data.length < 1) {
      if (Date.now() > deadline) throw new Error('the virtual device did not come online');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const created = json<Plan>(await as(adminKey, ['plans', 'create', '--name', 'Monthly', '--currency', 'USD', '--monthly-fee', '999', '--default-price', '120', '--json']));
    json(await as(adminKey, ['plans', 'assign', user.id, '--plan-id', created.id, '--json']));
    const lease = json<Lease>(await as(memberKey, ['leases', 'create', '--ttl', '900', '--json']));
    clock.advance(150);
    expect((await as(memberKey, ['leases', 'release', lease.id])).code).toBe(0);

    const now = clock.now();
    clock.advance((Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) - now.getTime()) / 1000 + 5);
    const admin = new CloudPhone({ baseUrl: closing.url, token: adminKey });
    const until = Date.now() + 20_000;
    for (;;) {
      const [draft] = (await admin.invoices.list({ userId: user.id })).data;
      if (draft !== undefined) {
        invoice = draft;
        break;
      }
      if (Date.now() > until) throw new Error('the period did not close into a draft invoice');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }, 90_000);

  afterAll(async () => {
    await closing?.close();
    for (const path of [dir, files]) if (path) rmSync(path, { recursive: true, force: true });
  });

  test('invoices list shows the draft', async () => {
    const result = await as(memberKey, ['invoices', 'list']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split('\n')[1]).toMatch(new RegExp(`^${invoice.id}\\s+-\\s+invoiced\\s+${invoice.period}\\s+draft\\s+USD\\s+${invoice.total}$`));
  });

  test('downloads the PDF under the name the server gives it, and refuses to replace it without --force', async () => {
    const name = `invoice-${invoice.id}.pdf`;
    const result = await as(memberKey, ['invoices', 'download', invoice.id]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`${name}\n`);
    const pdf = readFileSync(join(files, name));
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');

    const again = await as(memberKey, ['invoices', 'download', invoice.id]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('--force');
    const forced = json<{ invoiceId: string; format: string; size: number; local: string }>(await as(memberKey, ['invoices', 'download', invoice.id, '--force', '--json']));
    expect(forced).toEqual({ invoiceId: invoice.id, format: 'pdf', size: pdf.length, local: name });
  });

  test('--format csv -o - prints the CSV the server sends, unchanged', async () => {
    const result = await as(memberKey, ['invoices', 'download', invoice.id, '--format', 'csv', '-o', '-']);
    expect(result.code, result.stderr).toBe(0);
    const served = await (await new CloudPhone({ baseUrl: closing.url, token: memberKey }).invoices.download(invoice.id, { format: 'csv' })).text();
    expect(result.stdout).toBe(served);
    expect(result.stdout).toMatch(/^[a-z_]+(,[a-z_]+)+\r\n/);
    expect(result.stdout).toContain(',usage,');

    const refused = await as(memberKey, ['invoices', 'download', invoice.id, '-o', '-', '--json']);
    expect(refused.code).toBe(2);
  });
});
