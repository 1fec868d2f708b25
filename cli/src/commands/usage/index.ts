import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { renderUsageSummary } from '../../lib/billing.js';

export default class Usage extends BaseCommand<typeof Usage> {
  static override summary = "This period's usage, cost and limits at a glance";

  static override description = `Shows a user's plan, device time (h:mm:ss), included time used and left, the cost so \
far, the monthly fee and the total (in the currency's major units), the budget spent and left, the quotas, and the \
cost by billing class. Open leases count up to now. Yours unless --user names someone else (admins only); the \
current period unless --period. With --json: the UsageSummary as the server sends it (amounts in minor units).`;

  static override examples = [
    { description: 'Your usage this period.', command: '<%= config.bin %> usage' },
    { description: "Someone's usage last month (admins).", command: '<%= config.bin %> usage --user usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA --period 2026-11' },
    { description: 'The total so far, for a script.', command: '<%= config.bin %> usage --json | jq .total' },
  ];

  static override flags = {
    user: Flags.string({ summary: "This user's usage instead of yours (admins only).", aliases: ['user-id'], helpValue: '<userId>' }),
    period: Flags.string({ summary: 'The period, YYYY-MM [default: the current one].', helpValue: '<YYYY-MM>' }),
  };

  async run(): Promise<void> {
    const { user, period } = this.flags;
    const client = await this.client({ authenticated: true });
    const summary = await client.usage.get({ ...(user === undefined ? {} : { userId: user }), ...(period === undefined ? {} : { period }) });
    if (this.jsonEnabled()) return this.outJson(summary);
    this.out(renderUsageSummary(summary, { color: this.color }));
  }
}
