import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LoneNode } from '../../src/cluster/cluster.js';
import type { Database } from '../../src/db/database.js';
import { appendEvent } from '../../src/events/log.js';
import { systemCause } from '../../src/events/types.js';
import { comparePositions, EventFeed, type FeedEvent, type Position } from '../../src/notifications/feed.js';
import { openTestDatabase, testEngine } from '../helpers/database.js';

const log = pino({ level: 'silent' });

function planCreated(db: Database['db'], name: string) {
  return appendEvent(db, {
    ...systemCause,
    type: 'plan.deleted',
    subject: { type: 'plan', id: `pln_${name}` },
    data: { plan: { id: `pln_${name}`, name, currency: 'USD', monthlyFee: 0, isDefault: false } } as never,
    occurredAt: new Date(),
  });
}

/** A transaction that has appended its event and stays open until `commit`. */
async function openTransaction(db: Database['db'], name: string): Promise<{ id: string; commit(): Promise<void> }> {
  let release!: () => void;
  const mayCommit = new Promise<void>((resolve) => (release = resolve));
  let written!: (id: string) => void;
  const id = new Promise<string>((resolve) => (written = resolve));
  const done = db.transaction().execute(async (trx) => {
    written(await planCreated(trx, name));
    await mayCommit;
  });
  return {
    id: await id,
    commit: () => {
      release();
      return done;
    },
  };
}

async function readAll(feed: EventFeed, after: Position): Promise<FeedEvent[]> {
  const all: FeedEvent[] = [];
  let cursor = after;
  for (;;) {
    const page = await feed.read(cursor, 7);
    if (page.length === 0) return all;
    all.push(...page);
    cursor = page[page.length - 1]!.position;
  }
}

describe('the event feed', () => {
  let database: Database;
  let feed: EventFeed;

  beforeEach(async () => {
    database = await openTestDatabase();
    feed = new EventFeed({ db: database.db, cluster: new LoneNode('test'), log });
  });

  afterEach(async () => {
    await feed.close();
    await database.close();
  });

  it('starts at the end of the log and reads what is appended after, in order, once', async () => {
    await planCreated(database.db, 'before');
    feed.start();
    const start = await feed.head();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push(await planCreated(database.db, `p${i}`));
    const head = await feed.head();
    expect(comparePositions(head, start)).toBeGreaterThan(0);
    const events = await readAll(feed, start);
    expect(events.map((e) => e.row.id)).toEqual(ids);
    for (let i = 1; i < events.length; i++) expect(comparePositions(events[i]!.position, events[i - 1]!.position)).toBeGreaterThan(0);
    // From a position inside the buffer, and from the log itself for one before the feed started.
    expect((await readAll(feed, events[9]!.position)).map((e) => e.row.id)).toEqual(ids.slice(10));
    const first = await feed.positionOf(ids[0]!);
    expect(first).toEqual(events[0]!.position);
    const before = (await readAll(feed, { tx: 0, seq: 0 })).map((e) => e.row.id);
    expect(before.slice(-31, -30)).toHaveLength(1);
    expect(before.slice(-30)).toEqual(ids);
    expect(await feed.positionOf('evt_01JDX3N2R1F4H7K0M3P6S9V2YB')).toBeUndefined();
  });

  it('wakes a waiting reader when an event is appended, and times out when none is', async () => {
    feed.start();
    const head = await feed.head();
    const controller = new AbortController();
    const started = Date.now();
    await feed.changed(head, controller.signal, 150);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const waiting = feed.changed(head, controller.signal, 20_000);
    const id = await planCreated(database.db, 'wake');
    await waiting;
    expect((await feed.read(head, 10)).map((e) => e.row.id)).toEqual([id]);
    // Aborting ends a wait at once.
    const now = await feed.head();
    const aborted = feed.changed(now, controller.signal, 20_000);
    controller.abort();
    await aborted;
  });

  it.runIf(testEngine === 'postgres')('holds back an event committed ahead of one still in flight, then gives both in commit order', async () => {
    feed.start();
    const head = await feed.head();
    // The first transaction writes its event, then waits; the second writes and commits meanwhile.
    const first = await openTransaction(database.db, 'first');
    const secondId = await planCreated(database.db, 'second');
    feed.wake();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await readAll(feed, head)).toEqual([]);
    await first.commit();
    await feed.head();
    expect((await readAll(feed, head)).map((e) => e.row.id)).toEqual([first.id, secondId]);
  });

  it.runIf(testEngine === 'postgres')('starts a reader now after every event committed before, even one the feed holds back', async () => {
    feed.start();
    const first = await openTransaction(database.db, 'open');
    // Committed, but behind the open transaction in commit order: the feed has not passed it yet.
    const committedBefore = await planCreated(database.db, 'before');
    const start = await feed.now();
    expect([...start.skip]).toEqual([committedBefore]);
    await first.commit();
    const after = await planCreated(database.db, 'after');
    await feed.head();
    const read = (await readAll(feed, start.position)).map((e) => e.row.id).filter((id) => !start.skip.has(id));
    // The open transaction committed after the reader started: it is news; the event committed before is not.
    expect(read).toEqual([first.id, after]);
  });
});
