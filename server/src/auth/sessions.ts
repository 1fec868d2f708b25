import type { Kysely, Selectable } from 'kysely';
import type { DB, SessionsTable, SpentRefreshTokensTable } from '../db/schema.js';
import { precompiled } from '../db/precompiled.js';
import type { Role } from '../http/access.js';

export type SessionRow = Selectable<SessionsTable>;
export type SpentRefreshTokenRow = Selectable<SpentRefreshTokensTable>;

/** The fields of a session and its user that authenticating an access token needs. */
export interface SessionCredential {
  sessionId: string;
  accessExpiresAt: string;
  revokedAt: string | null;
  userId: string;
  username: string;
  role: Role;
  disabled: number;
}

export async function insertSession(db: Kysely<DB>, session: SessionRow): Promise<void> {
  await db.insertInto('sessions').values(session).execute();
}

export async function findSessionByRefreshDigest(db: Kysely<DB>, digest: string): Promise<SessionRow | undefined> {
  return db.selectFrom('sessions').selectAll().where('refresh_token_hash', '=', digest).executeTakeFirst();
}

const sessionByAccessDigest = precompiled((db: Kysely<DB>, digest: string) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'sessions.id as sessionId',
      'sessions.access_expires_at as accessExpiresAt',
      'sessions.revoked_at as revokedAt',
      'users.id as userId',
      'users.username as username',
      'users.role as role',
      'users.disabled as disabled',
    ])
    .where('sessions.access_token_hash', '=', digest),
);

/** One precompiled lookup by a unique index: this runs on every request made with an access token. */
export async function findSessionByAccessDigest(
  db: Kysely<DB>,
  digest: string,
): Promise<SessionCredential | undefined> {
  return (await sessionByAccessDigest(db, digest))[0];
}

export interface SessionTokens {
  access_token_hash: string;
  access_expires_at: string;
  refresh_token_hash: string;
  refresh_expires_at: string;
}

/**
 * Replaces a session's tokens if its refresh token is still the one `session` holds and it is not revoked, and
 * keeps that refresh token's digest as spent; resolves whether it did, so two refreshes racing with one token
 * cannot both win.
 */
export async function rotateSession(
  db: Kysely<DB>,
  session: Pick<SessionRow, 'id' | 'refresh_token_hash' | 'refresh_expires_at'>,
  tokens: SessionTokens,
  at: string,
): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ ...tokens, last_refreshed_at: at })
    .where('id', '=', session.id)
    .where('refresh_token_hash', '=', session.refresh_token_hash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  if (result.numUpdatedRows === 0n) return false;
  await db
    .insertInto('spent_refresh_tokens')
    .values({
      token_hash: session.refresh_token_hash,
      session_id: session.id,
      spent_at: at,
      expires_at: session.refresh_expires_at,
    })
    .execute();
  return true;
}

export async function findSpentRefreshToken(db: Kysely<DB>, digest: string): Promise<SpentRefreshTokenRow | undefined> {
  return db.selectFrom('spent_refresh_tokens').selectAll().where('token_hash', '=', digest).executeTakeFirst();
}

/** Forgets spent refresh tokens that would have expired by `at`: presenting one is then merely invalid. */
export async function purgeSpentRefreshTokens(db: Kysely<DB>, at: string): Promise<void> {
  await db.deleteFrom('spent_refresh_tokens').where('expires_at', '<=', at).execute();
}

export async function findSessionById(db: Kysely<DB>, id: string): Promise<SessionRow | undefined> {
  return db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function revokeSession(db: Kysely<DB>, id: string, at: string): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ revoked_at: at })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Why a login session has ended (`user disabled`, `session ended`, `session expired`), or null while it lives: the
 * periodic check of the WebSockets opened with it.
 */
export async function sessionEnded(db: Kysely<DB>, id: string, now: string): Promise<string | null> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.revoked_at as revokedAt', 'sessions.refresh_expires_at as refreshExpiresAt', 'users.disabled as disabled'])
    .where('sessions.id', '=', id)
    .executeTakeFirst();
  if (row === undefined || row.revokedAt !== null) return 'session ended';
  if (row.disabled === 1) return 'user disabled';
  if (row.refreshExpiresAt <= now) return 'session expired';
  return null;
}

/** Revokes every live session of a user, except the one with id `keep`. */
export async function revokeUserSessions(db: Kysely<DB>, userId: string, at: Date, keep?: string): Promise<void> {
  let update = db
    .updateTable('sessions')
    .set({ revoked_at: at.toISOString() })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null);
  if (keep !== undefined) update = update.where('id', '!=', keep);
  await update.execute();
}
