import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  APIError,
  CloudPhoneError,
  NotFoundError,
  PaymentRequiredError,
  PermissionDeniedError,
  type UsageReport,
} from '../src/index.js';
import { JSON_HEADERS, mockClient, problem, PROBLEM_HEADERS } from './helpers.js';

const INVOICE = 'inv_01JDXD2E3F4G5H6J7K8M9N0P1Q';
const CSV_HEADERS = { 'content-type': 'text/csv; charset=utf-8' };
const REPORT_CSV = 'project,day,currency,device_seconds,billable_seconds,amount\r\ncheckout-app,2026-12-07,EUR,570,570,1.14\r\n';
const BUDGET = { id: 'bdg_01JDXB4C5D6E7F8G9H0J1K2M3N', scope: 'user' as const, currency: 'EUR', amount: 500, spent: 512 };
const QUOTA = { name: 'maxConcurrentDevices' as const, limit: 2, current: 2, requested: 1 };

describe('billing errors', () => {
  it('throws PaymentRequiredError for 402 budget_exhausted, with the budget that cannot pay', async () => {
    const { pool, client } = mockClient({ maxRetries: 0 });
    const body = { ...problem(402, 'budget_exhausted'), budget: BUDGET };
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(402, body, { headers: PROBLEM_HEADERS });

    const error = await client.request('createLease', { body: { count: 1 } }).catch((e: unknown) => e);
    expect(Object.getPrototypeOf(error)).toBe(PaymentRequiredError.prototype);
    expect(error).toBeInstanceOf(APIError);
    const payment = error as PaymentRequiredError;
    expect(payment.name).toBe('PaymentRequiredError');
    expect(payment.status).toBe(402);
    expect(payment.code).toBe('budget_exhausted');
    expect(payment.budget).toEqual(BUDGET);
    expect(payment.problem.budget).toEqual(BUDGET);
  });

  it('gives a 403 quota_exceeded its quota, and other 403s none', async () => {
    const { pool, client } = mockClient({ maxRetries: 0 });
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(403, { ...problem(403, 'quota_exceeded'), quota: QUOTA }, { headers: PROBLEM_HEADERS });
    pool.intercept({ path: '/v1/leases', method: 'POST' }).reply(403, problem(403, 'insufficient_scope'), { headers: PROBLEM_HEADERS });

    const quota = (await client.request('createLease', { body: { count: 3 } }).catch((e: unknown) => e)) as PermissionDeniedError;
    expect(quota).toBeInstanceOf(PermissionDeniedError);
    expect(quota.quota).toEqual(QUOTA);
    const scope = (await client.request('createLease', { body: { count: 1 } }).catch((e: unknown) => e)) as PermissionDeniedError;
    expect(scope.code).toBe('insufficient_scope');
    expect(scope.quota).toBeUndefined();
  });
});

describe('usage.getReportCsv', () => {
  it('asks for format=csv with text/csv and answers the document exactly', async () => {
    const { pool, client, calls, header } = mockClient();
    pool.intercept({ path: (path) => path.startsWith('/v1/usage/report?') }).reply(200, REPORT_CSV, { headers: CSV_HEADERS });

    const csv = await client.usage.getReportCsv({ from: '2026-12-01', to: '2026-12-31', groupBy: ['project', 'day'], project: 'checkout-app' });
    expect(csv).toBe(REPORT_CSV);
    const url = new URL(calls()[0]!.fullUrl);
    expect(url.searchParams.getAll('groupBy')).toEqual(['project', 'day']);
    expect(url.searchParams.get('format')).toBe('csv');
    expect(url.searchParams.get('from')).toBe('2026-12-01');
    expect(url.searchParams.get('project')).toBe('checkout-app');
    expect(header('accept')).toEqual(['text/csv, application/problem+json']);
  });

  it('throws the typed error of a problem, and retries a 503', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: (path) => path.startsWith('/v1/usage/report?') }).reply(503, problem(503, 'service_unavailable'), { headers: PROBLEM_HEADERS });
    pool.intercept({ path: (path) => path.startsWith('/v1/usage/report?') }).reply(200, REPORT_CSV, { headers: CSV_HEADERS });
    pool.intercept({ path: (path) => path.startsWith('/v1/usage/report?') }).reply(403, problem(403, 'insufficient_role'), { headers: PROBLEM_HEADERS });

    expect(await client.usage.getReportCsv()).toBe(REPORT_CSV);
    expect(calls()).toHaveLength(2);
    const error = await client.usage.getReportCsv({ userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    expect((error as PermissionDeniedError).code).toBe('insufficient_role');
  });

  it('leaves getReport to JSON and refuses format csv there', async () => {
    const { pool, client, calls } = mockClient();
    const report: UsageReport = {
      from: '2026-12-01',
      to: '2026-12-07',
      timeZone: 'UTC',
      groupBy: ['user'],
      rows: [],
      totals: [],
    };
    pool.intercept({ path: '/v1/usage/report?groupBy=user' }).reply(200, report, { headers: JSON_HEADERS });

    expect(await client.usage.getReport({ groupBy: ['user'] })).toEqual(report);
    const error = await client.usage.getReport({ format: 'csv' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudPhoneError);
    expect((error as Error).message).toMatch(/getReportCsv/);
    expect(calls()).toHaveLength(1);
  });
});

describe('invoices.download', () => {
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.from([0x00, 0xff, 0x80, 0x0a]), Buffer.from('%%EOF\n')]);
  const csv = 'kind,description,billing_class,seconds,price_per_minute,amount,reason\r\nfee,"Team plan, monthly fee",,,,29.00,\r\n';
  const documentPath = (format: string) => `/v1/invoices/${INVOICE}/document?format=${format}`;

  it('downloads the PDF by default, bytes unchanged, asking for application/pdf', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: documentPath('pdf') }).reply(200, pdf, {
      headers: { 'content-type': 'application/pdf', 'content-length': String(pdf.length), 'content-disposition': 'attachment; filename="invoice-42.pdf"' },
    });

    const response = await client.invoices.download(INVOICE);
    expect(response.contentType).toBe('application/pdf');
    expect(response.headers['content-disposition']).toBe('attachment; filename="invoice-42.pdf"');
    expect(Buffer.from(await response.bytes()).equals(pdf)).toBe(true);
    expect(header('accept')).toEqual(['application/pdf, application/problem+json']);
  });

  it('downloads the CSV asking for text/csv, and downloadTo writes a file', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: documentPath('csv') }).reply(200, csv, { headers: CSV_HEADERS });
    pool.intercept({ path: documentPath('pdf') }).reply(200, pdf, { headers: { 'content-type': 'application/pdf' } });

    expect(await (await client.invoices.download({ id: INVOICE }, { format: 'csv' })).text()).toBe(csv);
    const dir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-invoice-'));
    try {
      const local = join(dir, 'invoice.pdf');
      expect(await client.invoices.downloadTo(INVOICE, local)).toBe(pdf.length);
      expect(readFileSync(local).equals(pdf)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(header('accept')).toEqual(['text/csv, application/problem+json', 'application/pdf, application/problem+json']);
  });

  it('throws NotFoundError for an unknown invoice', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: documentPath('pdf') }).reply(404, problem(404, 'invoice_not_found'), { headers: PROBLEM_HEADERS });

    const error = await client.invoices.download(INVOICE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).code).toBe('invoice_not_found');
  });
});
