/**
 * The documents a customer downloads: an invoice as CSV or PDF, and a usage report as CSV.
 *
 * CSV follows RFC 4180 (CRLF line ends, a field quoted when it holds a comma, a quote, CR or LF, quotes doubled),
 * with a header row. Amounts are in major units with the currency's exponent (`12.34`, `-0.005`, `1234`). A text
 * field that a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`;
 * numeric columns are left alone so that they stay numbers.
 */
import { dayOf } from './calendar.js';
import { currencyExponent, formatMinor, formatMoney } from './money.js';

export type InvoiceStatus = 'draft' | 'finalized' | 'void';
export type InvoiceLineKind = 'usage' | 'fee' | 'included' | 'adjustment';

export interface InvoiceDocumentLine {
  kind: InvoiceLineKind;
  description: string;
  billingClass: string | null;
  /** Device seconds (usage and included lines). */
  seconds: number | null;
  /** Minor units per device-minute. */
  pricePerMinute: number | null;
  /** Minor units; negative for included minutes and credits. */
  amount: number;
  /** Why an adjustment was made. */
  reason: string | null;
}

export interface InvoiceDocument {
  id: string;
  /** Set when the invoice is finalized; a draft has none. */
  number: number | null;
  status: InvoiceStatus;
  userId: string;
  username: string;
  /** 'YYYY-MM' */
  period: string;
  /** ISO instants: the period's first instant and the first instant after it. */
  periodStart: string;
  periodEnd: string;
  currency: string;
  planName: string;
  lines: InvoiceDocumentLine[];
  /** Minor units. */
  total: number;
  createdAt: string;
  finalizedAt: string | null;
  voidedAt: string | null;
  voidReason: string | null;
  /** Who issues the invoice (the server's configured name); `cloudphone` when not given. */
  issuer?: string;
  /** The billing time zone, in which dates are shown. */
  timeZone: string;
}

export type UsageGroupBy = 'user' | 'project' | 'device' | 'class' | 'day';

export interface UsageReportCsvRow {
  userId?: string;
  username?: string;
  project?: string | null;
  deviceId?: string;
  billingClass?: string;
  day?: string;
  currency: string;
  deviceSeconds: number;
  billableSeconds: number;
  /** Minor units. */
  amount: number;
}

export interface UsageReportCsvInput {
  groupBy: readonly UsageGroupBy[];
  rows: readonly UsageReportCsvRow[];
}

const DEFAULT_ISSUER = 'cloudphone';

/** A CSV cell: text is guarded against formulas, numbers are written as given. */
type Cell = { text: string | null } | { number: string | number | null };

const FORMULA_START = /^[=+\-@\t\r]/;

function csvField(cell: Cell): string {
  let value: string;
  if ('text' in cell) {
    value = cell.text ?? '';
    if (FORMULA_START.test(value)) value = `'${value}`;
  } else {
    value = cell.number === null ? '' : String(cell.number);
  }
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function csv(header: readonly string[], rows: readonly Cell[][]): string {
  return [header.join(','), ...rows.map((row) => row.map(csvField).join(','))].map((line) => `${line}\r\n`).join('');
}

const text = (value: string | null): Cell => ({ text: value });
const number = (value: string | number | null): Cell => ({ number: value });

/**
 * An invoice as CSV: one row per line with the invoice's fields repeated (so each row stands alone in a
 * spreadsheet), then a row of kind `total` with the invoice's total as its amount.
 */
export function invoiceCsv(invoice: InvoiceDocument): string {
  const { currency } = invoice;
  const header = [
    'invoice_id', 'invoice_number', 'status', 'issuer', 'user_id', 'username', 'plan', 'period', 'period_start',
    'period_end', 'time_zone', 'currency', 'kind', 'description', 'billing_class', 'seconds', 'price_per_minute',
    'amount', 'reason',
  ];
  const invoiceCells = [
    text(invoice.id), number(invoice.number), text(invoice.status), text(invoice.issuer ?? DEFAULT_ISSUER),
    text(invoice.userId), text(invoice.username), text(invoice.planName), text(invoice.period),
    text(invoice.periodStart), text(invoice.periodEnd), text(invoice.timeZone), text(currency),
  ];
  const rows = invoice.lines.map((line) => [
    ...invoiceCells,
    text(line.kind),
    text(line.description),
    text(line.billingClass),
    number(line.seconds),
    number(line.pricePerMinute === null ? null : formatMinor(line.pricePerMinute, currency)),
    number(formatMinor(line.amount, currency)),
    text(line.reason),
  ]);
  rows.push([
    ...invoiceCells,
    text('total'), text('Total'), text(null), number(null), number(null),
    number(formatMinor(invoice.total, currency)), text(null),
  ]);
  return csv(header, rows);
}

const REPORT_COLUMNS: readonly { name: string; group: UsageGroupBy; cell: (row: UsageReportCsvRow) => Cell }[] = [
  { name: 'user_id', group: 'user', cell: (row) => text(row.userId ?? null) },
  { name: 'username', group: 'user', cell: (row) => text(row.username ?? null) },
  { name: 'project', group: 'project', cell: (row) => text(row.project ?? null) },
  { name: 'device_id', group: 'device', cell: (row) => text(row.deviceId ?? null) },
  { name: 'billing_class', group: 'class', cell: (row) => text(row.billingClass ?? null) },
  { name: 'day', group: 'day', cell: (row) => text(row.day ?? null) },
];

/**
 * A usage report as CSV: the columns of the report's groupings (in the order user_id, username, project,
 * device_id, billing_class, day), then currency, device_seconds, billable_seconds and amount. A row without a
 * project has an empty project field.
 */
export function usageReportCsv(report: UsageReportCsvInput): string {
  const columns = REPORT_COLUMNS.filter((column) => report.groupBy.includes(column.group));
  const header = [...columns.map((column) => column.name), 'currency', 'device_seconds', 'billable_seconds', 'amount'];
  const rows = report.rows.map((row) => [
    ...columns.map((column) => column.cell(row)),
    text(row.currency),
    number(row.deviceSeconds),
    number(row.billableSeconds),
    number(formatMinor(row.amount, row.currency)),
  ]);
  return csv(header, rows);
}

/** Seconds as whole minutes and the seconds left: 3725 → `62 min 05 s`. */
function formatDuration(seconds: number): string {
  const sign = seconds < 0 ? '-' : '';
  const magnitude = Math.abs(seconds);
  return `${sign}${Math.floor(magnitude / 60)} min ${String(magnitude % 60).padStart(2, '0')} s`;
}

/**
 * Code points the PDF's standard fonts can show (WinAnsi: Latin-1 and a few typographic marks); anything else is
 * shown as `?` (the user id next to a name keeps a customer identifiable).
 */
const WIN_ANSI_EXTRA = new Set([
  0x20ac, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x017d, 0x2018,
  0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x017e, 0x0178,
]);

function printable(value: string): string {
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) out += ' ';
    else if (code < 0x7f || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRA.has(code)) out += char;
    else out += '?';
  }
  return out;
}

const MARGIN = 50;
const FOOTER_GAP = 24;

/**
 * An invoice as an A4 PDF in the standard Helvetica font: the issuer and title ("Invoice N", "Draft invoice",
 * marked VOID when voided), the period and customer, a table of lines (description, quantity in minutes and
 * seconds, unit price per minute, amount), the total, and a footer stating how usage is metered and rounded. The
 * same invoice always gives the same bytes: the document's dates come from the invoice.
 */
export async function invoicePdf(invoice: InvoiceDocument): Promise<Buffer> {
  // Loaded on first use: only document downloads need it.
  const { default: PDFDocument } = await import('pdfkit');
  const { currency, timeZone } = invoice;
  const title = invoice.number === null ? 'Draft invoice' : `Invoice ${invoice.number}`;
  const issuer = invoice.issuer ?? DEFAULT_ISSUER;
  const issued = new Date(invoice.finalizedAt ?? invoice.createdAt);
  const doc = new PDFDocument({
    size: 'A4',
    margin: MARGIN,
    info: {
      Title: printable(`${title} ${invoice.period}`),
      Author: printable(issuer),
      Subject: printable(`${invoice.username} ${invoice.period}`),
      CreationDate: issued,
      ModDate: new Date(invoice.voidedAt ?? issued.getTime()),
    },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const finished = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  const left = MARGIN;
  const width = doc.page.width - 2 * MARGIN;
  const localDay = (iso: string, offsetMs = 0) => dayOf(Date.parse(iso) + offsetMs, timeZone);

  doc.font('Helvetica-Bold').fontSize(11).text(printable(issuer), left, MARGIN);
  doc.font('Helvetica-Bold').fontSize(20).text(title, left, MARGIN + 20);
  if (invoice.status === 'void') {
    doc.fillColor('#b00020').fontSize(16).text('VOID', left, MARGIN + 20, { width, align: 'right' });
    doc.fillColor('black');
  } else if (invoice.status === 'draft') {
    doc.font('Helvetica').fontSize(10).text('Not final: amounts may change.', left, MARGIN + 26, {
      width,
      align: 'right',
    });
  }

  const facts: [string, string][] = [
    ['Invoice ID', invoice.id],
    [
      'Period',
      `${invoice.period} (${localDay(invoice.periodStart)} to ${localDay(invoice.periodEnd, -1)}, ${timeZone})`,
    ],
    ['Customer', `${invoice.username} (${invoice.userId})`],
    ['Plan', invoice.planName],
    ['Currency', `${currency} (amounts with ${currencyExponent(currency)} decimals)`],
    [invoice.finalizedAt === null ? 'Created' : 'Issued', localDay(issued.toISOString())],
  ];
  if (invoice.voidedAt !== null) {
    const reason = invoice.voidReason === null ? '' : `: ${invoice.voidReason}`;
    facts.push(['Voided', `${localDay(invoice.voidedAt)}${reason}`]);
  }
  let y = MARGIN + 60;
  for (const [label, value] of facts) {
    doc.font('Helvetica-Bold').fontSize(10).text(label, left, y, { width: 80 });
    doc.font('Helvetica').text(printable(value), left + 80, y, { width: width - 80 });
    y = doc.y + 4;
  }

  const descriptionWidth = width - 290;
  const columns = [
    { title: 'Description', width: descriptionWidth, align: 'left' as const },
    { title: 'Quantity', width: 100, align: 'right' as const },
    { title: 'Unit price / min', width: 90, align: 'right' as const },
    { title: `Amount (${currency})`, width: 100, align: 'right' as const },
  ];
  const bottom = doc.page.height - MARGIN;
  const row = (cells: string[], font: string) => {
    doc.font(font).fontSize(10);
    let x = left;
    let height = 0;
    columns.forEach((column, i) => {
      const cell = cells[i] ?? '';
      height = Math.max(height, doc.heightOfString(cell, { width: column.width }));
      doc.text(cell, x, y, { width: column.width, align: column.align });
      x += column.width;
    });
    y += height + 6;
  };
  const rule = () => {
    doc.moveTo(left, y - 3).lineTo(left + width, y - 3).lineWidth(0.5).stroke();
  };
  const tableHeader = () => {
    row(columns.map((column) => column.title), 'Helvetica-Bold');
    rule();
  };

  y += 16;
  tableHeader();
  for (const line of invoice.lines) {
    const withReason = line.reason !== null && line.reason !== line.description;
    const description = printable(withReason ? `${line.description}: ${line.reason}` : line.description);
    const cells = [
      description,
      line.seconds === null ? '' : formatDuration(line.seconds),
      line.pricePerMinute === null ? '' : formatMinor(line.pricePerMinute, currency),
      formatMinor(line.amount, currency),
    ];
    doc.font('Helvetica').fontSize(10);
    if (y + doc.heightOfString(description, { width: descriptionWidth }) > bottom - FOOTER_GAP) {
      doc.addPage();
      y = MARGIN;
      tableHeader();
    }
    row(cells, 'Helvetica');
  }
  if (y + 24 > bottom - FOOTER_GAP) {
    doc.addPage();
    y = MARGIN;
  }
  rule();
  y += 4;
  doc.font('Helvetica-Bold').fontSize(12).text('Total', left, y);
  doc.text(formatMoney(invoice.total, currency), left, y, { width, align: 'right' });
  y = doc.y + 12;

  const footer =
    'Usage is metered per second: every started second of a device counts. A line costs its device seconds times ' +
    'the price per minute divided by 60, rounded once per line to the nearest minor unit, halves rounded up. ' +
    'Included minutes are deducted as a negative line.';
  doc.font('Helvetica').fontSize(8);
  const footerHeight = doc.heightOfString(footer, { width });
  if (y + footerHeight > bottom) doc.addPage();
  doc.text(footer, left, bottom - footerHeight - 2, { width });

  doc.end();
  return finished;
}
