import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import type { EventRow } from '../events/log.js';
import { canSee } from '../events/service.js';
import type { Role } from '../http/access.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { revokes, type Revocation, type RevocationListener, type SessionCredential } from '../revocations.js';
import { findUserById } from '../users/repository.js';
import type { EventFeed, Start } from './feed.js';

/** The WebSocket close code when the credential a stream was opened with ends (an event stream gives the reason). */
const ACCESS_ENDED_CLOSE_CODE = 4001;

/** Events read from the feed at a time. */
const READ_BATCH = 500;

/** Why the server ended a stream: the WebSocket close code and reason to send. */
export interface StreamEnd {
  code: number;
  reason: string;
}

const SHUTDOWN: StreamEnd = { code: 1001, reason: 'server shutting down' };

/** The credential a stream was opened with, and the role its view of the log was filtered for. */
export interface StreamCredential extends SessionCredential {
  role: Role;
}

export interface TrackedStream {
  /** Aborted when the stream must stop; its `reason` is a `StreamEnd` when the server ended it. */
  readonly signal: AbortSignal;
  /** Ends the stream, with the reason it gives its client; forgets it once its handler is done. */
  end(why?: StreamEnd): void;
}

interface Entry extends StreamCredential {
  controller: AbortController;
}

/**
 * The open event streams (Server-Sent Events and WebSockets) with the credential each was opened with, so that they
 * end at once when that credential ends (token revoked, logout, user disabled or deleted, password changed) and,
 * through `recheck`, when it expired or the user's role changed: a stream filtered for an admin must not outlive
 * the user's admin role.
 */
export class StreamRegistry implements RevocationListener {
  readonly #db: Kysely<DB>;
  readonly #entries = new Set<Entry>();
  #closed = false;

  constructor(deps: { db: Kysely<DB> }) {
    this.#db = deps.db;
  }

  /** Tracks a stream opened by `principal`; after `closeAll` it is ended at once. */
  track(principal: Principal): TrackedStream {
    const entry: Entry = {
      userId: principal.userId,
      role: principal.role,
      tokenId: principal.method === 'api_token' ? principal.tokenId : undefined,
      sessionId: principal.method === 'session' ? principal.sessionId : undefined,
      controller: new AbortController(),
    };
    this.#entries.add(entry);
    if (this.#closed) this.#stop(entry, SHUTDOWN);
    return {
      signal: entry.controller.signal,
      end: (why) => {
        this.#entries.delete(entry);
        entry.controller.abort(why);
      },
    };
  }

  /** Ends the streams opened with a credential that just ended. */
  revoked(revocation: Revocation): void {
    for (const entry of [...this.#entries]) {
      if (revokes(revocation, entry)) this.#stop(entry, { code: ACCESS_ENDED_CLOSE_CODE, reason: revocation.reason });
    }
  }

  /**
   * Asks `ended` about the credential of every open stream (once per credential) and reads each user's role (once
   * per user), ending the streams whose credential ended or whose user no longer has the role they were opened with:
   * the backstop of `revoked`, for what this process was not told of (another node's changes, an API token's expiry,
   * a role change).
   */
  async recheck(ended: (credential: StreamCredential) => Promise<string | null>): Promise<void> {
    const credentials = new Map<string, Promise<string | null>>();
    const roles = new Map<string, Promise<Role | null>>();
    const checks = [...this.#entries].map((entry) => {
      const key = entry.tokenId === undefined ? `session ${entry.sessionId}` : `token ${entry.tokenId}`;
      return {
        entry,
        credential: once(credentials, key, () => ended(entry).catch(() => null)),
        role: once(roles, entry.userId, () => this.#roleOf(entry.userId)),
      };
    });
    for (const { entry, credential, role } of checks) {
      const current = (await role) ?? entry.role;
      const reason = (await credential) ?? (current === entry.role ? null : 'role changed');
      if (reason !== null && this.#entries.has(entry)) this.#stop(entry, { code: ACCESS_ENDED_CLOSE_CODE, reason });
    }
  }

  /** Ends every stream, as the server shuts down, and those opened from now on. */
  closeAll(): void {
    this.#closed = true;
    for (const entry of [...this.#entries]) this.#stop(entry, SHUTDOWN);
  }

  /** The user's role; null when the user is gone (the credential check ends those streams) or the read failed. */
  async #roleOf(userId: string): Promise<Role | null> {
    try {
      return (await findUserById(this.#db, userId))?.role ?? null;
    } catch {
      return null;
    }
  }

  #stop(entry: Entry, why: StreamEnd): void {
    this.#entries.delete(entry);
    entry.controller.abort(why);
  }
}

/** The value cached under `key`, loaded on first use. */
function once<T>(cache: Map<string, Promise<T>>, key: string, load: () => Promise<T>): Promise<T> {
  let value = cache.get(key);
  if (value === undefined) {
    value = load();
    cache.set(key, value);
  }
  return value;
}

/** Which events a stream carries, beyond what its caller may see. */
export interface StreamFilter {
  /** Exact types, or families written `family.*`; empty for every type. */
  types: readonly string[];
  subjectId: string | undefined;
}

export function matchesFilter(row: EventRow, filter: StreamFilter): boolean {
  if (filter.subjectId !== undefined && row.subject_id !== filter.subjectId) return false;
  if (filter.types.length === 0) return true;
  return filter.types.some((type) =>
    type.endsWith('.*') ? row.type.startsWith(type.slice(0, -1)) : row.type === type,
  );
}

/**
 * Where a stream starts: after the event `lastEventId` (404 `not_found` when the log has no such event), or with the
 * next event appended.
 */
export async function startOf(feed: EventFeed, lastEventId: string | undefined): Promise<Start> {
  if (lastEventId === undefined) return feed.now();
  const position = await feed.positionOf(lastEventId);
  if (position === undefined) throw new ApiError('not_found', `No event ${lastEventId} to resume after.`);
  return { position, skip: new Set() };
}

/** Whether `row` changed the role of the user a stream serves: what it may see changed with it. */
function changesRoleOf(principal: Principal, row: EventRow): boolean {
  if (row.type !== 'user.updated' || row.subject_id !== principal.userId) return false;
  const { changes } = JSON.parse(row.data) as { changes?: unknown };
  return Array.isArray(changes) && changes.includes('role');
}

export interface FollowOptions {
  feed: EventFeed;
  principal: Principal;
  filter: StreamFilter;
  from: Start;
  stream: TrackedStream;
  /** How long the stream may stay silent before `heartbeat` is called. */
  heartbeatMs: number;
  /** Sends one event; resolves once the client can take more (backpressure). */
  deliver(row: EventRow): Promise<void>;
  heartbeat(): Promise<void>;
}

/**
 * Follows the log from `from` until the stream is ended: every event the caller may see that matches the filter, in
 * log order, and a heartbeat whenever nothing was sent for `heartbeatMs`. Each stream reads at its own position, so
 * a slow client lags alone (the feed serves older positions from the database). An event changing the caller's role
 * ends the stream after it is delivered, so no event is filtered for a role the caller no longer has.
 */
export async function followFeed(options: FollowOptions): Promise<void> {
  const { feed, principal, filter, stream, heartbeatMs } = options;
  const { signal } = stream;
  let cursor = options.from.position;
  const { skip } = options.from;
  let quietSince = Date.now();
  while (!signal.aborted) {
    const batch = await feed.read(cursor, READ_BATCH);
    for (const { position, row } of batch) {
      if (signal.aborted) return;
      if (!skip.has(row.id) && canSee(principal, row) && matchesFilter(row, filter)) {
        await options.deliver(row);
        quietSince = Date.now();
      }
      cursor = position;
      if (changesRoleOf(principal, row)) {
        stream.end({ code: ACCESS_ENDED_CLOSE_CODE, reason: 'role changed' });
        return;
      }
    }
    if (signal.aborted) return;
    const quiet = Date.now() - quietSince;
    if (quiet >= heartbeatMs) {
      await options.heartbeat();
      quietSince = Date.now();
    } else if (batch.length < READ_BATCH) {
      await feed.changed(cursor, signal, heartbeatMs - quiet).catch((error: unknown) => {
        if (!signal.aborted) throw error;
      });
    }
  }
}
