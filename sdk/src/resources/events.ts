import { clientInternals, type CloudPhone } from '../client.js';
import type { BinaryResponse } from '../core/binary.js';
import { APIConnectionError, APIError, APITimeoutError, APIUserAbortError, CloudPhoneError } from '../core/errors.js';
import { parseRetryAfter } from '../core/retry.js';
import { ServerSentEventParser } from '../core/sse.js';
import type { Event } from '../generated/models.js';
import { EventsResource } from '../generated/resources.js';

/** The wait before reconnecting until the stream says otherwise with `retry:`, in ms. */
const DEFAULT_RECONNECT_DELAY = 2_000;
/** The longest wait between reconnects when they keep failing, in ms. */
const MAX_RECONNECT_DELAY = 30_000;

export interface FollowEventsOptions {
  /** Only events of these types; `family.*` matches a family (`lease.*`), as in `listEvents`. */
  type?: string[];
  /** Only events about this subject (a user, device, lease, app, …). */
  subjectId?: string;
  /** Start after this event: the events appended since come first. Without it, the stream starts with the next event appended. */
  lastEventId?: string;
  /** Ends the iteration (quietly) and closes the connection. */
  signal?: AbortSignal;
  /**
   * Called when the connection dropped or the server answered 408, 429 or 5xx, before waiting `delay` ms to
   * reconnect from the last event received. `attempt` counts the reconnects since the last successful connection.
   */
  onReconnect?: (info: { error: CloudPhoneError; delay: number; attempt: number }) => void;
}

/** `cp.events`: the generated event-log operations, plus `follow` for the live stream. */
export class Events extends EventsResource {
  /**
   * Follows the event log as events are appended (`streamEvents`): each `Event` you may see, in log order.
   * Connects on the first `next()`. When the connection drops, or the server answers 408, 429 or 5xx, it
   * reconnects by itself from the last event received (`Last-Event-ID`), so nothing is missed or repeated;
   * it waits as the stream's `retry:` or the response's `Retry-After` asks, doubling (with jitter) while
   * reconnects keep failing. An expired session is refreshed as for any call. Any other error response ends the
   * iteration with its `APIError` (`AuthenticationError`, `NotFoundError` for an unknown `lastEventId`, …).
   * Breaking out of the loop or aborting `signal` closes the connection and ends the iteration quietly.
   *
   * @example
   * ```ts
   * for await (const event of cp.events.follow({ type: ['lease.*'], signal })) {
   *   console.log(event.occurredAt, event.type, event.subject?.id);
   * }
   * ```
   */
  follow(options: FollowEventsOptions = {}): AsyncIterable<Event> {
    const client = this.client;
    return {
      [Symbol.asyncIterator]: () => follow(client, options),
    };
  }
}

/** Whether a failed connection is worth another: it dropped, timed out, or the server is busy or failing. */
function reconnectable(error: unknown): error is CloudPhoneError {
  if (error instanceof APIError) return error.status === 408 || error.status === 429 || error.status >= 500;
  return error instanceof APIConnectionError || error instanceof APITimeoutError;
}

async function* follow(client: CloudPhone, options: FollowEventsOptions): AsyncGenerator<Event, void, undefined> {
  const { signal, onReconnect } = options;
  const { sleep, jitter } = clientInternals(client);
  const query = {
    ...(options.type === undefined || options.type.length === 0 ? {} : { type: options.type }),
    ...(options.subjectId === undefined ? {} : { subjectId: options.subjectId }),
  };
  const parser = new ServerSentEventParser(options.lastEventId === undefined ? {} : { lastEventId: options.lastEventId });
  let attempt = 0;
  while (!signal?.aborted) {
    let failure: CloudPhoneError;
    let retryAfter: number | undefined;
    let response: BinaryResponse | undefined;
    try {
      const headers = parser.lastEventId === '' ? {} : { 'Last-Event-ID': parser.lastEventId };
      response = await client.request('streamEvents', { query, headers }, { maxRetries: 0, ...(signal ? { signal } : {}) });
      if (response.status === 204) return;
      if (!/^text\/event-stream\b/i.test(response.contentType ?? '')) {
        throw new CloudPhoneError(`streamEvents: expected text/event-stream, got ${response.contentType ?? 'no content type'}.`);
      }
      attempt = 0;
      for await (const chunk of response.body) {
        for (const message of parser.feed(chunk as Buffer)) yield parseEvent(message.data);
      }
      failure = new APIConnectionError('Connection error: the event stream ended.');
    } catch (error) {
      if (error instanceof APIUserAbortError || signal?.aborted) return;
      if (!reconnectable(error)) throw error;
      failure = error;
      if (error instanceof APIError) retryAfter = parseRetryAfter(error.headers['retry-after'], Date.now());
    } finally {
      response?.body.destroy();
      parser.end();
    }
    const delay = retryAfter ?? reconnectDelay(parser.retry ?? DEFAULT_RECONNECT_DELAY, attempt, jitter);
    attempt += 1;
    onReconnect?.({ error: failure, delay, attempt });
    await sleep(delay, signal);
  }
}

/** `base` doubled for each reconnect that failed in a row, at most 30 s, less up to 25 % jitter. */
function reconnectDelay(base: number, failedInRow: number, jitter: () => number): number {
  const delay = Math.min(base * 2 ** failedInRow, Math.max(base, MAX_RECONNECT_DELAY));
  return Math.round(delay * (1 - 0.25 * jitter()));
}

function parseEvent(data: string): Event {
  try {
    return JSON.parse(data) as Event;
  } catch (cause) {
    throw new CloudPhoneError('streamEvents: an event is not valid JSON.', { cause });
  }
}
