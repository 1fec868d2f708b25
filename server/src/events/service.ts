import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, toPage, type Page } from '../pagination.js';
import { findEvent, queryEvents, type EventRow } from './log.js';
import type { EventData, EventType, Subject } from './types.js';

/** An event as the contract shows it. */
export type EventView = {
  [T in EventType]: {
    id: string;
    type: T;
    occurredAt: string;
    actor: { type: 'user' | 'system' | 'anonymous'; id: string | null; username: string | null };
    subject: Subject | null;
    data: EventData<T>;
    requestId: string | null;
  };
}[EventType];

export interface EventListQuery {
  types?: string[] | undefined;
  since?: string | undefined;
  until?: string | undefined;
  subjectId?: string | undefined;
  order?: 'asc' | 'desc' | undefined;
  cursor?: string | undefined;
  limit: number;
}

interface EventPosition {
  seq: number;
  order: 'asc' | 'desc';
}

function readPosition(value: unknown): EventPosition | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { seq, order } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(seq) || (seq as number) < 0 || (order !== 'asc' && order !== 'desc')) return undefined;
  return { seq: seq as number, order };
}

/** Rows are written only by `appendEvent`, whose types tie each event type to the shape of its data. */
export function toView(row: EventRow): EventView {
  return {
    id: row.id,
    type: row.type,
    occurredAt: row.occurred_at,
    actor: { type: row.actor_type, id: row.actor_id, username: row.actor_username },
    subject:
      row.subject_type !== null && row.subject_id !== null
        ? { type: row.subject_type as Subject['type'], id: row.subject_id }
        : null,
    data: JSON.parse(row.data),
    requestId: row.request_id,
  } as EventView;
}

const texts = new WeakMap<EventRow, string>();

/**
 * The event as the contract's JSON text, made once per row: the feed hands the same row to every live stream and to
 * the webhook sender, which all send this text.
 */
export function eventJson(row: EventRow): string {
  let text = texts.get(row);
  if (text === undefined) {
    text = JSON.stringify(toView(row));
    texts.set(row, text);
  }
  return text;
}

/** Admins see the whole log; everyone else the events they caused or that are about them (`canSee`). */
function visibleTo(principal: Principal): string | undefined {
  return principal.role === 'admin' ? undefined : principal.userId;
}

/** Whether the caller may see the event: admins every one, others those they caused or that concern them. */
export function canSee(principal: Pick<Principal, 'role' | 'userId'>, row: Pick<EventRow, 'actor_id' | 'subject_id' | 'audience_id'>): boolean {
  if (principal.role === 'admin') return true;
  const { userId } = principal;
  return row.actor_id === userId || row.subject_id === userId || row.audience_id === userId;
}

export class EventService {
  readonly #db: Kysely<DB>;

  constructor(db: Kysely<DB>) {
    this.#db = db;
  }

  async list(principal: Principal, query: EventListQuery): Promise<Page<EventView>> {
    const order = query.order ?? 'asc';
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, readPosition);
    if (after !== undefined && after.order !== order) {
      throw new ApiError('invalid_cursor', `The cursor belongs to a list in ${after.order} order.`);
    }
    const rows = await queryEvents(this.#db, {
      types: query.types ?? [],
      since: query.since === undefined ? undefined : new Date(query.since).toISOString(),
      until: query.until === undefined ? undefined : new Date(query.until).toISOString(),
      subjectId: query.subjectId,
      visibleTo: visibleTo(principal),
      order,
      afterSeq: after?.seq,
      limit: query.limit + 1,
    });
    return toPage(rows, query.limit, toView, (row) => ({ seq: row.seq, order }));
  }

  async get(principal: Principal, eventId: string): Promise<EventView> {
    const row = await findEvent(this.#db, eventId);
    if (row === undefined || !canSee(principal, row)) {
      throw new ApiError('not_found', `No event ${eventId}.`);
    }
    return toView(row);
  }
}
