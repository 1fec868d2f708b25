import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/db/database.js';
import { ulid } from '../../../src/db/ids.js';
import type { DB } from '../../../src/db/schema.js';
import type { AppendedEvent } from '../../../src/events/types.js';
import type { Principal } from '../../../src/http/handler.js';
import { notifyFromEvent } from '../../../src/notifications/inbox/outbox.js';
import { InboxService } from '../../../src/notifications/inbox/service.js';
import { ManualClock } from '../../helpers/clock.js';
import { expectSchema } from '../../helpers/contract.js';
import { openTestDatabase } from '../../helpers/database.js';
import { insertUser } from '../../helpers/users.js';
import { leaseFixture } from '../../leases/fixture.js';
import { appended, rejection } from './fixture.js';

const LEASE = 'lse_01JDX7M3N4P5Q6R7S8T9V0W1X2';
const open: Database[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((database) => database.close()));
});

async function setup() {
  const database = await openTestDatabase();
  open.push(database);
  const { db } = database;
  const clock = new ManualClock('2026-11-21T14:00:00.000Z');
  const at = clock.now().toISOString();
  const inbox = new InboxService({ db, clock: clock.now, publicUrl: () => 'http://127.0.0.1:8080', retentionDays: 30 });
  const user = (name: string, role: 'admin' | 'member' = 'member') => insertUser(db, name, role, at);
  return { db, clock, inbox, user };
}

function expiring(userId: string): AppendedEvent {
  const lease = { id: LEASE, userId, status: 'granted', count: 1, expiresAt: '2026-11-21T14:15:00.000Z' };
  return appended('lease.expiring', { lease, minutesLeft: 5 });
}

function expired(userId: string): AppendedEvent {
  return appended('lease.expired', { lease: { id: LEASE, userId, status: 'expired', count: 1, expiresAt: '2026-11-21T14:15:00.000Z' } });
}

function hostUnreachable(): AppendedEvent {
  const host = { id: 'hst_1', name: 'rack-2', address: '127.0.0.1:5037', type: 'adb_server' };
  return appended('host.unreachable', { host, error: 'connect ECONNREFUSED' });
}

async function setEmail(db: Kysely<DB>, userId: string, email: string, verified: boolean): Promise<void> {
  const at = '2026-11-21T13:00:00.000Z';
  await db
    .insertInto('user_emails')
    .values({ user_id: userId, email, verified_at: verified ? at : null, token_hash: null, token_expires_at: null, updated_at: at })
    .execute();
}

async function inboxOf(db: Kysely<DB>, userId: string) {
  return db.selectFrom('notifications').selectAll().where('user_id', '=', userId).orderBy('id').execute();
}

async function mailsTo(db: Kysely<DB>, userId: string) {
  return db.selectFrom('email_messages').selectAll().where('user_id', '=', userId).execute();
}

/** A notification for `principal` created `minutesAgo` before the clock's start. */
async function seed(db: Kysely<DB>, principal: Principal, kind: string, minutesAgo: number, readAt: string | null = null): Promise<string> {
  const ms = Date.parse('2026-11-21T14:00:00.000Z') - minutesAgo * 60_000;
  const id = `ntf_${ulid(ms)}`;
  await db
    .insertInto('notifications')
    .values({
      id,
      user_id: principal.userId,
      kind,
      title: `${kind} ${minutesAgo}`,
      body: 'body',
      link: `/v1/leases/${LEASE}`,
      subject_type: 'lease',
      subject_id: LEASE,
      event_id: null,
      created_at: new Date(ms).toISOString(),
      read_at: readAt,
    })
    .execute();
  return id;
}

describe('notifyFromEvent', () => {
  it('asks the database nothing for an event that notifies no one', async () => {
    const untouchable = new Proxy({} as Kysely<DB>, {
      get() {
        throw new Error('the database was used');
      },
    });
    await notifyFromEvent(untouchable, appended('lease.renewed', { lease: {} }));
    await notifyFromEvent(untouchable, appended('device.disconnected', { device: {} }, null));
  });

  it("puts the notification in the recipient's inbox and mails it to their verified address when the kind mails by default", async () => {
    const { db, user } = await setup();
    const alice = await user('alice');
    await setEmail(db, alice.userId, 'alice@example.com', true);
    const appended = expiring(alice.userId);
    await db.transaction().execute((trx) => notifyFromEvent(trx, appended));
    expect(await inboxOf(db, alice.userId)).toEqual([
      {
        id: expect.stringMatching(/^ntf_[0-9A-Z]{26}$/),
        user_id: alice.userId,
        kind: 'lease.expiring',
        title: 'Lease expiring in 5 minutes',
        body: expect.stringContaining(LEASE),
        link: `/v1/leases/${LEASE}`,
        subject_type: 'lease',
        subject_id: LEASE,
        event_id: appended.id,
        created_at: '2026-11-21T14:10:00.000Z',
        read_at: null,
      },
    ]);
    const mails = await mailsTo(db, alice.userId);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatchObject({
      to_address: 'alice@example.com',
      kind: 'lease.expiring',
      title: 'Lease expiring in 5 minutes',
      link: `/v1/leases/${LEASE}`,
      status: 'pending',
    });
    expect(JSON.parse(mails[0]!.data)).toMatchObject({ eventId: appended.id, eventType: 'lease.expiring' });
  });

  it('mails no unverified address, and no kind that is not mailed by default', async () => {
    const { db, user } = await setup();
    const bob = await user('bob');
    const carol = await user('carol');
    await setEmail(db, bob.userId, 'bob@example.com', false);
    await setEmail(db, carol.userId, 'carol@example.com', true);
    await db.transaction().execute(async (trx) => {
      await notifyFromEvent(trx, expiring(bob.userId));
      await notifyFromEvent(trx, expired(carol.userId));
    });
    expect(await inboxOf(db, bob.userId)).toHaveLength(1);
    expect(await inboxOf(db, carol.userId)).toHaveLength(1);
    expect(await mailsTo(db, bob.userId)).toEqual([]);
    expect(await mailsTo(db, carol.userId)).toEqual([]);
  });

  it("follows the recipient's preferences for the kind", async () => {
    const { db, inbox, user } = await setup();
    const alice = await user('alice');
    await setEmail(db, alice.userId, 'alice@example.com', true);
    await inbox.updatePreferences(alice, [
      { kind: 'lease.expiring', inbox: false },
      { kind: 'lease.expired', email: true },
    ]);
    await db.transaction().execute(async (trx) => {
      await notifyFromEvent(trx, expiring(alice.userId));
      await notifyFromEvent(trx, expired(alice.userId));
    });
    expect((await inboxOf(db, alice.userId)).map((row) => row.kind)).toEqual(['lease.expired']);
    expect((await mailsTo(db, alice.userId)).map((row) => row.kind).sort()).toEqual(['lease.expired', 'lease.expiring']);
  });

  it('sends what concerns admins to every enabled admin', async () => {
    const { db, user } = await setup();
    const root = await user('root', 'admin');
    const ops = await user('ops', 'admin');
    const gone = await user('gone', 'admin');
    const member = await user('member');
    await db.updateTable('users').set({ disabled: 1 }).where('id', '=', gone.userId).execute();
    await db.transaction().execute((trx) => notifyFromEvent(trx, hostUnreachable()));
    const rows = await db.selectFrom('notifications').select(['user_id', 'kind']).orderBy('user_id').execute();
    expect(rows).toEqual(
      [ops, root].map((admin) => ({ user_id: admin.userId, kind: 'host.unreachable' })).sort((a, b) => a.user_id.localeCompare(b.user_id)),
    );
    expect(rows.some((row) => row.user_id === member.userId || row.user_id === gone.userId)).toBe(false);
  });

  it("names the app's package and the device of a failed install", async () => {
    const { db, device, user } = await leaseFixture();
    const bob = await user('bob');
    const at = '2026-11-21T13:00:00.000Z';
    const sha256 = 'a'.repeat(64);
    await db.insertInto('app_blobs').values({ sha256, size: 1, package_name: 'com.example.shop', metadata: '{}', icon_sha256: null, created_at: at }).execute();
    await db.insertInto('apps').values({ id: 'app_1', sha256, owner_id: bob.userId, file_name: null, shared: 0, created_at: at }).execute();
    await device('dev_1');
    const failed = (appId: string, deviceId: string) =>
      appended('app.install.failed', { jobId: 'ijb_1', appId, deviceId, reason: 'INSTALL_FAILED_OLDER_SDK' }, bob.userId);
    await db.transaction().execute(async (trx) => {
      await notifyFromEvent(trx, failed('app_1', 'dev_1'));
      await notifyFromEvent(trx, failed('app_gone', 'dev_gone'));
    });
    expect((await inboxOf(db, bob.userId)).map((row) => [row.title, row.body])).toEqual([
      ['Install of com.example.shop failed', 'Installing com.example.shop on Pixel 8 (serial-dev_1) failed: INSTALL_FAILED_OLDER_SDK'],
      ['Install of app app_gone failed', 'Installing app app_gone on device dev_gone failed: INSTALL_FAILED_OLDER_SDK'],
    ]);
  });

  it('skips a recipient who no longer exists', async () => {
    const { db } = await setup();
    await db.transaction().execute((trx) => notifyFromEvent(trx, expiring('usr_nobody')));
    expect(await db.selectFrom('notifications').selectAll().execute()).toEqual([]);
  });

  it('writes nothing when the transaction of the event rolls back', async () => {
    const { db, user } = await setup();
    const alice = await user('alice');
    await setEmail(db, alice.userId, 'alice@example.com', true);
    await expect(
      db.transaction().execute(async (trx) => {
        await notifyFromEvent(trx, expiring(alice.userId));
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await inboxOf(db, alice.userId)).toEqual([]);
    expect(await mailsTo(db, alice.userId)).toEqual([]);
  });
});

describe('InboxService', () => {
  it('lists unread notifications first, each group newest first, across pages', async () => {
    const { db, inbox, user } = await setup();
    const alice = await user('alice');
    const read = '2026-11-21T13:59:00.000Z';
    const ids = {
      unreadOld: await seed(db, alice, 'lease.expired', 50),
      readNew: await seed(db, alice, 'lease.expiring', 5, read),
      unreadNew: await seed(db, alice, 'lease.ended', 10),
      readOld: await seed(db, alice, 'lease.expired', 60, read),
      unreadMid: await seed(db, alice, 'lease.expiring', 30),
    };
    const expected = [ids.unreadNew, ids.unreadMid, ids.unreadOld, ids.readNew, ids.readOld];
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await inbox.list(alice, { limit: 2, cursor });
      seen.push(...page.data.map((n) => n.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(seen).toEqual(expected);

    expect((await inbox.list(alice, { status: 'unread', limit: 10 })).data.map((n) => n.id)).toEqual(expected.slice(0, 3));
    expect((await inbox.list(alice, { status: 'read', limit: 1 })).data.map((n) => n.id)).toEqual([ids.readNew]);
    const expiringOnly = await inbox.list(alice, { kinds: ['lease.expiring'], limit: 10 });
    expect(expiringOnly.data.map((n) => n.id)).toEqual([ids.unreadMid, ids.readNew]);
    const first = (await inbox.list(alice, { limit: 1 })).data[0]!;
    expect(first).toEqual({
      id: ids.unreadNew,
      kind: 'lease.ended',
      title: 'lease.ended 10',
      body: 'body',
      link: `http://127.0.0.1:8080/v1/leases/${LEASE}`,
      subject: { type: 'lease', id: LEASE },
      eventId: null,
      read: false,
      readAt: null,
      createdAt: '2026-11-21T13:50:00.000Z',
    });
    expectSchema('Notification', first);
    expect((await rejection(() => inbox.list(alice, { limit: 1, cursor: 'bm90LWEtY3Vyc29y' }))).code).toBe('invalid_cursor');
  });

  it("keeps each user's inbox to them: another's notification is not found, even for an admin", async () => {
    const { db, inbox, user } = await setup();
    const alice = await user('alice');
    const bob = await user('bob');
    const root = await user('root', 'admin');
    const id = await seed(db, bob, 'lease.expired', 1);
    for (const caller of [alice, root]) {
      for (const action of [
        () => inbox.get(caller, id),
        () => inbox.markRead(caller, id),
        () => inbox.markUnread(caller, id),
        () => inbox.delete(caller, id),
      ]) {
        expect((await rejection(action)).code).toBe('not_found');
      }
      expect((await inbox.list(caller, { limit: 10 })).data).toEqual([]);
      expect(await inbox.unreadCount(caller)).toBe(0);
      expect(await inbox.markAllRead(caller)).toBe(0);
    }
    expect(await inbox.get(bob, id)).toMatchObject({ id, read: false });
  });

  it('marks read and unread, counts the unread, marks all read and deletes', async () => {
    const { db, clock, inbox, user } = await setup();
    const alice = await user('alice');
    const a = await seed(db, alice, 'lease.expired', 3);
    const b = await seed(db, alice, 'lease.expiring', 2);
    await seed(db, alice, 'lease.ended', 1);
    expect(await inbox.unreadCount(alice)).toBe(3);
    clock.advance(60);
    expect(await inbox.markRead(alice, a)).toMatchObject({ id: a, read: true, readAt: '2026-11-21T14:01:00.000Z' });
    clock.advance(60);
    // Marking read again keeps when it was first read.
    expect(await inbox.markRead(alice, a)).toMatchObject({ readAt: '2026-11-21T14:01:00.000Z' });
    expect(await inbox.unreadCount(alice)).toBe(2);
    expect(await inbox.markUnread(alice, a)).toMatchObject({ id: a, read: false, readAt: null });
    expect(await inbox.markAllRead(alice)).toBe(3);
    expect(await inbox.markAllRead(alice)).toBe(0);
    expect(await inbox.unreadCount(alice)).toBe(0);
    await inbox.delete(alice, b);
    expect((await rejection(() => inbox.get(alice, b))).code).toBe('not_found');
    expect((await rejection(() => inbox.delete(alice, b))).code).toBe('not_found');
    expect((await inbox.list(alice, { limit: 10 })).data).toHaveLength(2);
  });

  it('shows every kind with its defaults, and changes only what is asked', async () => {
    const { inbox, user } = await setup();
    const alice = await user('alice');
    const defaults = await inbox.preferences(alice);
    expect(defaults).toHaveLength(11);
    expect(defaults.filter((pref) => pref.email).map((pref) => pref.kind)).toEqual(['lease.expiring', 'budget.exhausted', 'webhook.disabled']);
    expectSchema('NotificationPreferences', { preferences: defaults });
    const updated = await inbox.updatePreferences(alice, [
      { kind: 'device.offline', email: true },
      { kind: 'lease.expiring', inbox: false, email: false },
    ]);
    expect(updated.find((pref) => pref.kind === 'device.offline')).toEqual({ kind: 'device.offline', inbox: true, email: true });
    expect(updated.find((pref) => pref.kind === 'lease.expiring')).toEqual({ kind: 'lease.expiring', inbox: false, email: false });
    await inbox.updatePreferences(alice, [{ kind: 'lease.expiring', inbox: true }]);
    expect((await inbox.preferences(alice)).find((pref) => pref.kind === 'lease.expiring')).toEqual({
      kind: 'lease.expiring',
      inbox: true,
      email: false,
    });
    const bob = await user('bob');
    expect(await inbox.preferences(bob)).toEqual(defaults);
  });

  it('refuses an unknown kind, a kind given twice, or a change that sets nothing', async () => {
    const { inbox, user } = await setup();
    const alice = await user('alice');
    const invalid = async (changes: Parameters<InboxService['updatePreferences']>[1]) => {
      const error = await rejection(() => inbox.updatePreferences(alice, changes));
      expect(error.code).toBe('validation_failed');
      return error.errors;
    };
    expect(await invalid([{ kind: 'lease.lost' as never, inbox: true }])).toEqual([
      { field: '/preferences/0/kind', message: 'is not a notification kind' },
    ]);
    expect(await invalid([{ kind: 'lease.expired', inbox: true }, { kind: 'lease.expired', email: true }])).toEqual([
      { field: '/preferences/1/kind', message: 'is given twice' },
    ]);
    expect(await invalid([{ kind: 'lease.expired' }])).toEqual([{ field: '/preferences/0', message: 'must set inbox or email' }]);
    expect(await inbox.preferences(alice)).toEqual(await inbox.preferences(await user('bob')));
  });

  it('purges read notifications older than the retention, keeping unread and recent ones', async () => {
    const { db, inbox, user } = await setup();
    const alice = await user('alice');
    const read = '2026-10-01T00:00:00.000Z';
    const oldRead = await seed(db, alice, 'lease.expired', 31 * 24 * 60, read);
    const oldUnread = await seed(db, alice, 'lease.expired', 31 * 24 * 60 + 1);
    const recentRead = await seed(db, alice, 'lease.expired', 29 * 24 * 60, read);
    expect(await inbox.purgeRead(new Date('2026-11-21T14:00:00.000Z'))).toBe(1);
    const left = (await inboxOf(db, alice.userId)).map((row) => row.id);
    expect(left.sort()).toEqual([oldUnread, recentRead].sort());
    expect(left).not.toContain(oldRead);
  });
});
