import { clientInternals, type RequestOptions } from '../client.js';
import { CloudPhoneError } from '../core/errors.js';
import type { UsageReport } from '../generated/models.js';
import type { QueryOf } from '../generated/operations.js';
import { UsageResource } from '../generated/resources.js';

/** The query of a usage report, whatever its format. */
export type UsageReportQuery = Omit<QueryOf<'getUsageReport'>, 'format'>;

/** `cp.usage`: the generated usage operations, plus `getReportCsv` for the report as the server's CSV document. */
export class Usage extends UsageResource {
  /** The usage report as JSON. For CSV, use `getReportCsv`. */
  override getReport(query?: QueryOf<'getUsageReport'>, options?: RequestOptions): Promise<UsageReport> {
    if (query?.format === 'csv') return Promise.reject(new CloudPhoneError('getReport answers JSON: use getReportCsv for CSV.'));
    return super.getReport(query, options);
  }

  /**
   * The usage report as the server's CSV document, unchanged: the grouped columns of
   * `user_id,username,project,device_id,billing_class,day`, then `currency,device_seconds,billable_seconds,amount`
   * (amounts in major units), CRLF line ends.
   *
   * @example
   * ```ts
   * const csv = await cp.usage.getReportCsv({ from: '2026-12-01', to: '2026-12-31', groupBy: ['project', 'day'] });
   * await writeFile('usage.csv', csv);
   * ```
   */
  async getReportCsv(query: UsageReportQuery = {}, options?: RequestOptions): Promise<string> {
    const response = await clientInternals(this.client).requestAs('getUsageReport', 'text/csv', { query: { ...query, format: 'csv' } }, options);
    return response.text();
  }
}
