import { describe, expect, it } from 'vitest';
import { newId } from '../../../src/db/ids.js';
import { rejection } from '../../domains/fixture.js';
import { webhookFixture, type WebhookFixture } from './fixture.js';

async function endpointRow(f: WebhookFixture, id: string) {
  return f.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function typeRows(f: WebhookFixture, id: string) {
  const rows = await f.db.selectFrom('webhook_endpoint_types').select(['pattern', 'prefix']).where('endpoint_id', '=', id).execute();
  return rows.sort((a, b) => a.pattern.localeCompare(b.pattern));
}

async function eventsOf(f: WebhookFixture, subjectId: string) {
  const rows = await f.db.selectFrom('events').selectAll().where('subject_id', '=', subjectId).orderBy('seq').execute();
  return rows.map((row) => ({ type: row.type, actorId: row.actor_id, data: JSON.parse(row.data) as unknown }));
}

/** Inserts a delivery of a made-up event to the endpoint, created `minutesAgo` before the clock's time. */
async function delivery(
  f: WebhookFixture,
  endpointId: string,
  input: { type?: string; status?: 'pending' | 'delivered' | 'failed'; minutesAgo?: number; attempts?: number } = {},
): Promise<string> {
  const at = new Date(f.clock.now().getTime() - (input.minutesAgo ?? 0) * 60_000);
  const eventId = newId('evt', at.getTime());
  await f.db
    .insertInto('webhook_deliveries')
    .values({
      endpoint_id: endpointId,
      event_id: eventId,
      event_type: input.type ?? 'lease.granted',
      status: input.status ?? 'pending',
      attempts: input.attempts ?? 0,
      next_attempt_at: input.status === undefined || input.status === 'pending' ? at.toISOString() : null,
      created_at: at.toISOString(),
    })
    .execute();
  return eventId;
}

describe('webhook endpoints', () => {
  it('creates an endpoint with a secret shown once and kept sealed, its types indexed, and an event', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const created = await f.webhooks.create(
      alice,
      { url: 'http://127.0.0.1:9/hook', eventTypes: ['lease.*', 'app.install.failed'], description: 'CI' },
      f.causeOf(alice),
    );
    expect(created).toMatchObject({
      userId: alice.userId,
      scope: 'own',
      url: 'http://127.0.0.1:9/hook',
      description: 'CI',
      eventTypes: ['lease.*', 'app.install.failed'],
      enabled: true,
      disabledReason: null,
      failingSince: null,
      secretRotatedAt: null,
      createdAt: '2026-11-20T09:00:00.000Z',
    });
    expect(created.id).toMatch(/^whe_[0-9A-Z]{26}$/);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(created.secret.slice('whsec_'.length), 'base64')).toHaveLength(24);

    const row = await endpointRow(f, created.id);
    expect(row.secret).not.toContain(created.secret.slice('whsec_'.length));
    expect(f.box.unseal(row.secret)).toBe(created.secret);
    expect(await typeRows(f, created.id)).toEqual([
      { pattern: 'app.install.failed', prefix: null },
      { pattern: 'lease.*', prefix: 'lease.' },
    ]);
    const view = await f.webhooks.get(alice, created.id);
    expect(view).not.toHaveProperty('secret');
    expect(JSON.stringify(view)).not.toContain(created.secret);
    expect(await eventsOf(f, created.id)).toEqual([
      {
        type: 'webhook.endpoint_created',
        actorId: alice.userId,
        data: { endpoint: { id: created.id, userId: alice.userId, url: 'http://127.0.0.1:9/hook', scope: 'own', enabled: true } },
      },
    ]);
    expect(f.wakes()).toBe(1);
  });

  it('gives every endpoint a secret of its own', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const one = await f.webhooks.create(alice, { url: 'http://127.0.0.1:9/a' }, f.causeOf(alice));
    const two = await f.webhooks.create(alice, { url: 'http://127.0.0.1:9/a' }, f.causeOf(alice));
    expect(one.secret).not.toBe(two.secret);
  });

  it('creates a disabled endpoint as disabled by hand, without types when none are given', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const created = await f.webhooks.create(alice, { url: 'https://127.0.0.1/hook', enabled: false }, f.causeOf(alice));
    expect(created).toMatchObject({ enabled: false, disabledReason: 'manual', eventTypes: [], description: null });
    expect(await typeRows(f, created.id)).toEqual([]);
  });

  it('lets only admins create an endpoint for every event', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const admin = await f.user('root', 'admin');
    const refused = await rejection(() => f.webhooks.create(alice, { url: 'http://127.0.0.1:9/', scope: 'all' }, f.causeOf(alice)));
    expect(refused.code).toBe('insufficient_role');
    expect(await f.db.selectFrom('webhook_endpoints').select('id').execute()).toEqual([]);
    const created = await f.webhooks.create(admin, { url: 'http://127.0.0.1:9/', scope: 'all' }, f.causeOf(admin));
    expect(created.scope).toBe('all');
  });

  it('refuses event types that are not types or families, or are listed twice', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    for (const eventTypes of [['*'], ['lease.'], ['Lease.granted'], ['lease.*.granted'], ['lease.*', 'lease.*'], [`a.${'b'.repeat(63)}`]]) {
      const refused = await rejection(() => f.webhooks.create(alice, { url: 'http://127.0.0.1:9/', eventTypes }, f.causeOf(alice)));
      expect(refused.code).toBe('validation_failed');
      expect(refused.errors?.[0]?.field).toMatch(/^\/eventTypes\/\d+$/);
    }
    expect(await f.db.selectFrom('webhook_endpoints').select('id').execute()).toEqual([]);
  });

  it('refuses loopback, private and link-local targets unless private targets are allowed', async () => {
    const f = await webhookFixture({ allowPrivate: false });
    const alice = await f.user('alice');
    for (const url of ['http://127.0.0.1:8080/', 'http://10.0.0.1/', 'http://169.254.169.254/latest', 'http://[::1]/', 'http://localhost/', 'ftp://127.0.0.1/']) {
      const refused = await rejection(() => f.webhooks.create(alice, { url }, f.causeOf(alice)));
      expect(refused.code, url).toBe('webhook_url_not_allowed');
    }
    expect(await f.db.selectFrom('webhook_endpoints').select('id').execute()).toEqual([]);
    expect(await f.db.selectFrom('events').select('id').execute()).toEqual([]);
  });

  it('checks a changed URL as at creation', async () => {
    const f = await webhookFixture({ allowPrivate: false });
    const alice = await f.user('alice');
    // Created directly: the service would refuse a loopback target here.
    const id = newId('whe');
    const at = f.clock.now().toISOString();
    await f.db
      .insertInto('webhook_endpoints')
      .values({ id, user_id: alice.userId, scope: 'own', url: 'http://192.0.2.1/', description: null, event_types: '[]', enabled: 1, secret: f.box.seal('whsec_AAAA'), created_at: at, updated_at: at })
      .execute();
    const refused = await rejection(() => f.webhooks.update(alice, id, { url: 'http://10.1.2.3/' }, f.causeOf(alice)));
    expect(refused.code).toBe('webhook_url_not_allowed');
    expect((await endpointRow(f, id)).url).toBe('http://192.0.2.1/');
  });

  it("shows members their own endpoints only, and admins everyone's", async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const admin = await f.user('root', 'admin');
    const a1 = await f.endpoint(alice);
    const b1 = await f.endpoint(bob);
    const a2 = await f.endpoint(alice);
    expect((await f.webhooks.list(alice, { limit: 10 })).data.map((e) => e.id)).toEqual([a1, a2]);
    expect((await f.webhooks.list(alice, { userId: alice.userId, limit: 10 })).data.map((e) => e.id)).toEqual([a1, a2]);
    expect((await f.webhooks.list(admin, { limit: 10 })).data.map((e) => e.id)).toEqual([a1, b1, a2]);
    expect((await f.webhooks.list(admin, { userId: bob.userId, limit: 10 })).data.map((e) => e.id)).toEqual([b1]);
    expect((await rejection(() => f.webhooks.list(alice, { userId: bob.userId, limit: 10 }))).code).toBe('insufficient_role');

    expect((await rejection(() => f.webhooks.get(alice, b1))).code).toBe('not_found');
    expect((await f.webhooks.get(admin, b1)).userId).toBe(bob.userId);
    for (const attempt of [
      () => f.webhooks.update(alice, b1, { enabled: false }, f.causeOf(alice)),
      () => f.webhooks.delete(alice, b1, f.causeOf(alice)),
      () => f.webhooks.rotateSecret(alice, b1, f.causeOf(alice)),
      () => f.webhooks.listDeliveries(alice, b1, { limit: 10 }),
      () => f.webhooks.recover(alice, b1, '2026-01-01T00:00:00Z'),
      () => f.webhooks.sendTestEvent(alice, b1, undefined, f.causeOf(alice)),
    ]) {
      expect((await rejection(attempt)).code).toBe('not_found');
    }
    expect((await endpointRow(f, b1)).enabled).toBe(1);
  });

  it('pages through endpoints in creation order', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await f.endpoint(alice));
    const first = await f.webhooks.list(alice, { limit: 2 });
    expect(first.data.map((e) => e.id)).toEqual(ids.slice(0, 2));
    const second = await f.webhooks.list(alice, { limit: 2, cursor: first.nextCursor! });
    const third = await f.webhooks.list(alice, { limit: 2, cursor: second.nextCursor! });
    expect([...second.data, ...third.data].map((e) => e.id)).toEqual(ids.slice(2));
    expect(third.nextCursor).toBeNull();
    expect((await rejection(() => f.webhooks.list(alice, { limit: 2, cursor: 'bm90LWEtY3Vyc29y' }))).code).toBe('invalid_cursor');
  });

  it('updates the URL, description and types together, keeping the type index in step', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice, { eventTypes: ['lease.*'], description: 'old' });
    f.clock.advance(60);
    const updated = await f.webhooks.update(
      alice,
      id,
      { url: 'http://127.0.0.1:9/new', description: null, eventTypes: ['app.*', 'user.created'] },
      f.causeOf(alice),
    );
    expect(updated).toMatchObject({
      url: 'http://127.0.0.1:9/new',
      description: null,
      eventTypes: ['app.*', 'user.created'],
      updatedAt: '2026-11-20T09:01:00.000Z',
      createdAt: '2026-11-20T09:00:00.000Z',
    });
    expect(await typeRows(f, id)).toEqual([
      { pattern: 'app.*', prefix: 'app.' },
      { pattern: 'user.created', prefix: null },
    ]);
    expect(await f.webhooks.get(alice, id)).toEqual(updated);
    expect((await eventsOf(f, id)).map((e) => e.type)).toEqual(['webhook.endpoint_created', 'webhook.endpoint_updated']);
    expect((await eventsOf(f, id))[1]!.data).toEqual({
      endpoint: { id, userId: alice.userId, url: 'http://127.0.0.1:9/new', scope: 'own', enabled: true },
    });
  });

  it('disables by hand, keeps the reason the server gave, and clears it and the failing time on enabling', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice);
    expect(await f.webhooks.update(alice, id, { enabled: false }, f.causeOf(alice))).toMatchObject({ enabled: false, disabledReason: 'manual' });
    await f.db.updateTable('webhook_endpoints').set({ disabled_reason: 'failing', failing_since: '2026-11-15T00:00:00.000Z' }).where('id', '=', id).execute();
    expect(await f.webhooks.update(alice, id, { enabled: false }, f.causeOf(alice))).toMatchObject({
      enabled: false,
      disabledReason: 'failing',
      failingSince: '2026-11-15T00:00:00.000Z',
    });
    expect(await f.webhooks.update(alice, id, { description: 'still off' }, f.causeOf(alice))).toMatchObject({ enabled: false, disabledReason: 'failing' });
    expect(await f.webhooks.update(alice, id, { enabled: true }, f.causeOf(alice))).toMatchObject({
      enabled: true,
      disabledReason: null,
      failingSince: null,
    });
  });

  it('rotates the secret, keeping the replaced one sealed for 24 hours', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const created = await f.webhooks.create(alice, { url: 'http://127.0.0.1:9/' }, f.causeOf(alice));
    f.clock.advance(3600);
    const rotation = await f.webhooks.rotateSecret(alice, created.id, f.causeOf(alice));
    expect(rotation.secret).toMatch(/^whsec_/);
    expect(rotation.secret).not.toBe(created.secret);
    expect(rotation.previousSecretExpiresAt).toBe('2026-11-21T10:00:00.000Z');
    const row = await endpointRow(f, created.id);
    expect(f.box.unseal(row.secret)).toBe(rotation.secret);
    expect(f.box.unseal(row.previous_secret!)).toBe(created.secret);
    expect(row.previous_secret_expires_at).toBe('2026-11-21T10:00:00.000Z');
    expect(await f.webhooks.get(alice, created.id)).toMatchObject({ secretRotatedAt: '2026-11-20T10:00:00.000Z' });

    f.clock.advance(60);
    const again = await f.webhooks.rotateSecret(alice, created.id, f.causeOf(alice));
    const after = await endpointRow(f, created.id);
    expect(f.box.unseal(after.secret)).toBe(again.secret);
    expect(f.box.unseal(after.previous_secret!)).toBe(rotation.secret);
    expect((await eventsOf(f, created.id)).map((e) => e.type)).toEqual([
      'webhook.endpoint_created',
      'webhook.endpoint_secret_rotated',
      'webhook.endpoint_secret_rotated',
    ]);
  });

  it('deletes an endpoint with its types, deliveries and attempts', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const admin = await f.user('root', 'admin');
    const id = await f.endpoint(alice, { eventTypes: ['lease.*'] });
    const eventId = await delivery(f, id);
    await f.db
      .insertInto('webhook_attempts')
      .values({ id: 'wha_1', endpoint_id: id, event_id: eventId, number: 1, trigger: 'scheduled', started_at: f.clock.now().toISOString(), status_code: 500, latency_ms: 3 })
      .execute();
    await f.webhooks.delete(admin, id, f.causeOf(admin));
    expect((await rejection(() => f.webhooks.get(alice, id))).code).toBe('not_found');
    for (const table of ['webhook_endpoint_types', 'webhook_deliveries', 'webhook_attempts'] as const) {
      expect(await f.db.selectFrom(table).select('endpoint_id').where('endpoint_id', '=', id).execute()).toEqual([]);
    }
    const log = await eventsOf(f, id);
    expect(log.at(-1)).toEqual({
      type: 'webhook.endpoint_deleted',
      actorId: admin.userId,
      data: { endpoint: { id, userId: alice.userId, url: 'http://127.0.0.1:9/hook', scope: 'own', enabled: true } },
    });
  });
});

describe('webhook deliveries', () => {
  it('lists newest first, filtered by status, type and time, a page at a time', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice);
    await f.db.deleteFrom('webhook_deliveries').execute();
    const old = await delivery(f, id, { type: 'lease.granted', status: 'failed', minutesAgo: 50 });
    const mid = await delivery(f, id, { type: 'app.install.failed', status: 'delivered', minutesAgo: 30 });
    const recent = await delivery(f, id, { type: 'lease.expired', status: 'pending', minutesAgo: 10 });
    const list = (query: Parameters<typeof f.webhooks.listDeliveries>[2]) =>
      f.webhooks.listDeliveries(alice, id, query).then((page) => page.data.map((d) => d.eventId));

    expect(await list({ limit: 10 })).toEqual([recent, mid, old]);
    expect(await list({ status: 'failed', limit: 10 })).toEqual([old]);
    expect(await list({ eventTypes: ['lease.*'], limit: 10 })).toEqual([recent, old]);
    expect(await list({ eventTypes: ['app.install.failed', 'lease.granted'], limit: 10 })).toEqual([mid, old]);
    expect(await list({ since: '2026-11-20T08:30:00Z', limit: 10 })).toEqual([recent, mid]);

    const first = await f.webhooks.listDeliveries(alice, id, { limit: 2 });
    expect(first.data.map((d) => d.eventId)).toEqual([recent, mid]);
    const second = await f.webhooks.listDeliveries(alice, id, { limit: 2, cursor: first.nextCursor! });
    expect(second.data.map((d) => d.eventId)).toEqual([old]);
    expect(second.nextCursor).toBeNull();
    expect(second.data[0]).toEqual({
      endpointId: id,
      eventId: old,
      eventType: 'lease.granted',
      status: 'failed',
      attempts: 0,
      nextAttemptAt: null,
      lastAttemptAt: null,
      lastStatusCode: null,
      lastError: null,
      createdAt: '2026-11-20T08:10:00.000Z',
      deliveredAt: null,
    });
  });

  it('shows a delivery with its attempts in order, and no delivery of another endpoint', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice);
    const other = await f.endpoint(alice);
    const eventId = await delivery(f, id, { status: 'delivered', attempts: 2 });
    const at = (s: number) => new Date(f.clock.now().getTime() + s * 1000).toISOString();
    await f.db
      .insertInto('webhook_attempts')
      .values([
        { id: 'wha_2', endpoint_id: id, event_id: eventId, number: 2, trigger: 'manual', started_at: at(9), status_code: 204, latency_ms: 12 },
        { id: 'wha_1', endpoint_id: id, event_id: eventId, number: 1, trigger: 'scheduled', started_at: at(0), status_code: null, latency_ms: 5000, error: 'timeout', response_excerpt: null },
      ])
      .execute();
    const shown = await f.webhooks.getDelivery(alice, id, eventId);
    expect(shown.attemptLog).toEqual([
      { number: 1, trigger: 'scheduled', startedAt: at(0), statusCode: null, latencyMs: 5000, error: 'timeout', responseExcerpt: null },
      { number: 2, trigger: 'manual', startedAt: at(9), statusCode: 204, latencyMs: 12, error: null, responseExcerpt: null },
    ]);
    expect((await rejection(() => f.webhooks.getDelivery(alice, other, eventId))).code).toBe('not_found');
  });

  it('redelivers a delivery of any state now, as a manual attempt, and not to a disabled endpoint', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice);
    const failed = await delivery(f, id, { status: 'failed', attempts: 10, minutesAgo: 60 });
    const delivered = await delivery(f, id, { status: 'delivered', attempts: 1, minutesAgo: 30 });
    f.clock.advance(5);
    const wakes = f.wakes();
    for (const eventId of [failed, delivered]) {
      const shown = await f.webhooks.redeliver(alice, id, eventId);
      expect(shown).toMatchObject({ eventId, status: 'pending', nextAttemptAt: '2026-11-20T09:00:05.000Z' });
      const row = await f.db.selectFrom('webhook_deliveries').selectAll().where('event_id', '=', eventId).executeTakeFirstOrThrow();
      expect(row.manual).toBe(1);
    }
    expect((await f.webhooks.getDelivery(alice, id, failed)).attempts).toBe(10);
    expect(f.wakes()).toBe(wakes + 2);

    expect((await rejection(() => f.webhooks.redeliver(alice, id, newId('evt')))).code).toBe('not_found');
    await f.webhooks.update(alice, id, { enabled: false }, f.causeOf(alice));
    expect((await rejection(() => f.webhooks.redeliver(alice, id, failed))).code).toBe('webhook_endpoint_disabled');
  });

  it('recovers the failed deliveries created since a time, and only those', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice);
    const other = await f.endpoint(alice);
    await f.db.deleteFrom('webhook_deliveries').execute();
    const before = await delivery(f, id, { status: 'failed', minutesAgo: 120 });
    const failed1 = await delivery(f, id, { status: 'failed', minutesAgo: 50 });
    const failed2 = await delivery(f, id, { status: 'failed', minutesAgo: 10 });
    await delivery(f, id, { status: 'delivered', minutesAgo: 20 });
    await delivery(f, other, { status: 'failed', minutesAgo: 20 });
    expect(await f.webhooks.recover(alice, id, '2026-11-20T08:00:00Z')).toBe(2);
    const rows = await f.db.selectFrom('webhook_deliveries').selectAll().where('status', '=', 'pending').execute();
    expect(rows.map((row) => row.event_id).sort()).toEqual([failed1, failed2].sort());
    expect(rows.every((row) => row.next_attempt_at === '2026-11-20T09:00:00.000Z' && row.manual === 1)).toBe(true);
    expect((await f.webhooks.getDelivery(alice, id, before)).status).toBe('failed');
    expect(await f.webhooks.recover(alice, id, '2026-11-20T08:00:00Z')).toBe(0);
  });

  it('sends a test event to the endpoint alone, and not to a disabled one', async () => {
    const f = await webhookFixture();
    const alice = await f.user('alice');
    const id = await f.endpoint(alice, { eventTypes: ['lease.*'] });
    await f.endpoint(alice);
    const eventId = await f.webhooks.sendTestEvent(alice, id, 'ping', f.causeOf(alice));
    const event = await f.db.selectFrom('events').selectAll().where('id', '=', eventId).executeTakeFirstOrThrow();
    expect(event).toMatchObject({ type: 'webhook.test', actor_id: alice.userId, subject_type: 'webhook_endpoint', subject_id: id });
    expect(JSON.parse(event.data)).toEqual({ endpointId: id, message: 'ping' });
    const deliveries = await f.db.selectFrom('webhook_deliveries').select(['endpoint_id', 'status']).where('event_id', '=', eventId).execute();
    expect(deliveries).toEqual([{ endpoint_id: id, status: 'pending' }]);

    const plain = await f.webhooks.sendTestEvent(alice, id, undefined, f.causeOf(alice));
    const plainRow = await f.db.selectFrom('events').select('data').where('id', '=', plain).executeTakeFirstOrThrow();
    expect(JSON.parse(plainRow.data).message).toEqual(expect.any(String));

    await f.webhooks.update(alice, id, { enabled: false }, f.causeOf(alice));
    expect((await rejection(() => f.webhooks.sendTestEvent(alice, id, 'ping', f.causeOf(alice)))).code).toBe('webhook_endpoint_disabled');
  });
});
