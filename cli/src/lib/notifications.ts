/** How `events follow`, `inbox` and `webhooks listen` show events, notifications and forwarded deliveries. */
import type { Event, Notification } from '@cloudphone/sdk';
import { signedHeaders } from './standard-webhooks.js';

/** The width of the type column of event lines: most types fit, longer ones push the rest of their line. */
const TYPE_WIDTH = 26;

/** Who caused an event: the username, else `system` or `anonymous`. */
function actorOf(event: Pick<Event, 'actor'>): string {
  return event.actor?.username ?? event.actor?.type ?? '-';
}

/** One event as `time  type  subject  actor`, e.g. `2026-12-07T21:00:05Z  lease.granted  lse_…  alice`. */
export function formatEventLine(event: Pick<Event, 'occurredAt' | 'type' | 'subject' | 'actor'>): string {
  return `${event.occurredAt}  ${event.type.padEnd(TYPE_WIDTH)}  ${event.subject?.id ?? '-'}  ${actorOf(event)}\n`;
}

/** What `events follow` and `webhooks listen` say on standard error when the stream is lost for a while. */
export function reconnectNote(error: Error, delayMs: number): string {
  return `${error.message.replace(/\.$/, '')}; reconnecting in ${(delayMs / 1000).toFixed(1)} s.`;
}

/** The columns of the inbox table, each row keyed by its column. */
export const INBOX_COLUMNS = ['id', 'time', 'kind', 'title', 'read'] as const;

export function inboxRows(notifications: readonly Notification[]): Record<(typeof INBOX_COLUMNS)[number], string>[] {
  return notifications.map((n) => ({ id: n.id, time: n.createdAt, kind: n.kind, title: n.title, read: n.read ? 'yes' : 'no' }));
}

/** What became of one event forwarded to the local receiver. */
export interface Forwarded {
  eventId: string;
  type: string;
  occurredAt: string;
  /** The receiver's status; absent when no response came. */
  status?: number;
  /** Why no response came (refused, timed out, …). */
  error?: string;
  latencyMs: number;
}

/**
 * POSTs `event` to `url` as a Standard Webhooks delivery signed with `key`, as the server would deliver it to an
 * endpoint: the Event JSON as the body, the event id as `webhook-id`. Redirects are not followed. Never throws:
 * a failure is reported in the result.
 */
export async function forwardEvent(
  url: string,
  key: Buffer,
  event: Event,
  options: { timeoutMs: number; userAgent: string },
): Promise<Forwarded> {
  const body = JSON.stringify(event);
  const headers = { 'content-type': 'application/json', 'user-agent': options.userAgent, ...signedHeaders(key, event.id, body) };
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const about = { eventId: event.id, type: event.type, occurredAt: event.occurredAt };
  try {
    const response = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(options.timeoutMs) });
    await response.body?.cancel();
    return { ...about, status: response.status, latencyMs: elapsed() };
  } catch (error) {
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `timed out after ${options.timeoutMs} ms` : failureReason(error);
    return { ...about, error: reason, latencyMs: elapsed() };
  }
}

/** The innermost message of a failed fetch (`connect ECONNREFUSED 127.0.0.1:3000` rather than `fetch failed`). */
function failureReason(error: unknown): string {
  let reason = error;
  while (reason instanceof Error && reason.cause instanceof Error) reason = reason.cause;
  return reason instanceof Error ? reason.message : String(reason);
}

/** One forwarded event as `time  type  id  → 200 (12 ms)`, the time being when the event occurred. */
export function formatForwardedLine(forwarded: Forwarded): string {
  const outcome = forwarded.status === undefined ? `failed: ${forwarded.error ?? 'no response'}` : String(forwarded.status);
  return `${forwarded.occurredAt}  ${forwarded.type.padEnd(TYPE_WIDTH)}  ${forwarded.eventId}  → ${outcome} (${forwarded.latencyMs} ms)\n`;
}
