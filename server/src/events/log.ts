import { sql, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { newId } from '../db/ids.js';
import type { DB, EventsTable } from '../db/schema.js';
import { likeLiteral } from '../pagination.js';
import { notifyFromEvent } from '../notifications/inbox/outbox.js';
import { enqueueWebhookDeliveries } from '../notifications/webhooks/outbox.js';
import { audienceOf } from './audience.js';
import type { AppendedEvent, EventType, NewEvent } from './types.js';

export type EventRow = Selectable<EventsTable>;

const appendedListeners = new Set<() => void>();

/**
 * Calls `listener` each time an event is appended in this process, before its transaction commits: a hint to look
 * at the log soon (the one SQLite connection serves that look after the commit). Returns the unsubscribe function.
 */
export function onEventAppended(listener: () => void): () => void {
  appendedListeners.add(listener);
  return () => appendedListeners.delete(listener);
}

/**
 * Appends an event to the log. Pass the transaction of the change the event records, so that both commit together
 * or not at all. In the same transaction the event is queued for the webhook endpoints that want it and becomes
 * the notifications (and emails) of the users it concerns: nothing is announced that did not commit, and nothing
 * that committed goes unannounced.
 */
export async function appendEvent<T extends EventType>(db: Kysely<DB>, event: NewEvent<T>): Promise<string> {
  const id = newId('evt', event.occurredAt.getTime());
  const { actor } = event;
  const appended: AppendedEvent = {
    id,
    type: event.type,
    occurredAt: event.occurredAt.toISOString(),
    actorId: actor.type === 'user' ? actor.id : null,
    subjectType: event.subject?.type ?? null,
    subjectId: event.subject?.id ?? null,
    audienceId: await audienceOf(db, event),
    data: event.data,
    requestId: event.requestId,
  };
  await db
    .insertInto('events')
    .values({
      id,
      type: appended.type,
      occurred_at: appended.occurredAt,
      actor_type: actor.type,
      actor_id: appended.actorId,
      actor_username: actor.type === 'user' ? actor.username : null,
      subject_type: appended.subjectType,
      subject_id: appended.subjectId,
      audience_id: appended.audienceId,
      data: JSON.stringify(event.data),
      request_id: event.requestId,
    })
    .execute();
  await enqueueWebhookDeliveries(db, appended);
  await notifyFromEvent(db, appended);
  for (const listener of appendedListeners) listener();
  return id;
}

export interface EventQuery {
  /** Exact types, or families written `family.*`. */
  types: readonly string[];
  /** ISO timestamps: `since` inclusive, `until` exclusive. */
  since: string | undefined;
  until: string | undefined;
  subjectId: string | undefined;
  /** Only events this user caused or that concern them; `undefined` for every event. */
  visibleTo: string | undefined;
  order: 'asc' | 'desc';
  /** The log position after which (in `order`) the page starts. */
  afterSeq: number | undefined;
  limit: number;
}

export async function queryEvents(db: Kysely<DB>, query: EventQuery): Promise<EventRow[]> {
  const { types, since, until, subjectId, visibleTo, order, afterSeq } = query;
  let select = db.selectFrom('events').selectAll();
  if (types.length > 0) {
    select = select.where((eb) =>
      eb.or(
        types.map((type) =>
          type.endsWith('.*')
            ? sql<SqlBool>`${sql.ref('type')} like ${`${likeLiteral(type.slice(0, -1))}%`} escape '\\'`
            : eb('type', '=', type),
        ),
      ),
    );
  }
  if (since !== undefined) select = select.where('occurred_at', '>=', since);
  if (until !== undefined) select = select.where('occurred_at', '<', until);
  if (subjectId !== undefined) select = select.where('subject_id', '=', subjectId);
  if (visibleTo !== undefined) {
    select = select.where((eb) =>
      eb.or([eb('actor_id', '=', visibleTo), eb('subject_id', '=', visibleTo), eb('audience_id', '=', visibleTo)]),
    );
  }
  if (afterSeq !== undefined) select = select.where('seq', order === 'asc' ? '>' : '<', afterSeq);
  return select.orderBy('seq', order).limit(query.limit).execute();
}

export async function findEvent(db: Kysely<DB>, id: string): Promise<EventRow | undefined> {
  return db.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
}
