import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { operations } from '../../src/generated/operations.js';
import { expectSchema } from '../helpers/contract.js';
import { allDevices, eventually, expectRefusedUpgrade, leaseDevice, wsUrl, type Json } from './device-helpers.js';
import { SocketMessages, SseStream, type SseFrame } from './event-stream-helpers.js';
import { startApi, type Api, type Caller } from './harness.js';

const STREAM_PATH = operations.streamEvents.path;
const SOCKET_PATH = operations.streamEventsSocket.path;

let api: Api;
const open: { close(): void }[] = [];

beforeAll(async () => {
  api = await startApi({ virtualDevices: 2, streamHeartbeatSeconds: 1 });
});
afterEach(() => {
  for (const stream of open.splice(0)) stream.close();
});
afterAll(async () => {
  await api.close();
});

function streamUrl(query: Record<string, string | string[]> = {}): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  const text = search.toString();
  return `${api.url}${STREAM_PATH}${text === '' ? '' : `?${text}`}`;
}

/** Opens an event stream and reads its first frame, which must be `retry: 2000`. */
async function follow(token: string, query: Record<string, string | string[]> = {}, headers: Record<string, string> = {}) {
  const stream = await SseStream.open(streamUrl(query), token, headers);
  open.push(stream);
  expect(stream.status).toBe(200);
  expect((await stream.next())?.retry).toBe(2000);
  return stream;
}

async function socket(token: string, query: Record<string, string> = {}): Promise<SocketMessages> {
  const messages = await SocketMessages.open(wsUrl(api, SOCKET_PATH, query), token);
  open.push({ close: () => messages.ws.terminate() });
  return messages;
}

function eventOf(frame: SseFrame | null): Json {
  expect(frame?.data).toBeDefined();
  const event = JSON.parse(frame!.data!) as Json;
  expectSchema('Event', event);
  expect(frame!.id).toBe(event.id);
  expect(frame!.event).toBe(event.type);
  return event;
}

async function createUser(role: 'viewer' | 'member' | 'admin' = 'viewer'): Promise<Json> {
  const created = await api.call('createUser', {
    token: api.admin.token,
    body: { username: `stream-${Math.random().toString(36).slice(2, 10)}`, password: 'correct-horse-battery-staple', role },
  });
  expect(created.status).toBe(201);
  return created.body;
}

async function createToken(caller: Caller | Api['admin'], name = 'stream'): Promise<Json> {
  const created = await api.call('createApiToken', { token: caller.token, body: { name, scopes: ['read'] } });
  expect(created.status).toBe(201);
  return created.body;
}

async function eventsOfType(type: string): Promise<Json[]> {
  const events: Json[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.call('listEvents', {
      token: api.admin.token,
      query: { type: [type], limit: 200, ...(cursor === undefined ? {} : { cursor }) },
    });
    expect(page.status).toBe(200);
    events.push(...page.body.data);
    cursor = page.body.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return events;
}

describe('streamEvents (Server-Sent Events)', () => {
  it('answers an event stream that is not buffered, and sends each new event as a frame of the Event JSON', async () => {
    const stream = await follow(api.admin.token);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.headers['cache-control']).toBe('no-cache');
    expect(stream.headers['x-accel-buffering']).toBe('no');

    const user = await createUser();
    const event = eventOf(await stream.nextEvent());
    expect(event).toMatchObject({ type: 'user.created', subject: { type: 'user', id: user.id } });
    const stored = await api.call('getEvent', { token: api.admin.token, path: { eventId: event.id } });
    expect(event).toEqual(stored.body);
  });

  it('starts from now without a last event id, and after the given event with one (query or Last-Event-ID)', async () => {
    const first = await createUser();
    const second = await createUser();
    const [afterFirst] = (await eventsOfType('user.created')).filter((event) => event.subject.id === first.id);

    const byQuery = await follow(api.admin.token, { type: 'user.created', lastEventId: afterFirst!.id });
    expect(eventOf(await byQuery.nextEvent()).subject.id).toBe(second.id);
    const byHeader = await follow(api.admin.token, { type: 'user.created' }, { 'last-event-id': afterFirst!.id });
    expect(eventOf(await byHeader.nextEvent()).subject.id).toBe(second.id);

    const fromNow = await follow(api.admin.token, { type: 'user.created' });
    const third = await createUser();
    expect(eventOf(await fromNow.nextEvent()).subject.id).toBe(third.id);
  });

  it('answers 404 for an unknown last event id before sending any frame', async () => {
    const unknown = 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB';
    for (const [query, headers] of [
      [{ lastEventId: unknown }, {}],
      [{}, { 'last-event-id': unknown }],
    ] as const) {
      const stream = await SseStream.open(streamUrl(query), api.admin.token, headers);
      expect(stream.status).toBe(404);
      expect(stream.headers['content-type']).toMatch(/^application\/problem\+json/);
      const problem = JSON.parse(await stream.text()) as Json;
      expectSchema('Problem', problem);
      expect(problem.code).toBe('not_found');
    }
  });

  it('refuses an anonymous caller', async () => {
    const stream = await SseStream.open(streamUrl(), undefined);
    expect(stream.status).toBe(401);
    expect(JSON.parse(await stream.text()).code).toBe('unauthenticated');
  });

  it('resumes with Last-Event-ID without a gap or a duplicate while events are written concurrently', async () => {
    const writer = await api.addCaller('viewer');
    const total = 300;
    const stream = await follow(api.admin.token, { type: 'token.created' });
    const received: string[] = [];
    let created = 0;
    const write = async () => {
      while (created < total) {
        created += 1;
        await createToken(writer, `burst-${created}`);
      }
    };
    const writing = Promise.all(Array.from({ length: 8 }, write));

    while (received.length < 100) received.push(eventOf(await stream.nextEvent()).id);
    stream.close();
    // The writes go on while no stream is open.
    await eventually(() => created >= 150 || undefined, 20_000);
    const resumed = await follow(api.admin.token, { type: 'token.created' }, { 'last-event-id': received.at(-1)! });
    while (received.length < total) received.push(eventOf(await resumed.nextEvent()).id);
    await writing;

    const logged = (await eventsOfType('token.created')).filter((event) => event.actor.id === writer.userId);
    expect(logged).toHaveLength(total);
    // Every event once; the stream's order is commit order, which on PostgreSQL need not be the log's.
    expect(new Set(received).size).toBe(total);
    expect([...received].sort()).toEqual(logged.map((event) => event.id).sort());
  });

  it('shows a member the events of their own leases and not those of another member; an admin sees all', async () => {
    const [alice, bob] = [await api.addCaller('member'), await api.addCaller('member')];
    const devices = await eventually(async () => {
      const online = await allDevices(api, api.admin.token, { state: 'online' });
      return online.length >= 2 ? online : undefined;
    }, 30_000);
    const streams = {
      alice: await follow(alice.token, { type: 'lease.*' }),
      bob: await follow(bob.token, { type: 'lease.*' }),
      admin: await follow(api.admin.token, { type: 'lease.*' }),
    };
    const aliceLease = await leaseDevice(api, alice.token, devices[0]!.id);
    const bobLease = await leaseDevice(api, bob.token, devices[1]!.id);
    // Released by the admin: an event Alice neither caused nor is the subject of, but which concerns her.
    const released = await api.call('releaseLease', { token: api.admin.token, path: { leaseId: aliceLease.id } });
    expect(released.status).toBe(200);
    const bobReleased = await api.call('releaseLease', { token: bob.token, path: { leaseId: bobLease.id } });
    expect(bobReleased.status).toBe(200);

    const leaseEvents = async (stream: SseStream, count: number) => {
      const events: Json[] = [];
      while (events.length < count) events.push(eventOf(await stream.nextEvent()));
      return events.map((event) => [event.type, event.data.lease.id]);
    };
    expect(await leaseEvents(streams.alice, 2)).toEqual([
      ['lease.granted', aliceLease.id],
      ['lease.released', aliceLease.id],
    ]);
    expect(await leaseEvents(streams.bob, 2)).toEqual([
      ['lease.granted', bobLease.id],
      ['lease.released', bobLease.id],
    ]);
    expect(await leaseEvents(streams.admin, 4)).toEqual([
      ['lease.granted', aliceLease.id],
      ['lease.granted', bobLease.id],
      ['lease.released', aliceLease.id],
      ['lease.released', bobLease.id],
    ]);
    // Nothing of Bob's reached Alice: the next thing she gets is a heartbeat, not an event.
    const next = await streams.alice.next(3000);
    expect(next?.data).toBeUndefined();
  });

  it('filters by exact type, by family and by subject', async () => {
    const target = await createUser();
    const byType = await follow(api.admin.token, { type: ['user.updated'] });
    const byFamily = await follow(api.admin.token, { type: ['user.*'] });
    const bySubject = await follow(api.admin.token, { subjectId: target.id });

    await createToken(api.admin);
    const other = await createUser();
    const patch = { token: api.admin.token, body: { role: 'member' } };
    expect((await api.call('updateUser', { ...patch, path: { userId: other.id } })).status).toBe(200);
    expect((await api.call('updateUser', { ...patch, path: { userId: target.id } })).status).toBe(200);

    const typed = [eventOf(await byType.nextEvent()), eventOf(await byType.nextEvent())];
    expect(typed.map((event) => [event.type, event.subject.id])).toEqual([
      ['user.updated', other.id],
      ['user.updated', target.id],
    ]);
    const family: Json[] = [];
    while (family.length < 3) family.push(eventOf(await byFamily.nextEvent()));
    expect(family.map((event) => [event.type, event.subject.id])).toEqual([
      ['user.created', other.id],
      ['user.updated', other.id],
      ['user.updated', target.id],
    ]);
    expect(eventOf(await bySubject.nextEvent())).toMatchObject({ type: 'user.updated', subject: { id: target.id } });
  });

  it('sends a keepalive comment while nothing happens', async () => {
    const stream = await follow(api.admin.token, { subjectId: 'usr_nobody' });
    const started = Date.now();
    const frame = await stream.next(5000);
    expect(frame).toEqual({ comments: ['keepalive'] });
    // CLOUDPHONE_STREAM_HEARTBEAT is 1 s here.
    expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    expect(await stream.next(5000)).toEqual({ comments: ['keepalive'] });
  });

  it('ends when the API token it was opened with is revoked', async () => {
    const member = await api.addCaller('member');
    const token = await createToken(member);
    const stream = await follow(token.secret);
    const revoked = await api.call('revokeApiToken', { token: member.token, path: { tokenId: token.id } });
    expect(revoked.status).toBe(204);
    const frames = await stream.ended(5000);
    expect(frames.at(-1)?.comments).toEqual(['token revoked']);
  });

  it('ends when the login session ends, and when the user is disabled', async () => {
    const member = await api.addCaller('member');
    const stream = await follow(member.token);
    const logout = await api.call('logout', { token: member.token, body: { refreshToken: member.pair.refreshToken } });
    expect(logout.status).toBe(204);
    expect((await stream.ended(5000)).at(-1)?.comments).toEqual(['logged out']);

    const other = await api.addCaller('member');
    const second = await follow(other.token);
    const disabled = await api.call('updateUser', {
      token: api.admin.token,
      path: { userId: other.userId },
      body: { disabled: true },
    });
    expect(disabled.status).toBe(200);
    expect((await second.ended(5000)).at(-1)?.comments).toEqual(['user disabled']);
  });

  it("ends an admin's stream when their role changes, so it never filters for a role they lost", async () => {
    const admin = await api.addCaller('admin');
    const stream = await follow(admin.token);
    const demoted = await api.call('updateUser', {
      token: api.admin.token,
      path: { userId: admin.userId },
      body: { role: 'member' },
    });
    expect(demoted.status).toBe(200);
    const frames = await stream.ended(5000);
    expect(frames.filter((frame) => frame.data !== undefined).map((frame) => eventOf(frame).type)).toEqual(['user.updated']);
    expect(frames.at(-1)?.comments).toEqual(['role changed']);
  });
});

describe('streamEventsSocket (WebSocket)', () => {
  it('delivers the same events as the event stream, one Event JSON per text message', async () => {
    const sse = await follow(api.admin.token, { type: 'user.*' });
    const ws = await socket(api.admin.token, { type: 'user.*' });
    const users = [await createUser(), await createUser()];
    const fromSse = [eventOf(await sse.nextEvent()), eventOf(await sse.nextEvent())];
    const fromSocket = [await ws.next(), await ws.next()];
    for (const event of fromSocket) expectSchema('Event', event);
    expect(fromSocket).toEqual(fromSse);
    expect(fromSocket.map((event) => event.subject.id)).toEqual(users.map((user) => user.id));

    const resumed = await socket(api.admin.token, { type: 'user.*', lastEventId: fromSocket[0].id });
    expect(await resumed.next()).toEqual(fromSocket[1]);
  });

  it('pings while nothing happens, and refuses an unknown last event id before upgrading', async () => {
    const ws = await socket(api.admin.token, { subjectId: 'usr_nobody' });
    await ws.pinged(2, 5000);
    await expectRefusedUpgrade(
      wsUrl(api, SOCKET_PATH, { lastEventId: 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB' }),
      api.admin.token,
      404,
      'not_found',
    );
  });

  it('closes with 4001 when the credential ends', async () => {
    const member = await api.addCaller('member');
    const token = await createToken(member);
    const ws = await socket(token.secret);
    expect((await api.call('revokeApiToken', { token: member.token, path: { tokenId: token.id } })).status).toBe(204);
    expect(await ws.close(5000)).toEqual({ code: 4001, reason: 'token revoked' });
  });
});

describe('shutdown', () => {
  it('ends open streams (1001 for WebSockets) so the server can drain', async () => {
    const own = await startApi({ streamHeartbeatSeconds: 1 });
    try {
      const stream = await SseStream.open(`${own.url}${STREAM_PATH}`, own.admin.token);
      expect((await stream.next())?.retry).toBe(2000);
      const ws = await SocketMessages.open(`${own.url.replace(/^http/, 'ws')}${SOCKET_PATH}`, own.admin.token);
      const closing = own.server.close();
      expect((await stream.ended(5000)).at(-1)?.comments).toEqual(['server shutting down']);
      expect((await ws.close(5000)).code).toBe(1001);
      await closing;
    } finally {
      await own.close();
    }
  });
});
