import { sql, type Kysely, type SqlBool } from 'kysely';
import type { FastifyBaseLogger } from 'fastify';
import type { Cluster } from '../cluster/cluster.js';
import { eventCommitSettled } from '../db/dialect.js';
import type { DB } from '../db/schema.js';
import { onEventAppended, type EventRow } from '../events/log.js';

/** Where an event stands in commit order: its transaction (0 on SQLite), then its place in the log. */
export interface Position {
  tx: number;
  seq: number;
}

export interface FeedEvent {
  position: Position;
  row: EventRow;
}

/**
 * Where a reader starts: after `position`, leaving out `skip`, the events past it that had committed already (on
 * PostgreSQL an event can be committed and still wait for an older transaction before the feed passes it).
 */
export interface Start {
  position: Position;
  skip: ReadonlySet<string>;
}

export function comparePositions(a: Position, b: Position): number {
  return a.tx === b.tx ? a.seq - b.seq : a.tx - b.tx;
}

const START: Position = { tx: 0, seq: 0 };

/** Events kept in memory for the streams that follow closely; one that falls further behind reads the database. */
const BUFFERED = 4096;
/** Events read from the log in one query. */
const BATCH = 1000;
/** A look at the log without a wake, for any wake that was missed. */
const POLL_MS = 1000;

function positionOf(row: Pick<EventRow, 'tx' | 'seq'>): Position {
  return { tx: Number(row.tx), seq: Number(row.seq) };
}

/**
 * Follows the event log in commit order, for the live streams and the senders of notifications.
 *
 * Log positions (`seq`) are handed out when events are written, not when they commit; on PostgreSQL a transaction
 * may commit its event after a later position has. So the feed orders by (transaction id, seq) and reads, on
 * PostgreSQL, only the events whose transaction is older than every transaction still running: once the feed has
 * passed a position, no event can appear before it. A reader that resumes from a position therefore gets every event
 * after it exactly once. On SQLite the one writer commits in log order.
 *
 * The feed looks at the log when an event is appended in this process, when the cluster says events committed on
 * any node (PostgreSQL's NOTIFY at commit), and every second in case a wake was missed. It keeps the latest events in
 * memory, so that many streams following closely cost one query per batch of events, not one each.
 */
export class EventFeed {
  readonly #db: Kysely<DB>;
  readonly #cluster: Cluster;
  readonly #log: FastifyBaseLogger;
  /** Every event after `#base` up to `#head`, in order. */
  #buffer: FeedEvent[] = [];
  #base: Position = START;
  #head: Position = START;
  #initialised: Promise<void> | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  readonly #waiters = new Set<() => void>();
  readonly #listeners = new Set<() => void>();
  readonly #stops: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(options: { db: Kysely<DB>; cluster: Cluster; log: FastifyBaseLogger }) {
    this.#db = options.db;
    this.#cluster = options.cluster;
    this.#log = options.log;
  }

  start(): void {
    const wake = () => this.wake();
    this.#stops.push(onEventAppended(() => setImmediate(wake)), this.#cluster.onEventsCommitted(wake), this.#cluster.onResync(wake));
    this.#timer = setInterval(wake, POLL_MS);
    this.#timer.unref();
    this.wake();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const stop of this.#stops.splice(0)) stop();
    await this.#reading;
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Calls `listener` after the feed read new events; returns the unsubscribe function. */
  onAppended(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Looks at the log soon. */
  wake(): void {
    if (this.#reading !== undefined) {
      this.#again = true;
      return;
    }
    this.#reading = this.#readNew().finally(() => {
      this.#reading = undefined;
      if (this.#again) {
        this.#again = false;
        this.wake();
      }
    });
  }

  /** The position of the event `eventId`, or undefined when there is no such event. */
  async positionOf(eventId: string): Promise<Position | undefined> {
    const row = await this.#db.selectFrom('events').select(['tx', 'seq']).where('id', '=', eventId).executeTakeFirst();
    return row === undefined ? undefined : positionOf(row);
  }

  /** The newest position readable now: what a stream that starts now resumes after. */
  async head(): Promise<Position> {
    await this.#catchUp();
    return this.#head;
  }

  /** Where a reader that starts now starts: every event committed from now on, and none committed before. */
  async now(): Promise<Start> {
    const position = await this.head();
    const committed = await this.#db
      .selectFrom('events')
      .select('id')
      .where(sql<SqlBool>`(${sql.ref('tx')}, ${sql.ref('seq')}) > (${position.tx}, ${position.seq})`)
      .execute();
    return { position, skip: new Set(committed.map((row) => row.id)) };
  }

  /** Up to `limit` events after `after`, in commit order: from memory when they are there, else from the log. */
  async read(after: Position, limit: number): Promise<FeedEvent[]> {
    await this.#initialise();
    if (comparePositions(after, this.#base) >= 0 && comparePositions(after, this.#head) <= 0) {
      const start = this.#indexAfter(after);
      return this.#buffer.slice(start, start + limit);
    }
    return this.#query(after, limit);
  }

  /**
   * Resolves when events after `after` may be readable, when `signal` aborts, or after `timeoutMs`, whichever comes
   * first.
   */
  changed(after: Position, signal: AbortSignal, timeoutMs: number): Promise<void> {
    if (comparePositions(this.#head, after) > 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  #indexAfter(after: Position): number {
    let low = 0;
    let high = this.#buffer.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (comparePositions(this.#buffer[middle]!.position, after) <= 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  async #query(after: Position, limit: number): Promise<FeedEvent[]> {
    const rows = await this.#db
      .selectFrom('events')
      .selectAll()
      .where(sql<SqlBool>`(${sql.ref('tx')}, ${sql.ref('seq')}) > (${after.tx}, ${after.seq})`)
      .where(eventCommitSettled(this.#db))
      .orderBy('tx')
      .orderBy('seq')
      .limit(limit)
      .execute();
    return rows.map((row) => ({ position: positionOf(row), row }));
  }

  /** Starts at the end of the log: streams begin now or from a position they name, senders from their queues. */
  #initialise(): Promise<void> {
    this.#initialised ??= (async () => {
      const last = await this.#db
        .selectFrom('events')
        .select(['tx', 'seq'])
        .where(eventCommitSettled(this.#db))
        .orderBy('tx', 'desc')
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (last !== undefined) this.#base = this.#head = positionOf(last);
    })();
    // A failed start is tried again by the next reader.
    this.#initialised.catch(() => (this.#initialised = undefined));
    return this.#initialised;
  }

  async #catchUp(): Promise<void> {
    this.wake();
    while (this.#reading !== undefined) await this.#reading;
  }

  async #readNew(): Promise<void> {
    try {
      await this.#initialise();
      for (;;) {
        const events = await this.#query(this.#head, BATCH);
        if (events.length === 0) return;
        this.#buffer.push(...events);
        this.#head = events[events.length - 1]!.position;
        if (this.#buffer.length > BUFFERED) {
          const dropped = this.#buffer.splice(0, this.#buffer.length - BUFFERED);
          this.#base = dropped[dropped.length - 1]!.position;
        }
        for (const waiter of [...this.#waiters]) waiter();
        for (const listener of [...this.#listeners]) listener();
        if (events.length < BATCH) return;
      }
    } catch (error) {
      this.#log.warn({ err: error }, 'could not read the event log for the live feed; retrying');
    }
  }
}
