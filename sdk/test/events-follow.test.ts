import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthenticationError, CloudPhone, NotFoundError, type ClientOptions, type Event } from '../src/index.js';
import { problem, user } from './helpers.js';

/*
 * cp.events.follow against a real SSE server on a loopback socket: what it sends, how it reads frames, and how it
 * reconnects, resumes and stops.
 */

function event(n: number, type = 'user.created'): Event {
  return {
    id: `evt_${String(n).padStart(26, '0')}`,
    type,
    occurredAt: `2026-12-07T21:00:${String(n).padStart(2, '0')}Z`,
    actor: null,
    subject: { type: 'user', id: user.id },
    data: { user: { id: user.id, username: user.username, role: user.role } },
    requestId: null,
  } as unknown as Event;
}

const frame = (e: Event): string => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;

interface Connection {
  request: IncomingMessage;
  response: ServerResponse;
  closed: Promise<void>;
}

type Handler = (connection: Connection, index: number) => void;

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** An HTTP server on 127.0.0.1 answering the n-th request to the stream with `handlers[n]` (the last one after). */
async function sseServer(handlers: Handler[]) {
  const connections: Connection[] = [];
  const server = createServer((request, response) => {
    const closed = new Promise<void>((resolve) => response.on('close', () => resolve()));
    const connection = { request, response, closed };
    const index = connections.push(connection) - 1;
    handlers[Math.min(index, handlers.length - 1)]!(connection, index);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, connections };
}

function openStream(response: ServerResponse, retry = 10): void {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
  response.write(`retry: ${retry}\n\n`);
}

function replyProblem(response: ServerResponse, status: number, code: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/problem+json', ...headers }).end(JSON.stringify(problem(status, code)));
}

/** A client whose waits are recorded and skipped, with no jitter. */
function client(url: string, options: ClientOptions = {}) {
  const delays: number[] = [];
  const cp = new CloudPhone({
    baseUrl: url,
    token: 'cpa_test',
    maxRetries: 0,
    jitter: () => 0,
    sleep: async (ms) => {
      delays.push(ms);
    },
    ...options,
  });
  return { cp, delays };
}

async function take(iterable: AsyncIterable<Event>, n: number): Promise<Event[]> {
  const events: Event[] = [];
  if (n === 0) return events;
  for await (const e of iterable) {
    events.push(e);
    if (events.length === n) break;
  }
  return events;
}

describe('cp.events.follow', () => {
  it('asks for the stream with the token and the filters, and yields each event', async () => {
    const { url, connections } = await sseServer([
      ({ response }) => {
        openStream(response);
        response.write(': keepalive\n\n');
        response.write(frame(event(1)).slice(0, 20));
        response.write(frame(event(1)).slice(20) + frame(event(2)));
      },
    ]);
    const { cp } = client(url);
    const events = await take(cp.events.follow({ type: ['user.*', 'lease.granted'], subjectId: user.id }), 2);
    expect(events).toEqual([event(1), event(2)]);
    const { request, closed } = connections[0]!;
    expect(request.method).toBe('GET');
    const target = new URL(request.url!, url);
    expect(target.pathname).toBe('/v1/events/stream');
    expect(target.searchParams.getAll('type')).toEqual(['user.*', 'lease.granted']);
    expect(target.searchParams.get('subjectId')).toBe(user.id);
    expect(request.headers.accept).toMatch(/^text\/event-stream\b/);
    expect(request.headers.authorization).toBe('Bearer cpa_test');
    expect(request.headers['last-event-id']).toBeUndefined();
    // Breaking out of the loop closed the connection.
    await closed;
  });

  it('starts after lastEventId when given one', async () => {
    const { url, connections } = await sseServer([
      ({ response }) => {
        openStream(response);
        response.write(frame(event(6)));
      },
    ]);
    const { cp } = client(url);
    expect(await take(cp.events.follow({ lastEventId: event(5).id }), 1)).toEqual([event(6)]);
    expect(connections[0]!.request.headers['last-event-id']).toBe(event(5).id);
  });

  it('reconnects when the connection drops, resuming after the last event received, with no duplicate', async () => {
    const log = [1, 2, 3, 4, 5].map((n) => event(n));
    const after = (request: IncomingMessage) => {
      const last = request.headers['last-event-id'];
      return last === undefined ? log : log.slice(log.findIndex((e) => e.id === last) + 1);
    };
    const { url, connections } = await sseServer([
      ({ request, response }) => {
        openStream(response, 25);
        const [first, second, third] = after(request);
        // The third event is cut before its blank line: it never happened for the client.
        response.write(frame(first!) + frame(second!) + frame(third!).trimEnd());
        setTimeout(() => response.socket?.destroy(), 20);
      },
      ({ request, response }) => {
        openStream(response, 25);
        for (const e of after(request)) response.write(frame(e));
      },
    ]);
    const { cp, delays } = client(url);
    const reconnects: number[] = [];
    const events = await take(cp.events.follow({ onReconnect: ({ attempt }) => reconnects.push(attempt) }), 5);
    expect(events.map((e) => e.id)).toEqual(log.map((e) => e.id));
    expect(connections).toHaveLength(2);
    expect(connections[1]!.request.headers['last-event-id']).toBe(log[1]!.id);
    expect(connections[1]!.request.headers.authorization).toBe('Bearer cpa_test');
    expect(delays).toEqual([25]);
    expect(reconnects).toEqual([1]);
  });

  it('reconnects when the server ends the stream', async () => {
    const { url, connections } = await sseServer([
      ({ response }) => {
        openStream(response);
        response.end(frame(event(1)));
      },
      ({ response }) => {
        openStream(response);
        response.write(frame(event(2)));
      },
    ]);
    const { cp } = client(url);
    expect((await take(cp.events.follow(), 2)).map((e) => e.id)).toEqual([event(1).id, event(2).id]);
    expect(connections[1]!.request.headers['last-event-id']).toBe(event(1).id);
  });

  it('reconnects after 5xx and 429, doubling the wait while failing and honouring Retry-After', async () => {
    const { url, connections } = await sseServer([
      ({ response }) => {
        openStream(response, 100);
        response.write(frame(event(1)));
        setTimeout(() => response.socket?.destroy(), 20);
      },
      ({ response }) => replyProblem(response, 500, 'internal_error'),
      ({ response }) => replyProblem(response, 502, 'http_502'),
      ({ response }) => replyProblem(response, 429, 'rate_limited', { 'retry-after': '3' }),
      ({ response }) => replyProblem(response, 408, 'http_408'),
      ({ response }) => {
        openStream(response, 100);
        response.write(frame(event(2)));
      },
    ]);
    const { cp, delays } = client(url);
    const errors: string[] = [];
    const events = await take(cp.events.follow({ onReconnect: ({ error }) => errors.push(error.name) }), 2);
    expect(events.map((e) => e.id)).toEqual([event(1).id, event(2).id]);
    // retry: 100 from the stream, doubled per failure in a row; Retry-After's 3 s as it says.
    expect(delays).toEqual([100, 200, 400, 3000, 1600]);
    expect(errors).toEqual(['APIConnectionError', 'InternalServerError', 'InternalServerError', 'RateLimitError', 'APIError']);
    expect(connections.slice(1).map((c) => c.request.headers['last-event-id'])).toEqual(Array(5).fill(event(1).id));
  });

  it('waits with jitter, at most 30 s', async () => {
    const { url } = await sseServer([({ response }) => replyProblem(response, 503, 'service_unavailable')]);
    const { cp, delays } = client(url, { jitter: () => 0.5 });
    const controller = new AbortController();
    const stream = cp.events.follow({
      signal: controller.signal,
      onReconnect: ({ attempt }) => {
        if (attempt === 6) controller.abort();
      },
    });
    expect(await take(stream, 1)).toEqual([]);
    // 2 s until the stream says otherwise, doubling, capped at 30 s; all less 12.5 %.
    expect(delays).toEqual([2000, 4000, 8000, 16000, 30000, 30000].map((ms) => ms * 0.875));
  });

  it('ends with AuthenticationError on 401 and NotFoundError for an unknown lastEventId, without retrying', async () => {
    const { url, connections } = await sseServer([
      ({ response }) => replyProblem(response, 401, 'invalid_token'),
      ({ response }) => replyProblem(response, 404, 'not_found'),
    ]);
    const { cp, delays } = client(url);
    await expect(take(cp.events.follow(), 1)).rejects.toBeInstanceOf(AuthenticationError);
    await expect(take(cp.events.follow({ lastEventId: 'evt_00000000000000000000000000' }), 1)).rejects.toMatchObject({
      constructor: NotFoundError,
      status: 404,
      code: 'not_found',
    });
    expect(connections).toHaveLength(2);
    expect(delays).toEqual([]);
  });

  it('ends with the AuthenticationError when the credential is refused on reconnecting', async () => {
    const { url } = await sseServer([
      ({ response }) => {
        openStream(response);
        response.end(frame(event(1)));
      },
      ({ response }) => replyProblem(response, 401, 'token_revoked'),
    ]);
    const { cp } = client(url);
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const e of cp.events.follow()) seen.push(e.id);
      })(),
    ).rejects.toMatchObject({ constructor: AuthenticationError, code: 'token_revoked' });
    expect(seen).toEqual([event(1).id]);
  });

  it('refreshes an expired session and carries on from the last event', async () => {
    const refreshed: string[] = [];
    const { url, connections } = await sseServer([
      ({ response }) => {
        openStream(response);
        response.end(frame(event(1)));
      },
      ({ response }) => replyProblem(response, 401, 'token_expired'),
      ({ request, response }) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          refreshed.push(body);
          response.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              tokenType: 'Bearer',
              accessToken: 'cpa_new',
              accessTokenExpiresAt: '2026-12-07T22:00:00Z',
              refreshToken: 'cpr_new',
              refreshTokenExpiresAt: '2027-01-07T21:00:00Z',
              user,
            }),
          );
        });
      },
      ({ response }) => {
        openStream(response);
        response.write(frame(event(2)));
      },
    ]);
    const { cp } = client(url, { refreshToken: 'cpr_old' });
    expect((await take(cp.events.follow(), 2)).map((e) => e.id)).toEqual([event(1).id, event(2).id]);
    expect(refreshed).toEqual([JSON.stringify({ refreshToken: 'cpr_old' })]);
    const last = connections[3]!.request;
    expect([last.url, last.headers.authorization, last.headers['last-event-id']]).toEqual(['/v1/events/stream', 'Bearer cpa_new', event(1).id]);
  });

  it('stops quietly and closes the connection when aborted while waiting for an event', async () => {
    const { url, connections } = await sseServer([
      ({ response }) => {
        openStream(response);
        response.write(frame(event(1)));
      },
    ]);
    const { cp } = client(url);
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const e of cp.events.follow({ signal: controller.signal })) {
      seen.push(e.id);
      setTimeout(() => controller.abort(), 20);
    }
    expect(seen).toEqual([event(1).id]);
    await connections[0]!.closed;
    expect(connections).toHaveLength(1);
  });

  it('stops during a wait to reconnect when aborted', async () => {
    const { url, connections } = await sseServer([({ response }) => replyProblem(response, 503, 'service_unavailable')]);
    const controller = new AbortController();
    const cp = new CloudPhone({ baseUrl: url, token: 'cpa_test', maxRetries: 0 });
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    expect(await take(cp.events.follow({ signal: controller.signal }), 1)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(connections).toHaveLength(1);
  });

  it('does not connect when the signal is already aborted', async () => {
    const { url, connections } = await sseServer([({ response }) => openStream(response)]);
    const { cp } = client(url);
    expect(await take(cp.events.follow({ signal: AbortSignal.abort() }), 1)).toEqual([]);
    expect(connections).toHaveLength(0);
  });

  it('fails on a response that is not an event stream', async () => {
    const { url } = await sseServer([({ response }) => response.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>')]);
    const { cp } = client(url);
    await expect(take(cp.events.follow(), 1)).rejects.toThrow(/expected text\/event-stream, got text\/html/);
  });
});
