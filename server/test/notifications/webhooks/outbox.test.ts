import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { newId } from '../../../src/db/ids.js';
import type { AppendedEvent } from '../../../src/events/types.js';
import type { EventType } from '../../../src/events/types.js';
import { enqueueWebhookDeliveries } from '../../../src/notifications/webhooks/outbox.js';
import { testEngine } from '../../helpers/database.js';
import { eventually } from '../../devices/helpers.js';
import { webhookFixture, type WebhookFixture } from './fixture.js';

function event(type: EventType, who: Partial<Pick<AppendedEvent, 'actorId' | 'subjectId' | 'audienceId' | 'subjectType'>> = {}): AppendedEvent {
  const occurredAt = '2026-11-20T10:00:00.000Z';
  return {
    id: newId('evt', Date.parse(occurredAt)),
    type,
    occurredAt,
    actorId: who.actorId ?? null,
    subjectType: who.subjectType ?? (who.subjectId === undefined ? null : 'user'),
    subjectId: who.subjectId ?? null,
    audienceId: who.audienceId ?? null,
    data: {},
    requestId: null,
  };
}

/** Queues the event and returns the endpoints it was queued for, sorted. */
async function enqueue(f: WebhookFixture, appended: AppendedEvent): Promise<string[]> {
  await f.db.transaction().execute((trx) => enqueueWebhookDeliveries(trx, appended));
  const rows = await f.db.selectFrom('webhook_deliveries').select('endpoint_id').where('event_id', '=', appended.id).execute();
  return rows.map((row) => row.endpoint_id).sort();
}

describe('enqueueWebhookDeliveries', () => {
  it('queues a pending delivery due at the event time, once per endpoint', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const hook = await f.endpoint(alice);
    const appended = event('lease.granted', { audienceId: alice.userId });
    expect(await enqueue(f, appended)).toEqual([hook]);
    const row = await f.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', appended.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      endpoint_id: hook,
      event_type: 'lease.granted',
      status: 'pending',
      attempts: 0,
      next_attempt_at: appended.occurredAt,
      created_at: appended.occurredAt,
      last_attempt_at: null,
      delivered_at: null,
    });
  });

  it("sends a member's endpoint the events they caused, are the subject of, or concern them, and no others", async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const hook = await f.endpoint(alice);
    expect(await enqueue(f, event('app.uploaded', { actorId: alice.userId }))).toEqual([hook]);
    expect(await enqueue(f, event('user.updated', { actorId: bob.userId, subjectId: alice.userId }))).toEqual([hook]);
    expect(await enqueue(f, event('lease.expired', { audienceId: alice.userId }))).toEqual([hook]);
    expect(await enqueue(f, event('lease.expired', { actorId: bob.userId, audienceId: bob.userId }))).toEqual([]);
    expect(await enqueue(f, event('host.unreachable'))).toEqual([]);
  });

  it("sends an admin's scope-all endpoint every event, and their own-scope endpoint only theirs", async () => {
    const f = await webhookFixture();
    const admin = await f.user('root', 'admin');
    const bob = await f.user('bob');
    const everything = await f.endpoint(admin, { scope: 'all' });
    const own = await f.endpoint(admin);
    expect(await enqueue(f, event('host.unreachable'))).toEqual([everything]);
    expect(await enqueue(f, event('lease.granted', { actorId: bob.userId, audienceId: bob.userId }))).toEqual([everything]);
    expect(await enqueue(f, event('user.created', { actorId: admin.userId, subjectId: bob.userId }))).toEqual([everything, own].sort());
  });

  it('stops sending every event to a scope-all endpoint whose owner is no longer an enabled admin', async () => {
    const f = await webhookFixture();
    const admin = await f.user('root', 'admin');
    const everything = await f.endpoint(admin, { scope: 'all' });
    await f.db.updateTable('users').set({ role: 'member' }).where('id', '=', admin.userId).execute();
    expect(await enqueue(f, event('host.unreachable'))).toEqual([]);
    expect(await enqueue(f, event('lease.granted', { audienceId: admin.userId }))).toEqual([everything]);
    await f.db.updateTable('users').set({ role: 'admin', disabled: 1 }).where('id', '=', admin.userId).execute();
    expect(await enqueue(f, event('host.unreachable'))).toEqual([]);
  });

  it('matches exact types and families, and a family only at a dot', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const exact = await f.endpoint(alice, { eventTypes: ['app.install.failed'] });
    const apps = await f.endpoint(alice, { eventTypes: ['app.*'] });
    const installs = await f.endpoint(alice, { eventTypes: ['app.install.*', 'lease.expired'] });
    const leases = await f.endpoint(alice, { eventTypes: ['lease.*'] });
    const mine = { audienceId: alice.userId };
    expect(await enqueue(f, event('app.install.failed', mine))).toEqual([apps, exact, installs].sort());
    expect(await enqueue(f, event('app.install.succeeded', mine))).toEqual([apps, installs].sort());
    expect(await enqueue(f, event('app.uploaded', mine))).toEqual([apps]);
    expect(await enqueue(f, event('lease.expired', mine))).toEqual([installs, leases].sort());
    expect(await enqueue(f, event('lease.granted', mine))).toEqual([leases]);
    expect(await enqueue(f, event('user.updated', { subjectId: alice.userId }))).toEqual([]);
  });

  it('takes a type written with an underscore literally, not as a wildcard', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const hook = await f.endpoint(alice, { eventTypes: ['auth.login_failed', 'user.plan_assigned'] });
    expect(await enqueue(f, event('auth.login_failed', { actorId: alice.userId }))).toEqual([hook]);
    expect(await enqueue(f, event('auth.logged_out', { actorId: alice.userId }))).toEqual([]);
  });

  it('follows a change of types, and an emptied list means every type', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const hook = await f.endpoint(alice, { eventTypes: ['lease.*'] });
    const mine = { audienceId: alice.userId };
    expect(await enqueue(f, event('app.uploaded', mine))).toEqual([]);
    await f.webhooks.update(alice, hook, { eventTypes: ['app.uploaded'] }, f.causeOf(alice));
    expect(await enqueue(f, event('app.uploaded', mine))).toEqual([hook]);
    expect(await enqueue(f, event('lease.granted', mine))).toEqual([]);
    await f.webhooks.update(alice, hook, { eventTypes: [] }, f.causeOf(alice));
    expect(await enqueue(f, event('lease.granted', mine))).toEqual([hook]);
  });

  it('queues nothing for a disabled endpoint', async () => {
    const f = await webhookFixture();
    const admin = await f.user('root', 'admin');
    const alice = await f.user('alice');
    await f.endpoint(alice, { enabled: false });
    const everything = await f.endpoint(admin, { scope: 'all' });
    await f.webhooks.update(admin, everything, { enabled: false }, f.causeOf(admin));
    expect(await enqueue(f, event('lease.granted', { audienceId: alice.userId }))).toEqual([]);
  });

  it('sends webhook.test to the endpoint it is about and to no other, whatever the types', async () => {
    const f = await webhookFixture();
    const admin = await f.user('root', 'admin');
    const alice = await f.user('alice');
    const target = await f.endpoint(alice, { eventTypes: ['lease.*'] });
    await f.endpoint(alice);
    await f.endpoint(admin, { scope: 'all' });
    const test = event('webhook.test', { actorId: alice.userId, subjectType: 'webhook_endpoint', subjectId: target, audienceId: alice.userId });
    expect(await enqueue(f, test)).toEqual([target]);
  });
});

describe.skipIf(testEngine !== 'postgres')('enqueueWebhookDeliveries on PostgreSQL', () => {
  it('skips an endpoint deleted while the event is appended, rather than failing the event', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const doomed = await f.endpoint(alice);
    const kept = await f.endpoint(alice);
    const appended = event('lease.granted', { audienceId: alice.userId });
    let queued: Promise<string[]> | undefined;
    await f.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('webhook_endpoints').where('id', '=', doomed).execute();
      queued = enqueue(f, appended);
      // The event's transaction waits for the deletion to end.
      await eventually(async () => {
        const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(f.db);
        return rows[0]!.n > 0;
      }, 5000, 'the event waiting for the deletion');
    });
    expect(await queued).toEqual([kept]);
  });
});
