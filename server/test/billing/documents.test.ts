import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  invoiceCsv,
  invoicePdf,
  usageReportCsv,
  type InvoiceDocument,
  type UsageReportCsvRow,
} from '../../src/billing/documents.js';

/** An RFC 4180 reader that insists on CRLF line ends and a final CRLF. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char !== '"') field += char;
      else if (text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else quoted = false;
    } else if (char === '"') {
      if (field !== '' || wasQuoted) throw new Error(`quote inside an unquoted field at ${i}`);
      quoted = true;
      wasQuoted = true;
    } else if (char === ',' || char === '\r') {
      row.push(field);
      field = '';
      wasQuoted = false;
      if (char === '\r') {
        if (text[i + 1] !== '\n') throw new Error(`CR without LF at ${i}`);
        rows.push(row);
        row = [];
        i += 1;
      }
    } else if (char === '\n' || wasQuoted) {
      throw new Error(`${JSON.stringify(char)} out of place at ${i}`);
    } else {
      field += char;
    }
  }
  if (quoted || field !== '' || row.length > 0) throw new Error('no CRLF after the last record');
  return rows;
}

function records(text: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(text);
  if (header === undefined) throw new Error('no header');
  for (const row of rows) expect(row).toHaveLength(header.length);
  return rows.map((row) => Object.fromEntries(header.map((name, i) => [name, row[i] ?? ''])));
}

function adjustment(amount: number, reason: string): InvoiceDocument['lines'][number] {
  const none = { billingClass: null, seconds: null, pricePerMinute: null };
  return { kind: 'adjustment', description: 'Credit', ...none, amount, reason };
}

function invoice(overrides: Partial<InvoiceDocument> = {}): InvoiceDocument {
  return {
    id: 'inv_01JC0000000000000000000000',
    number: 42,
    status: 'finalized',
    userId: 'usr_01JC0000000000000000000000',
    username: 'alice',
    period: '2026-11',
    periodStart: '2026-10-31T23:00:00.000Z',
    periodEnd: '2026-11-30T23:00:00.000Z',
    currency: 'USD',
    planName: 'Team',
    lines: [
      {
        kind: 'usage',
        description: 'Device time, flagship',
        billingClass: 'flagship',
        seconds: 3725,
        pricePerMinute: 125,
        amount: 7760,
        reason: null,
      },
      {
        kind: 'usage',
        description: 'Device time, emulator',
        billingClass: 'emulator',
        seconds: 59,
        pricePerMinute: 1,
        amount: 1,
        reason: null,
      },
      {
        kind: 'fee',
        description: 'Monthly fee, plan Team',
        billingClass: null,
        seconds: null,
        pricePerMinute: null,
        amount: 2500,
        reason: null,
      },
      {
        kind: 'included',
        description: 'Included minutes',
        billingClass: null,
        seconds: 600,
        pricePerMinute: null,
        amount: -1250,
        reason: null,
      },
      {
        kind: 'adjustment',
        description: 'Adjustment',
        billingClass: null,
        seconds: null,
        pricePerMinute: null,
        amount: -11,
        reason: 'Goodwill credit',
      },
    ],
    total: 9000,
    createdAt: '2026-12-01T00:00:05.000Z',
    finalizedAt: '2026-12-02T09:30:00.000Z',
    voidedAt: null,
    voidReason: null,
    timeZone: 'Europe/Berlin',
    ...overrides,
  };
}

describe('invoiceCsv', () => {
  it('writes one row per line and a total, in major units', () => {
    const csv = invoiceCsv(invoice());
    expect(csv.startsWith('invoice_id,invoice_number,status,issuer,')).toBe(true);
    const rows = records(csv);
    expect(rows.map((row) => [row.kind, row.seconds, row.price_per_minute, row.amount])).toEqual([
      ['usage', '3725', '1.25', '77.60'],
      ['usage', '59', '0.01', '0.01'],
      ['fee', '', '', '25.00'],
      ['included', '600', '', '-12.50'],
      ['adjustment', '', '', '-0.11'],
      ['total', '', '', '90.00'],
    ]);
    for (const row of rows) {
      expect(row).toMatchObject({
        invoice_id: 'inv_01JC0000000000000000000000',
        invoice_number: '42',
        status: 'finalized',
        issuer: 'cloudphone',
        username: 'alice',
        plan: 'Team',
        period: '2026-11',
        time_zone: 'Europe/Berlin',
        currency: 'USD',
      });
    }
    expect(rows[0]?.description).toBe('Device time, flagship');
    expect(rows[4]?.reason).toBe('Goodwill credit');
  });

  it('uses the exponent of the currency and leaves a draft without a number', () => {
    const yen = records(invoiceCsv(invoice({ currency: 'JPY', number: null, status: 'draft', issuer: 'Farm Ltd' })));
    expect(yen.map((row) => row.amount)).toEqual(['7760', '1', '2500', '-1250', '-11', '9000']);
    expect(yen[0]).toMatchObject({ invoice_number: '', status: 'draft', issuer: 'Farm Ltd', price_per_minute: '125' });
    const dinar = records(invoiceCsv(invoice({ currency: 'KWD' })));
    expect(dinar.map((row) => row.amount)).toEqual(['7.760', '0.001', '2.500', '-1.250', '-0.011', '9.000']);
  });

  it('quotes commas, quotes and line breaks, and reads back the same text', () => {
    const reason = 'Refund: "outage", 2 h\r\nsee ticket\n42';
    const rows = records(
      invoiceCsv(
        invoice({
          username: 'o"brien, jr',
          lines: [adjustment(5, reason)],
          total: 5,
        }),
      ),
    );
    expect(rows[0]?.reason).toBe(reason);
    expect(rows[0]?.username).toBe('o"brien, jr');
  });

  it('keeps text a spreadsheet would run as a formula from being one, but not numbers', () => {
    const formulas = ['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx', "=HYPERLINK(\"http://127.0.0.1\",\"x\")"];
    const rows = records(
      invoiceCsv(
        invoice({
          username: '=cmd|\' /C calc\'!A0',
          planName: '@plan',
          lines: formulas.map((description) => ({
            kind: 'adjustment' as const,
            description,
            billingClass: null,
            seconds: null,
            pricePerMinute: null,
            amount: -5,
            reason: '-credit',
          })),
          total: -35,
        }),
      ),
    );
    expect(rows.map((row) => row.description)).toEqual([...formulas.map((formula) => `'${formula}`), 'Total']);
    expect(rows[0]).toMatchObject({ username: "'=cmd|' /C calc'!A0", plan: "'@plan", reason: "'-credit" });
    expect(rows[0]?.amount).toBe('-0.05');
    expect(rows.at(-1)?.amount).toBe('-0.35');
    // Text that merely contains those characters is left as it is.
    expect(records(invoiceCsv(invoice({ username: 'a=b-c' })))[0]?.username).toBe('a=b-c');
  });

  it('reads back whatever text it is given', () => {
    const special = fc.constantFrom(',', '"', '\r', '\n', '\t', '=', '-', '+', '@', 'a', ' ');
    const csvSpecials = fc.string({ unit: special, maxLength: 20 });
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), csvSpecials, (username, reason) => {
        const rows = records(
          invoiceCsv(
            invoice({
              username,
              lines: [adjustment(1, reason)],
              total: 1,
            }),
          ),
        );
        const guarded = (value: string) => (/^[=+\-@\t\r]/.test(value) ? `'${value}` : value);
        expect(rows[0]?.username).toBe(guarded(username));
        expect(rows[0]?.reason).toBe(guarded(reason));
      }),
    );
  });
});

describe('usageReportCsv', () => {
  const rows: UsageReportCsvRow[] = [
    {
      userId: 'usr_1',
      username: 'alice',
      project: 'checkout',
      deviceId: 'dev_1',
      billingClass: 'flagship',
      day: '2026-11-02',
      currency: 'USD',
      deviceSeconds: 7200,
      billableSeconds: 6600,
      amount: 1375,
    },
    {
      userId: 'usr_2',
      username: '+bob',
      project: null,
      deviceId: 'dev_2',
      billingClass: 'emulator',
      day: '2026-11-03',
      currency: 'KWD',
      deviceSeconds: 61,
      billableSeconds: 61,
      amount: 5,
    },
  ];

  it('writes every column when grouped by everything', () => {
    const csv = usageReportCsv({ groupBy: ['day', 'class', 'device', 'project', 'user'], rows });
    expect(parseCsv(csv)).toEqual([
      [
        'user_id', 'username', 'project', 'device_id', 'billing_class', 'day', 'currency', 'device_seconds',
        'billable_seconds', 'amount',
      ],
      ['usr_1', 'alice', 'checkout', 'dev_1', 'flagship', '2026-11-02', 'USD', '7200', '6600', '13.75'],
      ['usr_2', "'+bob", '', 'dev_2', 'emulator', '2026-11-03', 'KWD', '61', '61', '0.005'],
    ]);
  });

  it('keeps only the grouped columns and the measures', () => {
    const unassigned = { project: null, currency: 'JPY', deviceSeconds: 60, billableSeconds: 0, amount: 1234 };
    expect(parseCsv(usageReportCsv({ groupBy: ['project'], rows: [unassigned] }))).toEqual([
      ['project', 'currency', 'device_seconds', 'billable_seconds', 'amount'],
      ['', 'JPY', '60', '0', '1234'],
    ]);
    expect(usageReportCsv({ groupBy: ['user', 'class'], rows: [] })).toBe(
      'user_id,username,billing_class,currency,device_seconds,billable_seconds,amount\r\n',
    );
    const free = { currency: 'USD', deviceSeconds: 1, billableSeconds: 1, amount: 0 };
    expect(usageReportCsv({ groupBy: [], rows: [free] })).toBe(
      'currency,device_seconds,billable_seconds,amount\r\nUSD,1,1,0.00\r\n',
    );
  });
});

describe('invoicePdf', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloudphone-invoice-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let count = 0;

  /** The PDF's text as poppler's pdftotext lays it out. */
  function pdfText(pdf: Buffer): string {
    count += 1;
    const file = join(dir, `invoice-${count}.pdf`);
    writeFileSync(file, pdf);
    const result = spawnSync('pdftotext', ['-layout', file, '-'], { encoding: 'utf8' });
    if (result.error !== undefined) {
      throw new Error(`reading a PDF needs pdftotext: apt-get install -y poppler-utils (${result.error.message})`);
    }
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return result.stdout;
  }

  /** The text's lines with runs of spaces made one, so that table rows can be matched. */
  function lines(text: string): string[] {
    return text.split('\n').map((line) => line.trim().replace(/\s+/g, ' '));
  }

  it('shows the number, the period, the customer, each line and the total', async () => {
    const pdf = await invoicePdf(invoice({ issuer: 'Example Farm' }));
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    const text = pdfText(pdf);
    const shown = lines(text);
    expect(shown).toContain('Example Farm');
    expect(shown).toContain('Invoice 42');
    expect(text).toContain('2026-11 (2026-11-01 to 2026-11-30, Europe/Berlin)');
    expect(text).toContain('alice (usr_01JC0000000000000000000000)');
    expect(text).toContain('inv_01JC0000000000000000000000');
    expect(shown).toContain('Issued 2026-12-02');
    expect(shown).toContain('Description Quantity Unit price / min Amount (USD)');
    expect(shown).toContain('Device time, flagship 62 min 05 s 1.25 77.60');
    expect(shown).toContain('Device time, emulator 0 min 59 s 0.01 0.01');
    expect(shown).toContain('Monthly fee, plan Team 25.00');
    expect(shown).toContain('Included minutes 10 min 00 s -12.50');
    expect(shown).toContain('Adjustment: Goodwill credit -0.11');
    expect(shown).toContain('Total 90.00 USD');
    expect(shown.join(' ')).toContain('metered per second');
    expect(shown.join(' ')).toContain('halves rounded up');
  });

  it('formats amounts with the exponent of JPY and KWD', async () => {
    const yen = lines(pdfText(await invoicePdf(invoice({ currency: 'JPY' }))));
    expect(yen).toContain('Device time, flagship 62 min 05 s 125 7760');
    expect(yen).toContain('Included minutes 10 min 00 s -1250');
    expect(yen).toContain('Total 9000 JPY');
    const dinar = lines(pdfText(await invoicePdf(invoice({ currency: 'KWD' }))));
    expect(dinar).toContain('Device time, flagship 62 min 05 s 0.125 7.760');
    expect(dinar).toContain('Device time, emulator 0 min 59 s 0.001 0.001');
    expect(dinar).toContain('Adjustment: Goodwill credit -0.011');
    expect(dinar).toContain('Total 9.000 KWD');
  });

  it('marks a draft and a voided invoice', async () => {
    const draft = pdfText(
      await invoicePdf(invoice({ number: null, status: 'draft', finalizedAt: null, issuer: 'Example Farm' })),
    );
    expect(lines(draft)).toContain('Draft invoice Not final: amounts may change.');
    expect(lines(draft)).toContain('Created 2026-12-01');
    expect(draft).not.toContain('Invoice 42');
    const voidedAt = '2026-12-03T08:00:00.000Z';
    const voided = lines(pdfText(await invoicePdf(invoice({ status: 'void', voidedAt, voidReason: 'Billed twice' }))));
    expect(voided).toContain('Invoice 42 VOID');
    expect(voided).toContain('Voided 2026-12-03: Billed twice');
  });

  it('continues the table on further pages', async () => {
    const many = Array.from({ length: 120 }, (_, i) => ({
      kind: 'usage' as const,
      description: `Device time, class c${i}`,
      billingClass: `c${i}`,
      seconds: 60,
      pricePerMinute: 1,
      amount: 1,
      reason: null,
    }));
    const text = pdfText(await invoicePdf(invoice({ lines: many, total: 120 })));
    const pages = text.split('\f').filter((page) => page.trim() !== '');
    expect(pages.length).toBeGreaterThan(1);
    for (const page of pages) expect(lines(page)).toContain('Description Quantity Unit price / min Amount (USD)');
    for (let i = 0; i < 120; i += 1) expect(lines(text)).toContain(`Device time, class c${i} 1 min 00 s 0.01 0.01`);
    expect(lines(pages.at(-1) ?? '')).toContain('Total 1.20 USD');
  });

  it('is the same bytes for the same invoice, dated by it', async () => {
    const first = await invoicePdf(invoice());
    const second = await invoicePdf(invoice());
    expect(second.equals(first)).toBe(true);
    const file = join(dir, 'dated.pdf');
    writeFileSync(file, first);
    const info = spawnSync('pdfinfo', ['-isodates', file], { encoding: 'utf8' }).stdout;
    expect(info).toMatch(/^CreationDate: +2026-12-02T09:30:00Z$/m);
    expect(info).toMatch(/^Pages: +1$/m);
    expect(info).toMatch(/^Page size: +595\.28 x 841\.89 pts \(A4\)$/m);
    expect((await invoicePdf(invoice({ total: 9001 }))).equals(first)).toBe(false);
  });

  it('shows what the standard font cannot draw as a question mark', async () => {
    const text = pdfText(await invoicePdf(invoice({ username: 'Zoë 山田', planName: 'Café – €' })));
    expect(text).toContain('Zoë ?? (usr_01JC0000000000000000000000)');
    expect(text).toContain('Café – €');
  });
});
