import { Flags } from '@oclif/core';
import { BaseCommand } from '../../base/base-command.js';
import { formatEventLine, reconnectNote } from '../../lib/notifications.js';

export default class EventsFollow extends BaseCommand<typeof EventsFollow> {
  static override summary = 'Print events as they happen';

  static override description = `Follows the event log live and prints one line per event you may see (admins: every \
event; others: the events they caused or that concern them): when it occurred (UTC), its type, its subject's id and who \
caused it. With --json: one Event object per line. Starts with the next event, or after --since-id's, so events missed \
since are printed first. A dropped connection is resumed after the last event printed, so none is missed or repeated. \
Runs until Ctrl-C (exit 130), or until the server refuses the credential (exit 4).`;

  static override examples = [
    { description: 'Everything you may see, as it happens.', command: '<%= config.bin %> events follow' },
    { description: 'Leases and installs only.', command: "<%= config.bin %> events follow --type 'lease.*' --type app.install.failed" },
    { description: 'One device, from an event on, as JSON lines.', command: "<%= config.bin %> events follow --subject-id dev_01JDX6A1B2C3D4E5F6G7H8J9K0 --since-id evt_01JDX3N2R1F4H7K0M3P6S9V2YB --json | jq -r '.type'" },
  ];

  static override flags = {
    type: Flags.string({ char: 't', summary: "Only events of this type, or family ('lease.*') (repeatable).", multiple: true, helpValue: '<type>' }),
    'subject-id': Flags.string({ summary: 'Only events about this subject (a user, device, lease, app, …).', helpValue: '<id>' }),
    'since-id': Flags.string({ summary: 'Start after this event: the events since then first.', helpValue: '<eventId>' }),
  };

  async run(): Promise<void> {
    const { type, 'subject-id': subjectId, 'since-id': lastEventId } = this.flags;
    const client = await this.client({ authenticated: true });
    const json = this.jsonEnabled();
    const events = client.events.follow({
      ...(type === undefined ? {} : { type }),
      ...(subjectId === undefined ? {} : { subjectId }),
      ...(lastEventId === undefined ? {} : { lastEventId }),
      onReconnect: ({ error, delay }) => this.note(reconnectNote(error, delay)),
    });
    for await (const event of events) this.out(json ? `${JSON.stringify(event)}\n` : formatEventLine(event));
  }
}
