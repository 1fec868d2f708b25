import { sql, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { newId } from '../db/ids.js';
import type { DB, EventsTable } from '../db/schema.js';
import { likeLiteral } from '../pagination.js';
import type { EventType, NewEvent } from './types.js';

export type EventRow = Selectable<EventsTable>;

/**
 * Appends an event to the log. Pass the transaction of the change the event records, so that both commit together
 * or not at all.
 */
export async function appendEvent<T extends EventType>(db: Kysely<DB>, event: NewEvent<T>): Promise<string> {
  const id = newId('evt', event.occurredAt.getTime());
  const { actor } = event;
  await db
    .insertInto('events')
    .values({
      id,
      type: event.type,
      occurred_at: event.occurredAt.toISOString(),
      actor_type: actor.type,
      actor_id: actor.type === 'user' ? actor.id : null,
      actor_username: actor.type === 'user' ? actor.username : null,
      subject_type: event.subject?.type ?? null,
      subject_id: event.subject?.id ?? null,
      data: JSON.stringify(event.data),
      request_id: event.requestId,
    })
    .execute();
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
    select = select.where((eb) => eb.or([eb('actor_id', '=', visibleTo), eb('subject_id', '=', visibleTo)]));
  }
  if (afterSeq !== undefined) select = select.where('seq', order === 'asc' ? '>' : '<', afterSeq);
  return select.orderBy('seq', order).limit(query.limit).execute();
}

export async function findEvent(db: Kysely<DB>, id: string): Promise<EventRow | undefined> {
  return db.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
}
