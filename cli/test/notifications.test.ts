import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Event, Notification } from '@cloudphone/sdk';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { forwardEvent, formatEventLine, formatForwardedLine, inboxRows, reconnectNote } from '../src/lib/notifications.js';
import { generateSecret, secretKey } from '../src/lib/standard-webhooks.js';

const event = {
  id: 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB',
  type: 'lease.granted',
  occurredAt: '2026-12-07T21:00:05Z',
  actor: { type: 'user', id: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA', username: 'alice' },
  subject: { type: 'lease', id: 'lse_01JDX7M3N4P5Q6R7S8T9V0W1X2' },
  data: { lease: { id: 'lse_01JDX7M3N4P5Q6R7S8T9V0W1X2' } },
  requestId: 'req_01JDX3N2Q7A9C1E3G5J7L9N1Q3',
} as unknown as Event;

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

interface Received {
  method: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver on 127.0.0.1 answering every request with `status` after `delayMs`. */
async function receiver(status: number, delayMs = 0, headers: Record<string, string> = {}) {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ method: request.method!, headers: request.headers, body });
      setTimeout(() => response.writeHead(status, headers).end('ok'), delayMs);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

const options = { timeoutMs: 2_000, userAgent: 'cloudphone-cli/0.1.0' };

describe('event lines', () => {
  it('show when, what, about what and who', () => {
    expect(formatEventLine(event)).toBe('2026-12-07T21:00:05Z  lease.granted               lse_01JDX7M3N4P5Q6R7S8T9V0W1X2  alice\n');
  });

  it('show - for no subject and the actor type without a username', () => {
    const system = { ...event, type: 'host.unreachable', subject: null, actor: { type: 'system', id: null, username: null } } as unknown as Event;
    expect(formatEventLine(system)).toBe('2026-12-07T21:00:05Z  host.unreachable            -  system\n');
  });
});

describe('reconnect notes', () => {
  it('say why and for how long', () => {
    expect(reconnectNote(new Error('Connection error: other side closed'), 2000)).toBe('Connection error: other side closed; reconnecting in 2.0 s.');
    expect(reconnectNote(new Error('Connection error: the event stream ended.'), 1750)).toBe('Connection error: the event stream ended; reconnecting in 1.8 s.');
  });
});

describe('inbox rows', () => {
  it('have the id, time, kind, title and read as yes or no', () => {
    const notification = {
      id: 'ntf_01JDXF3G4H5J6K7M8N9P0Q1R2S',
      kind: 'lease.expiring',
      title: 'Your lease expires in 5 minutes',
      body: '…',
      link: null,
      subject: null,
      eventId: null,
      read: false,
      readAt: null,
      createdAt: '2026-11-21T14:10:00Z',
    } satisfies Notification;
    expect(inboxRows([notification, { ...notification, read: true }])).toEqual([
      { id: notification.id, time: '2026-11-21T14:10:00Z', kind: 'lease.expiring', title: 'Your lease expires in 5 minutes', read: 'no' },
      { id: notification.id, time: '2026-11-21T14:10:00Z', kind: 'lease.expiring', title: 'Your lease expires in 5 minutes', read: 'yes' },
    ]);
  });
});

describe('forwardEvent', () => {
  it('POSTs the event JSON, signed so that the reference library verifies it, and reports the status', async () => {
    const { url, received } = await receiver(204);
    const secret = generateSecret();
    const forwarded = await forwardEvent(url, secretKey(secret)!, event, options);
    expect(forwarded).toMatchObject({ eventId: event.id, type: 'lease.granted', occurredAt: event.occurredAt, status: 204 });
    expect(forwarded.latencyMs).toBeGreaterThanOrEqual(0);
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request!.method).toBe('POST');
    expect(request!.headers['content-type']).toBe('application/json');
    expect(request!.headers['user-agent']).toBe('cloudphone-cli/0.1.0');
    expect(request!.headers['webhook-id']).toBe(event.id);
    expect(new Webhook(secret).verify(request!.body, request!.headers as Record<string, string>)).toEqual(event);
  });

  it('reports an error status as it is, and does not follow redirects', async () => {
    const failing = await receiver(500);
    expect(await forwardEvent(failing.url, secretKey(generateSecret())!, event, options)).toMatchObject({ status: 500 });
    const target = await receiver(200);
    const redirecting = await receiver(307, 0, { location: target.url });
    expect(await forwardEvent(redirecting.url, secretKey(generateSecret())!, event, options)).toMatchObject({ status: 307 });
    expect(target.received).toHaveLength(0);
  });

  it('reports a refused connection and a receiver too slow to answer', async () => {
    const gone = await receiver(200);
    const closed = servers.pop()!;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await forwardEvent(gone.url, secretKey(generateSecret())!, event, options);
    expect(refused.status).toBeUndefined();
    expect(refused.error).toMatch(/ECONNREFUSED/);

    const slow = await receiver(200, 1_000);
    const late = await forwardEvent(slow.url, secretKey(generateSecret())!, event, { ...options, timeoutMs: 100 });
    expect(late).toMatchObject({ error: 'timed out after 100 ms' });
    expect(late.latencyMs).toBeGreaterThanOrEqual(90);
  });

  it('prints one line per forwarded event', () => {
    expect(formatForwardedLine({ eventId: event.id, type: event.type, occurredAt: event.occurredAt, status: 200, latencyMs: 12 })).toBe(
      `2026-12-07T21:00:05Z  lease.granted               ${event.id}  → 200 (12 ms)\n`,
    );
    expect(
      formatForwardedLine({ eventId: event.id, type: event.type, occurredAt: event.occurredAt, error: 'connect ECONNREFUSED 127.0.0.1:9', latencyMs: 3 }),
    ).toBe(`2026-12-07T21:00:05Z  lease.granted               ${event.id}  → failed: connect ECONNREFUSED 127.0.0.1:9 (3 ms)\n`);
  });
});
