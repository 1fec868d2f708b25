import { sql, type Kysely, type Selectable } from 'kysely';
import type { DB, NotificationsTable } from '../../db/schema.js';
import type { components } from '../../generated/types.js';
import { ApiError, type FieldError } from '../../http/errors.js';
import type { Principal } from '../../http/handler.js';
import { decodeCursor, toPage, type Page } from '../../pagination.js';
import { defaultPreference, NOTIFICATION_KINDS, type NotificationKind } from './derive.js';

type Schemas = components['schemas'];
export type Notification = Schemas['Notification'];
export type NotificationPreference = Schemas['NotificationPreference'];

type NotificationRow = Selectable<NotificationsTable>;

export interface NotificationListQuery {
  status?: 'unread' | 'read' | 'all' | undefined;
  kinds?: NotificationKind[] | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface PreferenceChange {
  kind: NotificationKind;
  inbox?: boolean | undefined;
  email?: boolean | undefined;
}

/** Unread notifications list before read ones, each group newest first. */
interface NotificationPosition {
  read: boolean;
  createdAt: string;
  id: string;
}

function readPosition(value: unknown): NotificationPosition | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { read, createdAt, id } = value as Record<string, unknown>;
  if (typeof read !== 'boolean' || typeof createdAt !== 'string' || typeof id !== 'string') return undefined;
  if (!/^ntf_[0-9A-Z]{26}$/.test(id) || Number.isNaN(Date.parse(createdAt))) return undefined;
  return { read, createdAt, id };
}

const KNOWN_KINDS: ReadonlySet<string> = new Set(NOTIFICATION_KINDS);

function notFound(id: string): ApiError {
  return new ApiError('not_found', `No notification ${id}.`);
}

/** The inbox: each user's notifications and the channels they want each kind on. */
export class InboxService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #publicUrl: () => string;
  readonly #retentionDays: number;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    /** Links are stored as API paths and shown on this base. */
    publicUrl: () => string;
    /** Read notifications older than this are purged. */
    retentionDays: number;
  }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#publicUrl = () => deps.publicUrl().replace(/\/+$/, '');
    this.#retentionDays = deps.retentionDays;
  }

  async list(principal: Principal, query: NotificationListQuery): Promise<Page<Notification>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, readPosition);
    let select = this.#db.selectFrom('notifications').selectAll().where('user_id', '=', principal.userId);
    if (query.status === 'unread') select = select.where('read_at', 'is', null);
    if (query.status === 'read') select = select.where('read_at', 'is not', null);
    if (query.kinds !== undefined && query.kinds.length > 0) select = select.where('kind', 'in', query.kinds);
    if (after !== undefined) {
      select = select.where((eb) => {
        const older = eb.or([
          eb('created_at', '<', after.createdAt),
          eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)]),
        ]);
        return after.read
          ? eb.and([eb('read_at', 'is not', null), older])
          : eb.or([eb('read_at', 'is not', null), eb.and([eb('read_at', 'is', null), older])]);
      });
    }
    const rows = await select
      .orderBy(sql`case when read_at is null then 0 else 1 end`)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit + 1)
      .execute();
    return toPage(rows, query.limit, (row) => this.#view(row), (row) => ({
      read: row.read_at !== null,
      createdAt: row.created_at,
      id: row.id,
    }));
  }

  async unreadCount(principal: Principal): Promise<number> {
    const row = await this.#db
      .selectFrom('notifications')
      .select((eb) => eb.fn.countAll<number | string>().as('unread'))
      .where('user_id', '=', principal.userId)
      .where('read_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.unread);
  }

  async get(principal: Principal, id: string): Promise<Notification> {
    return this.#view(await this.#find(this.#db, principal, id));
  }

  markRead(principal: Principal, id: string): Promise<Notification> {
    return this.#setRead(principal, id, true);
  }

  markUnread(principal: Principal, id: string): Promise<Notification> {
    return this.#setRead(principal, id, false);
  }

  /** Marks every unread notification of the caller read; returns how many were. */
  async markAllRead(principal: Principal): Promise<number> {
    const result = await this.#db
      .updateTable('notifications')
      .set({ read_at: this.#clock().toISOString() })
      .where('user_id', '=', principal.userId)
      .where('read_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async delete(principal: Principal, id: string): Promise<void> {
    const result = await this.#db
      .deleteFrom('notifications')
      .where('id', '=', id)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    if (result.numDeletedRows === 0n) throw notFound(id);
  }

  /** The caller's channels for every kind, defaults filled in. */
  async preferences(principal: Principal): Promise<NotificationPreference[]> {
    return this.#preferencesOf(this.#db, principal.userId);
  }

  /** Sets the channels given for each kind named; the others keep theirs. Returns every kind's. */
  async updatePreferences(principal: Principal, changes: readonly PreferenceChange[]): Promise<NotificationPreference[]> {
    const errors: FieldError[] = [];
    const seen = new Set<string>();
    changes.forEach((change, index) => {
      if (!KNOWN_KINDS.has(change.kind)) errors.push({ field: `/preferences/${index}/kind`, message: 'is not a notification kind' });
      else if (seen.has(change.kind)) errors.push({ field: `/preferences/${index}/kind`, message: 'is given twice' });
      else if (change.inbox === undefined && change.email === undefined) {
        errors.push({ field: `/preferences/${index}`, message: 'must set inbox or email' });
      }
      seen.add(change.kind);
    });
    if (errors.length > 0) throw new ApiError('validation_failed', 'The notification preferences are invalid.', { errors });
    return this.#db.transaction().execute(async (trx) => {
      const current = new Map((await this.#preferencesOf(trx, principal.userId)).map((pref) => [pref.kind, pref]));
      for (const change of changes) {
        const before = current.get(change.kind)!;
        const inbox = (change.inbox ?? before.inbox) ? 1 : 0;
        const email = (change.email ?? before.email) ? 1 : 0;
        await trx
          .insertInto('notification_preferences')
          .values({ user_id: principal.userId, kind: change.kind, inbox, email })
          .onConflict((oc) => oc.columns(['user_id', 'kind']).doUpdateSet({ inbox, email }))
          .execute();
      }
      return this.#preferencesOf(trx, principal.userId);
    });
  }

  /** Deletes the read notifications older than the retention; returns how many. */
  async purgeRead(now: Date): Promise<number> {
    const before = new Date(now.getTime() - this.#retentionDays * 86_400_000).toISOString();
    const result = await this.#db
      .deleteFrom('notifications')
      .where('read_at', 'is not', null)
      .where('created_at', '<', before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async #setRead(principal: Principal, id: string, read: boolean): Promise<Notification> {
    return this.#db.transaction().execute(async (trx) => {
      const row = await this.#find(trx, principal, id);
      if ((row.read_at !== null) === read) return this.#view(row);
      const readAt = read ? this.#clock().toISOString() : null;
      await trx.updateTable('notifications').set({ read_at: readAt }).where('id', '=', id).execute();
      return this.#view({ ...row, read_at: readAt });
    });
  }

  /** Another user's notification is not found, whoever asks: the inbox is private, admins' included. */
  async #find(db: Kysely<DB>, principal: Principal, id: string): Promise<NotificationRow> {
    const row = await db
      .selectFrom('notifications')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', principal.userId)
      .executeTakeFirst();
    if (row === undefined) throw notFound(id);
    return row;
  }

  async #preferencesOf(db: Kysely<DB>, userId: string): Promise<NotificationPreference[]> {
    const rows = await db
      .selectFrom('notification_preferences')
      .select(['kind', 'inbox', 'email'])
      .where('user_id', '=', userId)
      .execute();
    const stored = new Map(rows.map((row) => [row.kind, row]));
    return NOTIFICATION_KINDS.map((kind) => {
      const row = stored.get(kind);
      return row === undefined ? { kind, ...defaultPreference(kind) } : { kind, inbox: row.inbox === 1, email: row.email === 1 };
    });
  }

  #view(row: NotificationRow): Notification {
    return {
      id: row.id,
      kind: row.kind as NotificationKind,
      title: row.title,
      body: row.body,
      link: row.link === null ? null : `${this.#publicUrl()}${row.link}`,
      subject:
        row.subject_type !== null && row.subject_id !== null
          ? { type: row.subject_type as Schemas['EventSubject']['type'], id: row.subject_id }
          : null,
      eventId: row.event_id,
      read: row.read_at !== null,
      readAt: row.read_at,
      createdAt: row.created_at,
    };
  }
}
