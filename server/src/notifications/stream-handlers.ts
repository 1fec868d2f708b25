import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { WebSocket } from 'ws';
import { callerOf } from '../caller.js';
import { eventJson } from '../events/service.js';
import { webSocketHandler, type HandlerInput, type Handlers, type Principal } from '../http/handler.js';
import type { EventFeed, Start } from './feed.js';
import {
  followFeed,
  startOf,
  type FollowOptions,
  type StreamEnd,
  type StreamRegistry,
  type TrackedStream,
} from './stream.js';

export type EventStreamHandlers = Pick<Handlers, 'streamEvents' | 'streamEventsSocket'>;

export interface EventStreamDeps {
  feed: EventFeed;
  streams: StreamRegistry;
  /** How long a stream stays silent before a heartbeat (an SSE comment, a WebSocket ping). */
  heartbeatMs: number;
}

/** How long a client that disconnects may wait before reconnecting, the first frame of every event stream. */
const RETRY_MS = 2000;

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  // A buffering proxy (nginx) would hold the frames back.
  'x-accel-buffering': 'no',
};

/** Resolves once `body` can take more, or rejects when the stream is ended first. */
async function written(body: PassThrough, chunk: string, signal: AbortSignal): Promise<void> {
  if (body.write(chunk)) return;
  await once(body, 'drain', { signal });
}

/** Resolves once `data` is handed to the connection, or rejects when the stream is ended first. */
function sent(socket: WebSocket, data: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', abort, { once: true });
    socket.send(data, (error) => {
      signal.removeEventListener('abort', abort);
      if (error) reject(error);
      else resolve();
    });
  });
}

function endOf(stream: TrackedStream): StreamEnd | undefined {
  const { reason } = stream.signal as { reason?: unknown };
  return typeof reason === 'object' && reason !== null && 'code' in reason ? (reason as StreamEnd) : undefined;
}

/**
 * The live event stream, as Server-Sent Events (`streamEvents`) and as a WebSocket (`streamEventsSocket`): the
 * events the caller may see, filtered by type and subject, from after `lastEventId` (or `Last-Event-ID`) or from
 * now. Every stream is tracked in `streams` with its credential and ends when that credential does.
 */
export function eventStreamHandlers({ feed, streams, heartbeatMs }: EventStreamDeps): EventStreamHandlers {
  // A WebSocket's start, resolved before the upgrade so that an unknown event id is a 404 response.
  const socketStarts = new WeakMap<object, Start>();
  const follow = (
    principal: Principal,
    query: { type?: string[]; subjectId?: string },
    from: Start,
    stream: TrackedStream,
    transport: Pick<FollowOptions, 'deliver' | 'heartbeat'>,
  ) =>
    followFeed({
      feed,
      principal,
      filter: { types: query.type ?? [], subjectId: query.subjectId },
      from,
      stream,
      heartbeatMs,
      ...transport,
    });

  return {
    streamEvents: async ({ query, headers, ctx }) => {
      const principal = callerOf(ctx);
      const from = await startOf(feed, query.lastEventId ?? headers['Last-Event-ID']);
      const body = new PassThrough();
      const stream = streams.track(principal);
      // The HTTP layer destroys the body when the client goes away.
      body.once('close', () => stream.end());
      const serve = async () => {
        await written(body, `retry: ${RETRY_MS}\n\n`, stream.signal);
        await follow(principal, query, from, stream, {
          deliver: (row) =>
            written(body, `id: ${row.id}\nevent: ${row.type}\ndata: ${eventJson(row)}\n\n`, stream.signal),
          heartbeat: () => written(body, ': keepalive\n\n', stream.signal),
        });
      };
      void serve()
        .catch((error: unknown) => {
          if (!stream.signal.aborted) ctx.log.error({ err: error }, 'event stream failed');
        })
        .finally(() => {
          const end = endOf(stream);
          stream.end();
          if (body.destroyed) return;
          body.end(end === undefined ? undefined : `: ${end.reason}\n\n`);
        });
      return { status: 200, body, headers: SSE_HEADERS };
    },

    streamEventsSocket: webSocketHandler<'streamEventsSocket'>(
      async (socket, input) => {
        const { query, ctx } = input;
        const principal = callerOf(ctx);
        const from = socketStarts.get(input) ?? (await feed.now());
        const stream = streams.track(principal);
        socket.once('close', () => stream.end());
        stream.signal.addEventListener('abort', () => {
          const end = endOf(stream);
          if (end !== undefined && socket.readyState === socket.OPEN) socket.close(end.code, end.reason);
        });
        // A client that did not answer the previous ping is gone.
        let answered = true;
        socket.on('pong', () => (answered = true));
        try {
          await follow(principal, query, from, stream, {
            deliver: (row) => sent(socket, eventJson(row), stream.signal),
            heartbeat: async () => {
              if (!answered) {
                socket.terminate();
                return;
              }
              answered = false;
              socket.ping();
            },
          });
        } catch (error) {
          if (!stream.signal.aborted) throw error;
        } finally {
          stream.end();
        }
      },
      {
        preUpgrade: async (input: HandlerInput<'streamEventsSocket'>) => {
          socketStarts.set(input, await startOf(feed, input.query.lastEventId));
        },
      },
    ),
  };
}
