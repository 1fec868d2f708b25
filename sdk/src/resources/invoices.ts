import { stat } from 'node:fs/promises';
import { clientInternals, type RequestOptions } from '../client.js';
import type { BinaryResponse } from '../core/binary.js';
import type { Invoice } from '../generated/models.js';
import type { QueryOf } from '../generated/operations.js';
import { InvoicesResource } from '../generated/resources.js';

/** The media type of each document format of `downloadInvoice`. */
const MEDIA_TYPES = { pdf: 'application/pdf', csv: 'text/csv' } as const;

/** `cp.invoices`: the generated invoice operations, with `download` asking for the format's media type, and `downloadTo`. */
export class Invoices extends InvoicesResource {
  /**
   * Downloads the invoice as a PDF document (`format: 'pdf'`, the default) or its lines as CSV (`format: 'csv'`):
   * read the `BinaryResponse` once (`bytes()`, `text()`, `toFile()`, `body`). Its `Content-Disposition` header
   * names the file.
   *
   * @example
   * ```ts
   * const pdf = await (await cp.invoices.download('inv_01JDXD2E3F4G5H6J7K8M9N0P1Q')).bytes();
   * const csv = await (await cp.invoices.download('inv_01JDXD2E3F4G5H6J7K8M9N0P1Q', { format: 'csv' })).text();
   * ```
   */
  override download(invoice: string | Pick<Invoice, 'id'>, query?: QueryOf<'downloadInvoice'>, options?: RequestOptions): Promise<BinaryResponse> {
    const format = query?.format ?? 'pdf';
    return clientInternals(this.client).requestAs(
      'downloadInvoice',
      MEDIA_TYPES[format],
      { path: { invoiceId: invoiceIdOf(invoice) }, query: { ...query, format } },
      options,
    );
  }

  /** Downloads the invoice into `localPath` (created or truncated), streaming, and resolves to the bytes written. */
  async downloadTo(
    invoice: string | Pick<Invoice, 'id'>,
    localPath: string,
    query?: QueryOf<'downloadInvoice'>,
    options?: RequestOptions,
  ): Promise<number> {
    const response = await this.download(invoice, query, options);
    await response.toFile(localPath);
    return (await stat(localPath)).size;
  }
}

function invoiceIdOf(invoice: string | Pick<Invoice, 'id'>): string {
  return typeof invoice === 'string' ? invoice : invoice.id;
}
