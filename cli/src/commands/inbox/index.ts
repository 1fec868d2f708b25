import { Flags } from '@oclif/core';
import type { Notification } from '@cloudphone/sdk';
import { BaseCommand } from '../../base/base-command.js';
import { renderTable } from '../../lib/output.js';
import { INBOX_COLUMNS, inboxRows } from '../../lib/notifications.js';

/** How many notifications the inbox shows without --limit or --all. */
const DEFAULT_LIMIT = 20;
/** The most one page may hold. */
const MAX_PAGE_SIZE = 200;

export default class Inbox extends BaseCommand<typeof Inbox> {
  static override summary = 'Your notifications, unread first';

  static override description = `Shows your notifications, unread ones first, then newest first: id, when (UTC), kind, \
title and whether you read it. The first ${DEFAULT_LIMIT} unless --limit or --all; only the unread ones with --unread. \
With --json: the notifications as an array. Mark them read with \`inbox read <id>\` or \`inbox read --all\`; \
\`inbox get <id>\` shows one whole.`;

  static override examples = [
    { description: 'Your inbox at a glance.', command: '<%= config.bin %> inbox' },
    { description: 'Only what you have not read.', command: '<%= config.bin %> inbox --unread' },
    { description: 'Every notification, as JSON.', command: '<%= config.bin %> inbox --all --json' },
  ];

  static override flags = {
    unread: Flags.boolean({ summary: 'Only unread notifications.' }),
    all: Flags.boolean({ summary: 'Every notification, not just the first ones.', exclusive: ['limit'] }),
    limit: Flags.integer({ summary: `Show at most this many [default: ${DEFAULT_LIMIT}].`, min: 1, exclusive: ['all'] }),
  };

  async run(): Promise<void> {
    const { unread, all } = this.flags;
    const limit = all ? Number.POSITIVE_INFINITY : (this.flags.limit ?? DEFAULT_LIMIT);
    const client = await this.client({ authenticated: true });
    const notifications: Notification[] = [];
    let more = false;
    for await (const notification of client.inbox.list({ status: unread ? 'unread' : 'all', limit: Math.min(limit, MAX_PAGE_SIZE) })) {
      if (notifications.length === limit) {
        more = true;
        break;
      }
      notifications.push(notification);
    }
    if (this.jsonEnabled()) return this.outJson(notifications);
    if (notifications.length === 0) return this.note(unread ? 'No unread notifications.' : 'No notifications.');
    this.out(renderTable(inboxRows(notifications), INBOX_COLUMNS, { color: this.color }));
    if (more) this.note(`Showing the first ${notifications.length}. There are more: use --limit <n> or --all.`);
  }
}
