import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Kysely } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { LoneNode } from '../../../src/cluster/cluster.js';
import { newId } from '../../../src/db/ids.js';
import type { DB } from '../../../src/db/schema.js';
import { WebhookDispatcher, type WebhookDispatcherDeps } from '../../../src/notifications/webhooks/dispatcher.js';
import { RETRY_SCHEDULE_SECONDS } from '../../../src/notifications/webhooks/schedule.js';
import { newWebhookSecret, SecretBox } from '../../../src/notifications/webhooks/secrets.js';
import { ManualClock } from '../../helpers/clock.js';
import { openTestDatabase } from '../../helpers/database.js';
import { insertUser } from '../../helpers/users.js';

const silent = { warn: () => undefined, error: () => undefined } as never;

interface Received {
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Responder = (response: ServerResponse, request: Received) => void;

interface Receiver {
  url: string;
  received: Received[];
  /** Requests whose response has not ended. */
  open(): number;
  respond: Responder;
}

interface Fixture {
  db: Kysely<DB>;
  clock: ManualClock;
  box: SecretBox;
  receiver(respond: Responder): Promise<Receiver>;
  endpoint(url: string, columns?: Partial<EndpointColumns>): Promise<{ id: string; secret: string }>;
  /** An event in the log and its delivery to `endpointId`, due now. */
  delivery(endpointId: string, columns?: { manual?: number }): Promise<string>;
  dispatcher(deps?: Partial<WebhookDispatcherDeps>): WebhookDispatcher;
  deliveryRow(endpointId: string, eventId: string): Promise<DeliveryRow>;
  attempts(endpointId: string, eventId?: string): Promise<AttemptRow[]>;
  endpointRow(id: string): Promise<EndpointRow>;
}

interface EndpointColumns {
  failing_since: string | null;
  previous_secret: string | null;
  previous_secret_expires_at: string | null;
}

type DeliveryRow = Awaited<ReturnType<typeof selectDelivery>>;
type AttemptRow = Awaited<ReturnType<typeof selectAttempts>>[number];
type EndpointRow = Awaited<ReturnType<typeof selectEndpoint>>;

const selectDelivery = (db: Kysely<DB>, endpointId: string, eventId: string) =>
  db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('endpoint_id', '=', endpointId)
    .where('event_id', '=', eventId)
    .executeTakeFirstOrThrow();

const selectAttempts = (db: Kysely<DB>, endpointId: string, eventId?: string) => {
  let query = db.selectFrom('webhook_attempts').selectAll().where('endpoint_id', '=', endpointId);
  if (eventId !== undefined) query = query.where('event_id', '=', eventId);
  return query.orderBy('event_id').orderBy('number').execute();
};

const selectEndpoint = (db: Kysely<DB>, id: string) =>
  db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** `start`: the manual clock's start; the real time when a test verifies signatures, whose timestamps must be recent. */
async function fixture(start: string | Date = '2026-11-20T09:00:00.000Z'): Promise<Fixture> {
  const database = await openTestDatabase();
  cleanups.push(() => database.close());
  const { db } = database;
  const clock = new ManualClock(start);
  const box = new SecretBox(randomBytes(32));
  const owner = await insertUser(db, 'alice', 'member', clock.now().toISOString());
  return {
    db,
    clock,
    box,
    async receiver(respond) {
      let open = 0;
      const server = createServer((request, response) => {
        open += 1;
        response.on('close', () => (open -= 1));
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          const entry = { url: request.url!, headers: request.headers, body: Buffer.concat(chunks).toString() };
          receiver.received.push(entry);
          receiver.respond(response, entry);
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      cleanups.push(async () => {
        server.closeAllConnections();
        server.close();
      });
      const receiver: Receiver = {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
        received: [],
        open: () => open,
        respond,
      };
      return receiver;
    },
    async endpoint(url, columns = {}) {
      const id = newId('whe');
      const secret = newWebhookSecret();
      const at = clock.now().toISOString();
      await db
        .insertInto('webhook_endpoints')
        .values({
          id,
          user_id: owner.userId,
          scope: 'own',
          url,
          description: null,
          event_types: '[]',
          enabled: 1,
          disabled_reason: null,
          failing_since: null,
          secret: box.seal(secret),
          previous_secret: null,
          previous_secret_expires_at: null,
          secret_rotated_at: null,
          created_at: at,
          updated_at: at,
          ...columns,
        })
        .execute();
      return { id, secret };
    },
    async delivery(endpointId, columns = {}) {
      const now = clock.now();
      const eventId = newId('evt', now.getTime());
      // Straight into the log: these tests queue their deliveries themselves.
      await db
        .insertInto('events')
        .values({
          id: eventId,
          type: 'user.updated',
          occurred_at: now.toISOString(),
          actor_type: 'user',
          actor_id: owner.userId,
          actor_username: owner.username,
          subject_type: 'user',
          subject_id: owner.userId,
          audience_id: null,
          data: JSON.stringify({ user: { id: owner.userId, username: owner.username }, changes: ['displayName'] }),
          request_id: 'req_test',
        })
        .execute();
      await db
        .insertInto('webhook_deliveries')
        .values({
          endpoint_id: endpointId,
          event_id: eventId,
          event_type: 'user.updated',
          status: 'pending',
          next_attempt_at: now.toISOString(),
          created_at: now.toISOString(),
          ...columns,
        })
        .execute();
      return eventId;
    },
    dispatcher(deps = {}) {
      const dispatcher = new WebhookDispatcher({
        db,
        clock: clock.now,
        log: silent,
        secrets: box,
        allowPrivate: true,
        timeoutMs: 2000,
        pollMs: 20,
        random: () => 0.5,
        ...deps,
      });
      cleanups.push(() => dispatcher.close());
      return dispatcher;
    },
    deliveryRow: (endpointId, eventId) => selectDelivery(db, endpointId, eventId),
    attempts: (endpointId, eventId) => selectAttempts(db, endpointId, eventId),
    endpointRow: (id) => selectEndpoint(db, id),
  };
}

const answer =
  (status: number, headers: Record<string, string> = {}, body = ''): Responder =>
  (response) =>
    response.writeHead(status, headers).end(body);

const iso = (instant: Date) => instant.toISOString();
const plus = (instant: Date, seconds: number) => new Date(instant.getTime() + seconds * 1000).toISOString();
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the webhook dispatcher', () => {
  it('delivers an event signed as Standard Webhooks verifies, and records the attempt', async () => {
    const f = await fixture(new Date());
    const receiver = await f.receiver(answer(204));
    const { id, secret } = await f.endpoint(receiver.url);
    const eventId = await f.delivery(id);
    const started = f.clock.now();
    f.dispatcher().start();

    await expect.poll(() => f.deliveryRow(id, eventId).then((row) => row.status)).toBe('delivered');
    expect(receiver.received).toHaveLength(1);
    const [request] = receiver.received;
    expect(request!.headers['webhook-id']).toBe(eventId);
    expect(request!.headers['webhook-timestamp']).toBe(String(Math.floor(started.getTime() / 1000)));
    expect(request!.headers['content-type']).toBe('application/json');
    const event = new Webhook(secret).verify(request!.body, request!.headers as Record<string, string>);
    expect(event).toEqual({
      id: eventId,
      type: 'user.updated',
      occurredAt: iso(started),
      actor: { type: 'user', id: 'usr_alice', username: 'alice' },
      subject: { type: 'user', id: 'usr_alice' },
      data: { user: { id: 'usr_alice', username: 'alice' }, changes: ['displayName'] },
      requestId: 'req_test',
    });
    expect(await f.deliveryRow(id, eventId)).toMatchObject({
      status: 'delivered',
      attempts: 1,
      next_attempt_at: null,
      last_attempt_at: iso(started),
      last_status_code: 204,
      last_error: null,
      delivered_at: iso(started),
    });
    const [attempt, ...more] = await f.attempts(id);
    expect(more).toEqual([]);
    expect(attempt).toMatchObject({
      id: expect.stringMatching(/^wha_/),
      event_id: eventId,
      number: 1,
      trigger: 'scheduled',
      started_at: iso(started),
      status_code: 204,
      error: null,
      response_excerpt: null,
    });
    expect(Number(attempt!.latency_ms)).toBeGreaterThanOrEqual(0);
  });

  it('signs with the previous secret too while it has not expired, newest first', async () => {
    const f = await fixture(new Date());
    const receiver = await f.receiver(answer(200));
    const previous = newWebhookSecret();
    const { id, secret } = await f.endpoint(receiver.url, {
      previous_secret: f.box.seal(previous),
      previous_secret_expires_at: plus(f.clock.now(), 60),
    });
    const expired = await f.endpoint(receiver.url, {
      previous_secret: f.box.seal(previous),
      previous_secret_expires_at: plus(f.clock.now(), -1),
    });
    await f.delivery(id);
    await f.delivery(expired.id);
    f.dispatcher().start();

    await expect.poll(() => receiver.received.length).toBe(2);
    const byEndpoint = (endpointSecret: string) =>
      receiver.received.find((request) => {
        try {
          new Webhook(endpointSecret).verify(request.body, request.headers as Record<string, string>);
          return true;
        } catch {
          return false;
        }
      });
    const rotated = byEndpoint(secret)!;
    const [newest, older, ...rest] = (rotated.headers['webhook-signature'] as string).split(' ');
    expect(rest).toEqual([]);
    const at = new Date(Number(rotated.headers['webhook-timestamp']) * 1000);
    expect(newest).toBe(new Webhook(secret).sign(rotated.headers['webhook-id'] as string, at, rotated.body));
    expect(older).toBe(new Webhook(previous).sign(rotated.headers['webhook-id'] as string, at, rotated.body));
    const single = byEndpoint(expired.secret)!;
    expect((single.headers['webhook-signature'] as string).split(' ')).toHaveLength(1);
    expect(() => new Webhook(previous).verify(single.body, single.headers as Record<string, string>)).toThrow();
  });

  it('retries a failing delivery on the schedule, ten attempts, then fails it', async () => {
    const f = await fixture();
    const receiver = await f.receiver(answer(500, {}, 'broken'));
    const { id } = await f.endpoint(receiver.url);
    const eventId = await f.delivery(id);
    const first = f.clock.now();
    const dispatcher = f.dispatcher();
    dispatcher.start();

    let at = first;
    for (const [index, delay] of RETRY_SCHEDULE_SECONDS.entries()) {
      await expect.poll(() => receiver.received.length).toBe(index + 1);
      await expect.poll(() => f.deliveryRow(id, eventId)).toMatchObject({ attempts: index + 1, next_attempt_at: plus(at, delay) });
      // Not a moment before it is due.
      f.clock.advance(delay - 1);
      dispatcher.wake();
      await pause(60);
      expect(receiver.received).toHaveLength(index + 1);
      f.clock.advance(1);
      at = f.clock.now();
      dispatcher.wake();
    }
    await expect.poll(() => f.deliveryRow(id, eventId)).toMatchObject({
      status: 'failed',
      attempts: 10,
      next_attempt_at: null,
      last_status_code: 500,
      last_error: null,
    });
    const attempts = await f.attempts(id, eventId);
    expect(attempts.map((attempt) => attempt.number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(attempts.map((attempt) => attempt.response_excerpt)).toEqual(new Array(10).fill('broken'));
    const offsets = attempts.map((attempt) => (Date.parse(attempt.started_at) - first.getTime()) / 1000);
    expect(offsets).toEqual([0, ...RETRY_SCHEDULE_SECONDS.map((_, i) => RETRY_SCHEDULE_SECONDS.slice(0, i + 1).reduce((a, b) => a + b))]);
    // Webhook-id is the event's on every attempt.
    expect(new Set(receiver.received.map((request) => request.headers['webhook-id']))).toEqual(new Set([eventId]));
    // Failing for 3.1 days: still enabled, failing since the first attempt.
    expect(await f.endpointRow(id)).toMatchObject({ enabled: 1, failing_since: iso(first) });
    f.clock.advance(86400);
    dispatcher.wake();
    await pause(60);
    expect(receiver.received).toHaveLength(10);
  });

  it('waits as long as a 429 or 503 asks with Retry-After, and only those', async () => {
    const f = await fixture();
    const now = f.clock.now();
    const seconds = await f.receiver(answer(429, { 'retry-after': '120' }));
    const date = await f.receiver(answer(503, { 'retry-after': new Date(now.getTime() + 600_000).toUTCString() }));
    const tooLong = await f.receiver(answer(429, { 'retry-after': String(7 * 86400) }));
    const other = await f.receiver(answer(500, { 'retry-after': '120' }));
    const endpoints = await Promise.all([seconds, date, tooLong, other].map((receiver) => f.endpoint(receiver.url)));
    const events = await Promise.all(endpoints.map(({ id }) => f.delivery(id)));
    f.dispatcher().start();

    const expected = [plus(now, 120), plus(now, 600), plus(now, 86400), plus(now, 5)];
    for (const [i, { id }] of endpoints.entries()) {
      await expect.poll(() => f.deliveryRow(id, events[i]!)).toMatchObject({ status: 'pending', attempts: 1, next_attempt_at: expected[i] });
    }
  });

  it('disables an endpoint that answers 410 Gone, fails the delivery and records why in the log', async () => {
    const f = await fixture();
    const receiver = await f.receiver(answer(410));
    const { id } = await f.endpoint(receiver.url);
    const eventId = await f.delivery(id);
    const dispatcher = f.dispatcher();
    dispatcher.start();

    await expect.poll(() => f.deliveryRow(id, eventId)).toMatchObject({ status: 'failed', attempts: 1, last_status_code: 410 });
    expect(await f.endpointRow(id)).toMatchObject({ enabled: 0, disabled_reason: 'gone', updated_at: iso(f.clock.now()) });
    const disabled = await f.db.selectFrom('events').selectAll().where('type', '=', 'webhook.endpoint_disabled').execute();
    expect(disabled).toHaveLength(1);
    expect(disabled[0]).toMatchObject({ actor_type: 'system', actor_id: null, subject_type: 'webhook_endpoint', subject_id: id });
    expect(JSON.parse(disabled[0]!.data)).toEqual({
      endpoint: { id, userId: 'usr_alice', url: receiver.url, scope: 'own', enabled: false },
      reason: 'gone',
    });
    // A disabled endpoint gets nothing more.
    const later = await f.delivery(id);
    dispatcher.wake();
    await pause(100);
    expect(receiver.received).toHaveLength(1);
    expect(await f.deliveryRow(id, later)).toMatchObject({ status: 'pending', attempts: 0 });
  });

  it('disables an endpoint that has failed for five days without a success, and a success ends the streak', async () => {
    const f = await fixture();
    const failing = await f.receiver(answer(502));
    const recovering = await f.receiver(answer(502));
    const { id } = await f.endpoint(failing.url);
    const other = await f.endpoint(recovering.url);
    const since = f.clock.now();
    await f.delivery(id);
    await f.delivery(other.id);
    const dispatcher = f.dispatcher();
    dispatcher.start();
    await expect.poll(() => f.endpointRow(id)).toMatchObject({ enabled: 1, failing_since: iso(since) });
    await expect.poll(() => f.endpointRow(other.id)).toMatchObject({ enabled: 1, failing_since: iso(since) });
    // Their retries are beside the point here: only the deliveries below are attempted.
    await f.db.updateTable('webhook_deliveries').set({ status: 'failed', next_attempt_at: null }).execute();

    // Four days on, fresh deliveries fail: still enabled. A success clears the other's streak.
    f.clock.advance(4 * 86400);
    recovering.respond = answer(200);
    const fourDays = await f.delivery(id);
    const recovered = await f.delivery(other.id);
    dispatcher.wake();
    await expect.poll(() => f.deliveryRow(other.id, recovered).then((row) => row.status)).toBe('delivered');
    await expect.poll(() => f.deliveryRow(id, fourDays).then((row) => row.attempts)).toBe(1);
    expect(await f.endpointRow(id)).toMatchObject({ enabled: 1, failing_since: iso(since) });
    expect(await f.endpointRow(other.id)).toMatchObject({ enabled: 1, failing_since: null });

    f.clock.advance(86400);
    recovering.respond = answer(502);
    const fiveDays = await f.delivery(id);
    const fresh = await f.delivery(other.id);
    dispatcher.wake();
    await expect.poll(() => f.endpointRow(id)).toMatchObject({ enabled: 0, disabled_reason: 'failing', failing_since: iso(since) });
    await expect.poll(() => f.deliveryRow(other.id, fresh).then((row) => row.attempts)).toBe(1);
    // The delivery itself keeps its retries, for when the endpoint is enabled again.
    expect(await f.deliveryRow(id, fiveDays)).toMatchObject({ status: 'pending', attempts: 1 });
    expect(await f.endpointRow(other.id)).toMatchObject({ enabled: 1, failing_since: iso(f.clock.now()) });
    const disabled = await f.db.selectFrom('events').selectAll().where('type', '=', 'webhook.endpoint_disabled').execute();
    expect(disabled.map((event) => [event.subject_id, JSON.parse(event.data).reason])).toEqual([[id, 'failing']]);
  });

  it('keeps delivering to healthy endpoints while one never answers, holding at most four attempts to it', async () => {
    const f = await fixture();
    const dead = await f.receiver(() => undefined);
    const healthy = await f.receiver(answer(200));
    const deadEndpoint = await f.endpoint(dead.url);
    const healthyEndpoint = await f.endpoint(healthy.url);
    // The dead endpoint's deliveries are the older ones.
    for (let i = 0; i < 10; i++) await f.delivery(deadEndpoint.id);
    const healthyEvents = [];
    for (let i = 0; i < 6; i++) healthyEvents.push(await f.delivery(healthyEndpoint.id));
    const dispatcher = f.dispatcher({ timeoutMs: 60_000, closeTimeoutMs: 50 });
    const started = Date.now();
    dispatcher.start();

    await expect.poll(() => healthy.received.length, { timeout: 3000 }).toBe(6);
    expect(Date.now() - started).toBeLessThan(3000);
    // Each attempt is recorded just after its answer arrives.
    for (const eventId of healthyEvents) {
      await expect.poll(async () => (await f.deliveryRow(healthyEndpoint.id, eventId)).status).toBe('delivered');
    }
    expect(dead.received).toHaveLength(4);
    expect(dead.open()).toBe(4);
    await pause(100);
    expect(dead.received).toHaveLength(4);

    // Stopping cuts the hung attempts short without recording them: their deliveries are simply due again.
    await dispatcher.close();
    expect(await f.attempts(deadEndpoint.id)).toEqual([]);
    const pending = await f.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', deadEndpoint.id).execute();
    expect(pending.map((row) => [row.status, row.attempts])).toEqual(new Array(10).fill(['pending', 0]));
    const interrupted = dead.received.map((request) => request.headers['webhook-id']);

    dead.respond = answer(200);
    f.dispatcher().start();
    await expect.poll(() => dead.received.length).toBe(14);
    const again = dead.received.slice(4).map((request) => request.headers['webhook-id']);
    expect(again).toEqual(expect.arrayContaining(interrupted));
    await expect
      .poll(() => f.db.selectFrom('webhook_deliveries').select('status').where('status', '=', 'delivered').execute().then((rows) => rows.length))
      .toBe(16);
  });

  it('counts the attempts in flight to an endpoint even when deliveries due earlier are queued behind them', async () => {
    const f = await fixture();
    const dead = await f.receiver(() => undefined);
    const { id } = await f.endpoint(dead.url);
    await f.delivery(id);
    await f.delivery(id);
    const dispatcher = f.dispatcher({ timeoutMs: 60_000, closeTimeoutMs: 50 });
    dispatcher.start();
    await expect.poll(() => dead.received.length).toBe(2);
    // Recovered deliveries, due long ago: they sort before the two in flight.
    for (let i = 0; i < 4; i++) {
      const eventId = await f.delivery(id);
      await f.db
        .updateTable('webhook_deliveries')
        .set({ next_attempt_at: plus(f.clock.now(), -3600) })
        .where('event_id', '=', eventId)
        .execute();
    }
    dispatcher.wake();
    await expect.poll(() => dead.received.length).toBe(4);
    await pause(100);
    expect(dead.received).toHaveLength(4);
  });

  it('never has more than 32 attempts in flight', async () => {
    const f = await fixture();
    const receivers = await Promise.all(Array.from({ length: 10 }, () => f.receiver(() => undefined)));
    for (const receiver of receivers) {
      const { id } = await f.endpoint(receiver.url);
      for (let i = 0; i < 5; i++) await f.delivery(id);
    }
    f.dispatcher({ timeoutMs: 60_000, closeTimeoutMs: 50 }).start();
    const inFlight = () => receivers.reduce((sum, receiver) => sum + receiver.received.length, 0);
    await expect.poll(inFlight).toBe(32);
    await pause(100);
    expect(inFlight()).toBe(32);
    for (const receiver of receivers) expect(receiver.received.length).toBeLessThanOrEqual(4);
  });

  it('does not follow a redirect: a 3xx is a failed attempt', async () => {
    const f = await fixture();
    const receiver = await f.receiver((response, request) =>
      request.url === '/hook' ? response.writeHead(307, { location: '/elsewhere' }).end() : response.writeHead(200).end(),
    );
    const { id } = await f.endpoint(receiver.url);
    const eventId = await f.delivery(id);
    f.dispatcher().start();

    await expect.poll(() => f.deliveryRow(id, eventId)).toMatchObject({ status: 'pending', attempts: 1, last_status_code: 307 });
    expect(receiver.received.map((request) => request.url)).toEqual(['/hook']);
  });

  it('records a connection failure, and an attempt a user asked for as manual', async () => {
    const f = await fixture();
    const { id } = await f.endpoint('http://127.0.0.1:9/hook');
    const eventId = await f.delivery(id, { manual: 1 });
    f.dispatcher().start();

    await expect.poll(() => f.deliveryRow(id, eventId)).toMatchObject({
      status: 'pending',
      attempts: 1,
      manual: 0,
      last_status_code: null,
      last_error: expect.stringMatching(/ECONNREFUSED/),
    });
    expect(await f.attempts(id)).toEqual([expect.objectContaining({ trigger: 'manual', status_code: null, error: expect.stringMatching(/ECONNREFUSED/) })]);
  });

  it('refuses a private target at the attempt unless allowed', async () => {
    const f = await fixture();
    const receiver = await f.receiver(answer(200));
    const { id } = await f.endpoint(receiver.url);
    const eventId = await f.delivery(id);
    f.dispatcher({ allowPrivate: false }).start();

    await expect.poll(() => f.deliveryRow(id, eventId)).toMatchObject({
      status: 'pending',
      attempts: 1,
      last_error: 'address not allowed: 127.0.0.1 is a loopback address',
    });
    expect(receiver.received).toEqual([]);
  });

  it('dispatches only while its node leads', async () => {
    const f = await fixture();
    const receiver = await f.receiver(answer(200));
    const { id } = await f.endpoint(receiver.url);
    await f.delivery(id);
    const cluster = new LoneNode('node-a');
    f.dispatcher({ cluster }).start();
    await pause(100);
    expect(receiver.received).toEqual([]);

    await cluster.start();
    await expect.poll(() => receiver.received.length).toBe(1);
    await cluster.close();
    await f.delivery(id);
    await pause(100);
    expect(receiver.received).toHaveLength(1);
  });
});
