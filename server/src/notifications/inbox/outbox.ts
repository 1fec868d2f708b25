import type { Kysely } from 'kysely';
import { newId } from '../../db/ids.js';
import type { DB } from '../../db/schema.js';
import type { AppendedEvent, EventData } from '../../events/types.js';
import { enqueueEmail } from '../email/queue.js';
import { defaultPreference, namesNeeded, notificationsFor, type EventNames, type NotificationDraft } from './derive.js';

interface Recipient {
  id: string;
  inbox: number | null;
  email: number | null;
  address: string | null;
  verified_at: string | null;
}

/** The draft's users (a missing one is skipped), with their preference for its kind and their address. */
async function recipientsOf(trx: Kysely<DB>, draft: NotificationDraft): Promise<Recipient[]> {
  let query = trx
    .selectFrom('users')
    .leftJoin('notification_preferences as p', (join) =>
      join.onRef('p.user_id', '=', 'users.id').on('p.kind', '=', draft.kind),
    )
    .leftJoin('user_emails as e', 'e.user_id', 'users.id')
    .select(['users.id', 'p.inbox', 'p.email', 'e.email as address', 'e.verified_at']);
  query =
    draft.recipient === 'admins'
      ? query.where('users.role', '=', 'admin').where('users.disabled', '=', 0)
      : query.where('users.id', '=', draft.recipient);
  return query.orderBy('users.id').execute();
}

/** The package and the device an install failure's data names by id (either may be gone). */
async function installNames(trx: Kysely<DB>, event: AppendedEvent): Promise<EventNames> {
  const { appId, deviceId } = event.data as EventData<'app.install.failed'>;
  const app = await trx
    .selectFrom('apps')
    .innerJoin('app_blobs', 'app_blobs.sha256', 'apps.sha256')
    .select('app_blobs.package_name')
    .where('apps.id', '=', appId)
    .executeTakeFirst();
  const device = await trx.selectFrom('devices').select(['serial', 'model']).where('id', '=', deviceId).executeTakeFirst();
  return { packageName: app?.package_name, device };
}

/**
 * Puts the notifications an event gives rise to in their recipients' inboxes and queues their emails, in the
 * event's transaction: a notification exists exactly when its event committed. An event that notifies no one costs
 * no query.
 */
export async function notifyFromEvent(trx: Kysely<DB>, event: AppendedEvent): Promise<void> {
  let drafts = notificationsFor(event);
  if (drafts.length === 0) return;
  if (namesNeeded(event)) drafts = notificationsFor(event, await installNames(trx, event));
  const at = new Date(event.occurredAt);
  for (const draft of drafts) {
    const defaults = defaultPreference(draft.kind);
    const recipients = await recipientsOf(trx, draft);
    const inbox = recipients.filter((user) => (user.inbox === null ? defaults.inbox : user.inbox === 1));
    if (inbox.length > 0) {
      await trx
        .insertInto('notifications')
        .values(
          inbox.map((user) => ({
            id: newId('ntf', at.getTime()),
            user_id: user.id,
            kind: draft.kind,
            title: draft.title,
            body: draft.body,
            link: draft.link,
            subject_type: draft.subject?.type ?? null,
            subject_id: draft.subject?.id ?? null,
            event_id: event.id,
            created_at: event.occurredAt,
            read_at: null,
          })),
        )
        .execute();
    }
    for (const user of recipients) {
      const email = user.email === null ? defaults.email : user.email === 1;
      if (!email || user.address === null || user.verified_at === null) continue;
      await enqueueEmail(trx, {
        userId: user.id,
        to: user.address,
        kind: draft.kind,
        title: draft.title,
        body: draft.body,
        link: draft.link,
        data: { eventId: event.id, eventType: event.type, occurredAt: event.occurredAt, subject: draft.subject },
      }, at);
    }
  }
}
