import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type Json } from './device-helpers.js';
import { startApi, type Api, type Caller } from './harness.js';

/** A loopback receiver answering every POST with the status its path asks for (`/status/410`), 204 otherwise. */
interface Receiver {
  url: string;
  /** The `webhook-id` headers received, in order. */
  received: string[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: string[] = [];
  const server: Server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      received.push(String(request.headers['webhook-id']));
      const status = /^\/status\/(\d{3})$/.exec(request.url ?? '')?.[1];
      response.writeHead(status === undefined ? 204 : Number(status)).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('webhook endpoints', () => {
  let api: Api;
  let receiver: Receiver;
  let alice: Caller;
  let bob: Caller;

  beforeAll(async () => {
    receiver = await startReceiver();
    api = await startApi({ webhookAllowPrivate: true });
    alice = await api.addCaller('member');
    bob = await api.addCaller('member');
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await receiver?.close();
  });

  async function create(caller: Caller, body: Json = {}): Promise<Json> {
    const created = await api.call('createWebhookEndpoint', { token: caller.token, body: { url: `${receiver.url}/hooks`, ...body } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    return created.body;
  }

  it('shows the signing secret on creation only, and never keeps it in the clear', async () => {
    const created = await api.call('createWebhookEndpoint', {
      token: alice.token,
      headers: { 'idempotency-key': 'create-hook-1' },
      body: { url: `${receiver.url}/ci`, eventTypes: ['lease.*', 'app.install.failed'], description: 'CI' },
    });
    expect(created.status).toBe(201);
    const { id, secret } = created.body as { id: string; secret: string };
    expect(created.body).toMatchObject({
      userId: alice.userId,
      scope: 'own',
      url: `${receiver.url}/ci`,
      description: 'CI',
      eventTypes: ['lease.*', 'app.install.failed'],
      enabled: true,
      disabledReason: null,
    });
    expect(secret).toMatch(/^whsec_/);

    const got = await api.call('getWebhookEndpoint', { token: alice.token, path: { webhookId: id } });
    expect(got.status).toBe(200);
    expect(got.body).not.toHaveProperty('secret');
    const listed = await api.call('listWebhookEndpoints', { token: alice.token });
    expect(listed.body.data.map((e: Json) => e.id)).toEqual([id]);
    expect(JSON.stringify([got.body, listed.body])).not.toContain(secret);

    const replay = await api.call('createWebhookEndpoint', {
      token: alice.token,
      headers: { 'idempotency-key': 'create-hook-1' },
      body: { url: `${receiver.url}/ci`, eventTypes: ['lease.*', 'app.install.failed'], description: 'CI' },
    });
    expect([replay.status, replay.body.code]).toEqual([409, 'idempotency_secret_not_replayable']);
    expect(JSON.stringify(replay.body)).not.toContain(secret);

    const stored = await Promise.all([
      api.database.db.selectFrom('webhook_endpoints').selectAll().execute(),
      api.database.db.selectFrom('idempotency_keys').selectAll().execute(),
      api.database.db.selectFrom('events').selectAll().execute(),
    ]);
    expect(JSON.stringify(stored)).not.toContain(secret.slice('whsec_'.length));

    const events = await api.call('listEvents', { token: alice.token, query: { type: ['webhook.*'], subjectId: id } });
    expect(events.body.data.map((e: Json) => [e.type, e.data.endpoint])).toEqual([
      ['webhook.endpoint_created', { id, userId: alice.userId, url: `${receiver.url}/ci`, scope: 'own', enabled: true }],
    ]);
  });

  it('rotates the secret, the previous one signing on for 24 hours', async () => {
    const { id, secret } = await create(alice);
    const rotated = await api.call('rotateWebhookSecret', { token: alice.token, path: { webhookId: id } });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(secret);
    const now = api.clock.now().getTime();
    expect(Date.parse(rotated.body.previousSecretExpiresAt)).toBe(now + 24 * 3600 * 1000);
    const got = await api.call('getWebhookEndpoint', { token: alice.token, path: { webhookId: id } });
    expect(got.body.secretRotatedAt).toBe(new Date(now).toISOString());
    expect(JSON.stringify(got.body)).not.toContain(rotated.body.secret);
  });

  it("shows members their own endpoints, admins everyone's, and refuses what a member may not do", async () => {
    const { id } = await create(bob, { description: "bob's" });
    const path = { webhookId: id };
    for (const [operationId, options] of [
      ['getWebhookEndpoint', { path }],
      ['updateWebhookEndpoint', { path, body: { enabled: false } }],
      ['deleteWebhookEndpoint', { path }],
      ['rotateWebhookSecret', { path }],
      ['listWebhookDeliveries', { path }],
      ['recoverWebhookDeliveries', { path, body: { since: '2026-01-01T00:00:00Z' } }],
      ['sendWebhookTestEvent', { path, body: {} }],
    ] as const) {
      const refused = await api.call(operationId, { token: alice.token, ...options });
      expect([operationId, refused.status, refused.body.code]).toEqual([operationId, 404, 'not_found']);
    }
    const others = await api.call('listWebhookEndpoints', { token: alice.token, query: { userId: bob.userId } });
    expect([others.status, others.body.code]).toEqual([403, 'insufficient_role']);
    const everything = await api.call('createWebhookEndpoint', { token: alice.token, body: { url: `${receiver.url}/all`, scope: 'all' } });
    expect([everything.status, everything.body.code]).toEqual([403, 'insufficient_role']);
    const viewer = await api.addCaller('viewer');
    expect((await api.call('listWebhookEndpoints', { token: viewer.token })).status).toBe(403);

    const admin = api.admin.token;
    expect((await api.call('getWebhookEndpoint', { token: admin, path })).body.userId).toBe(bob.userId);
    const ofBob = await api.call('listWebhookEndpoints', { token: admin, query: { userId: bob.userId } });
    expect(ofBob.body.data.map((e: Json) => e.id)).toEqual([id]);
    const all = await api.call('listWebhookEndpoints', { token: admin, query: { limit: 100 } });
    expect(all.body.data.map((e: Json) => e.userId)).toEqual(expect.arrayContaining([alice.userId, bob.userId]));
    const created = await api.call('createWebhookEndpoint', { token: admin, body: { url: `${receiver.url}/all`, scope: 'all', eventTypes: ['host.*'] } });
    expect([created.status, created.body.scope]).toEqual([201, 'all']);
    const disabled = await api.call('updateWebhookEndpoint', { token: admin, path, body: { enabled: false } });
    expect(disabled.body).toMatchObject({ enabled: false, disabledReason: 'manual' });
  });

  it('changes an endpoint, disables and enables it, and deletes it', async () => {
    const { id } = await create(alice, { eventTypes: ['lease.*'] });
    const path = { webhookId: id };
    const changed = await api.call('updateWebhookEndpoint', {
      token: alice.token,
      path,
      body: { url: `${receiver.url}/v2`, eventTypes: ['app.*'], description: 'v2' },
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ url: `${receiver.url}/v2`, eventTypes: ['app.*'], description: 'v2', enabled: true });
    const invalid = await api.call('updateWebhookEndpoint', { token: alice.token, path, body: { eventTypes: ['app.'] } });
    expect([invalid.status, invalid.body.code]).toEqual([400, 'validation_failed']);

    const off = await api.call('updateWebhookEndpoint', { token: alice.token, path, body: { enabled: false } });
    expect(off.body).toMatchObject({ enabled: false, disabledReason: 'manual' });
    const on = await api.call('updateWebhookEndpoint', { token: alice.token, path, body: { enabled: true } });
    expect(on.body).toMatchObject({ enabled: true, disabledReason: null, failingSince: null });

    const deleted = await api.call('deleteWebhookEndpoint', { token: alice.token, path });
    expect(deleted.status).toBe(204);
    expect((await api.call('getWebhookEndpoint', { token: alice.token, path })).status).toBe(404);
    const events = await api.call('listEvents', { token: alice.token, query: { subjectId: id } });
    expect(events.body.data.map((e: Json) => e.type)).toEqual([
      'webhook.endpoint_created',
      'webhook.endpoint_updated',
      'webhook.endpoint_updated',
      'webhook.endpoint_updated',
      'webhook.endpoint_deleted',
    ]);
  });

  it('sends a test event to the endpoint, lists and shows its delivery, and redelivers it', async () => {
    const { id } = await create(alice, { eventTypes: ['lease.*'] });
    const path = { webhookId: id };
    const sent = await api.call('sendWebhookTestEvent', { token: alice.token, path, body: { message: 'hello' } });
    expect(sent.status).toBe(202);
    const { eventId } = sent.body as { eventId: string };
    const event = await api.call('getEvent', { token: alice.token, path: { eventId } });
    expect(event.body).toMatchObject({ type: 'webhook.test', subject: { type: 'webhook_endpoint', id }, data: { endpointId: id, message: 'hello' } });
    const second = await api.call('sendWebhookTestEvent', { token: alice.token, path });
    expect(second.status).toBe(202);

    const list = await api.call('listWebhookDeliveries', { token: alice.token, path });
    expect(list.status).toBe(200);
    expect(list.body.data.map((d: Json) => [d.eventId, d.eventType])).toEqual([
      [second.body.eventId, 'webhook.test'],
      [eventId, 'webhook.test'],
    ]);
    const page = await api.call('listWebhookDeliveries', { token: alice.token, path, query: { limit: 1 } });
    const next = await api.call('listWebhookDeliveries', { token: alice.token, path, query: { limit: 1, cursor: page.body.nextCursor } });
    expect([...page.body.data, ...next.body.data].map((d: Json) => d.eventId)).toEqual([second.body.eventId, eventId]);
    const filtered = await api.call('listWebhookDeliveries', { token: alice.token, path, query: { eventType: ['lease.*'] } });
    expect(filtered.body.data).toEqual([]);

    const shown = await api.call('getWebhookDelivery', { token: alice.token, path: { ...path, eventId } });
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ endpointId: id, eventId, eventType: 'webhook.test', attemptLog: expect.any(Array) });

    const redelivered = await api.call('redeliverWebhook', { token: alice.token, path: { ...path, eventId } });
    expect(redelivered.status).toBe(202);
    expect(redelivered.body).toMatchObject({ eventId, status: 'pending', nextAttemptAt: api.clock.now().toISOString() });
    const unknown = await api.call('getWebhookDelivery', { token: alice.token, path: { ...path, eventId: 'evt_01JDXH6J7K8M9N0P1Q2R3S4T5V' } });
    expect([unknown.status, unknown.body.code]).toEqual([404, 'not_found']);

    await api.call('updateWebhookEndpoint', { token: alice.token, path, body: { enabled: false } });
    const refusedTest = await api.call('sendWebhookTestEvent', { token: alice.token, path });
    expect([refusedTest.status, refusedTest.body.code]).toEqual([409, 'webhook_endpoint_disabled']);
    const refusedRedelivery = await api.call('redeliverWebhook', { token: alice.token, path: { ...path, eventId } });
    expect([refusedRedelivery.status, refusedRedelivery.body.code]).toEqual([409, 'webhook_endpoint_disabled']);
  });

  it('recovers the deliveries that failed, which are then sent again as manual attempts', async () => {
    const gone = `${receiver.url}/status/410`;
    const { id } = await create(alice, { url: gone, eventTypes: ['webhook.test'] });
    const path = { webhookId: id };
    const since = api.clock.now().toISOString();
    const { eventId } = (await api.call('sendWebhookTestEvent', { token: alice.token, path })).body as { eventId: string };
    // A receiver that answers 410 Gone fails the delivery at once and has the endpoint disabled.
    const failed = await eventually(async () => {
      const shown = await api.call('getWebhookDelivery', { token: alice.token, path: { ...path, eventId } });
      return shown.body.status === 'failed' ? shown.body : undefined;
    }, 20_000, 'the delivery failed');
    expect(failed.attemptLog.map((a: Json) => [a.trigger, a.statusCode])).toEqual([['scheduled', 410]]);
    expect((await api.call('getWebhookEndpoint', { token: alice.token, path })).body).toMatchObject({ enabled: false, disabledReason: 'gone' });

    const fixed = await api.call('updateWebhookEndpoint', { token: alice.token, path, body: { url: `${receiver.url}/fixed`, enabled: true } });
    expect(fixed.body).toMatchObject({ enabled: true, disabledReason: null });
    const recovered = await api.call('recoverWebhookDeliveries', { token: alice.token, path, body: { since } });
    expect([recovered.status, recovered.body]).toEqual([202, { requeued: 1 }]);
    const delivered = await eventually(async () => {
      const shown = await api.call('getWebhookDelivery', { token: alice.token, path: { ...path, eventId } });
      return shown.body.status === 'delivered' ? shown.body : undefined;
    }, 20_000, 'the recovered delivery delivered');
    expect(delivered.attemptLog.map((a: Json) => [a.trigger, a.statusCode])).toEqual([
      ['scheduled', 410],
      ['manual', 204],
    ]);
    expect(receiver.received.filter((webhookId) => webhookId === eventId)).toHaveLength(2);
    const again = await api.call('recoverWebhookDeliveries', { token: alice.token, path, body: { since } });
    expect(again.body).toEqual({ requeued: 0 });
  });
});

describe('webhook targets, private addresses not allowed', () => {
  let api: Api;
  let member: Caller;

  beforeAll(async () => {
    api = await startApi();
    member = await api.addCaller('member');
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  it.each(['http://127.0.0.1:8080/hook', 'http://10.0.0.1/hook', 'http://169.254.169.254/latest/meta-data', 'http://[::1]/hook', 'http://localhost/hook'])(
    'refuses %s',
    async (url) => {
      const refused = await api.call('createWebhookEndpoint', { token: member.token, body: { url } });
      expect([refused.status, refused.body.code]).toEqual([400, 'webhook_url_not_allowed']);
    },
  );

  it('creates nothing when it refuses', async () => {
    const listed = await api.call('listWebhookEndpoints', { token: api.admin.token });
    expect(listed.body.data).toEqual([]);
  });
});
