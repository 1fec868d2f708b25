import { Flags } from '@oclif/core';
import type { UsageGroupBy } from '@cloudphone/sdk';
import { BaseCommand } from '../../base/base-command.js';
import { renderUsageReport } from '../../lib/billing.js';
import { UsageError } from '../../lib/errors.js';

const GROUPS: readonly UsageGroupBy[] = ['user', 'project', 'device', 'class', 'day'];
const FORMATS = ['table', 'csv', 'json'] as const;

export default class UsageReport extends BaseCommand<typeof UsageReport> {
  static override summary = 'Usage and cost grouped by user, project, device, billing class or day';

  static override description = `Device time, billable time and amounts from --from to --to (days in the billing time \
zone, both included; default: this period so far), open leases counted up to now, one row per combination of the \
--group-by values and currency, then the totals per currency. Yours unless --user names someone else (admins only); \
admins without --user see everyone's. --format csv prints the server's CSV document unchanged (amounts in major \
units); --format json (or --json) the UsageReport as the server sends it (amounts in minor units).`;

  static override examples = [
    { description: 'This period so far, by user.', command: '<%= config.bin %> usage report' },
    { description: 'December by project and day.', command: '<%= config.bin %> usage report --from 2026-12-01 --to 2026-12-31 --group-by project,day' },
    { description: 'One project as CSV.', command: '<%= config.bin %> usage report --project checkout-app --group-by day --format csv > usage.csv' },
  ];

  static override flags = {
    from: Flags.string({ summary: 'The first day, YYYY-MM-DD [default: the first day of the current period].', helpValue: '<date>' }),
    to: Flags.string({ summary: 'The last day, included, YYYY-MM-DD [default: today].', helpValue: '<date>' }),
    'group-by': Flags.string({
      summary: `What to group by, comma-separated or repeated: ${GROUPS.join(', ')} [default: user].`,
      multiple: true,
      helpValue: '<group,…>',
    }),
    user: Flags.string({ summary: "Only this user's usage (admins only, unless it is you).", aliases: ['user-id'], helpValue: '<userId>' }),
    project: Flags.string({ summary: 'Only usage of leases of this project.', helpValue: '<project>' }),
    format: Flags.string({ summary: 'How to print the report [default: table].', options: [...FORMATS] }),
  };

  async run(): Promise<void> {
    const { from, to, user, project } = this.flags;
    const format = this.jsonEnabled() ? 'json' : (this.flags.format ?? 'table');
    if (this.jsonEnabled() && this.flags.format !== undefined && this.flags.format !== 'json') {
      throw new UsageError(`--json prints the report as JSON: leave out --format ${this.flags.format}`);
    }
    const groupBy = (this.flags['group-by'] ?? []).flatMap((value) => value.split(',')).map((value) => value.trim());
    for (const group of groupBy) {
      if (!GROUPS.includes(group as UsageGroupBy)) throw new UsageError(`--group-by takes ${GROUPS.join(', ')}, not ${JSON.stringify(group)}`);
    }
    const query = {
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      ...(groupBy.length === 0 ? {} : { groupBy: [...new Set(groupBy)] as UsageGroupBy[] }),
      ...(user === undefined ? {} : { userId: user }),
      ...(project === undefined ? {} : { project }),
    };
    const client = await this.client({ authenticated: true });
    if (format === 'csv') return this.out(await client.usage.getReportCsv(query));
    const report = await client.usage.getReport(query);
    if (format === 'json') return this.outJson(report);
    if (report.rows.length === 0) return this.note(`No usage from ${report.from} to ${report.to}.`);
    this.out(renderUsageReport(report, { color: this.color }));
  }
}
