import { Args, Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { UsageError } from '../../lib/errors.js';

export default class InboxRead extends BaseCommand<typeof InboxRead> {
  static override summary = 'Mark notifications read';

  static override description = `Marks one of your notifications read (with --json: the notification), or with --all \
every unread one (with --json: {"updated": n}, how many were unread). Marking a read notification again keeps when \
it was first read. \`inbox unread <id>\` undoes it.`;

  static override examples = [
    { description: 'One notification.', command: '<%= config.bin %> inbox read ntf_01JDXF3G4H5J6K7M8N9P0Q1R2S' },
    { description: 'Everything unread.', command: '<%= config.bin %> inbox read --all' },
  ];

  static override args = {
    'notification-id': Args.string({ required: false, ignoreStdin: true, description: 'The notification id (ntf_…).' }),
  };

  static override flags = {
    all: Flags.boolean({ summary: 'Mark every unread notification read.' }),
  };

  async run(): Promise<void> {
    const id = this.args['notification-id'];
    const { all } = this.flags;
    if (all && id !== undefined) throw new UsageError('Give a notification id or --all, not both');
    if (!all && id === undefined) throw new UsageError('Missing notification-id: give the id of a notification (ntf_…), or --all');
    const client = await this.client({ authenticated: true });
    if (all) {
      const marked = await client.inbox.markAllRead();
      if (this.jsonEnabled()) return this.outJson(marked);
      this.note(marked.updated === 1 ? '1 notification marked read.' : `${marked.updated} notifications marked read.`);
      return;
    }
    const notification = await client.inbox.markRead(id!);
    if (this.jsonEnabled()) return this.outJson(notification);
    this.note(`${notification.id} marked read: ${notification.title}`);
  }
}
