import type { Kysely, Selectable } from 'kysely';
import type { ApiTokensTable, DB } from '../db/schema.js';
import { precompiled } from '../db/precompiled.js';
import type { Role } from '../http/access.js';

export type ApiTokenRow = Selectable<ApiTokensTable>;

/** The fields of an API token and its user that authenticating with it needs. */
export interface ApiTokenCredential {
  tokenId: string;
  /** JSON array of scopes. */
  scopes: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  userId: string;
  username: string;
  role: Role;
  disabled: number;
}

export async function insertApiToken(db: Kysely<DB>, token: ApiTokenRow): Promise<void> {
  await db.insertInto('api_tokens').values(token).execute();
}

export async function findApiToken(db: Kysely<DB>, id: string): Promise<ApiTokenRow | undefined> {
  return db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface ApiTokenQuery {
  /** Only this user's tokens; `undefined` for everyone's. */
  userId: string | undefined;
  includeRevoked: boolean;
  afterId: string | undefined;
  limit: number;
}

/** Tokens in id order, which is creation order. */
export async function queryApiTokens(db: Kysely<DB>, query: ApiTokenQuery): Promise<ApiTokenRow[]> {
  let select = db.selectFrom('api_tokens').selectAll();
  if (query.userId !== undefined) select = select.where('user_id', '=', query.userId);
  if (!query.includeRevoked) select = select.where('revoked_at', 'is', null);
  if (query.afterId !== undefined) select = select.where('id', '>', query.afterId);
  return select.orderBy('id', 'asc').limit(query.limit).execute();
}

export async function revokeApiTokenRow(db: Kysely<DB>, id: string, at: string): Promise<boolean> {
  const result = await db
    .updateTable('api_tokens')
    .set({ revoked_at: at })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Why an API token no longer authenticates (`user disabled`, `token revoked`, `token expired`, `token deleted` with
 * its user), or null while it does: the periodic check of the WebSockets opened with it.
 */
export async function apiTokenEnded(db: Kysely<DB>, id: string, now: string): Promise<string | null> {
  const row = await db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select(['api_tokens.revoked_at as revokedAt', 'api_tokens.expires_at as expiresAt', 'users.disabled as disabled'])
    .where('api_tokens.id', '=', id)
    .executeTakeFirst();
  if (row === undefined) return 'token deleted';
  if (row.disabled === 1) return 'user disabled';
  if (row.revokedAt !== null) return 'token revoked';
  if (row.expiresAt !== null && row.expiresAt <= now) return 'token expired';
  return null;
}

/** One lookup by a unique index: this runs on every request made with an API token. */
const apiTokenByDigest = precompiled((db: Kysely<DB>, digest: string) =>
  db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select([
      'api_tokens.id as tokenId',
      'api_tokens.scopes as scopes',
      'api_tokens.expires_at as expiresAt',
      'api_tokens.revoked_at as revokedAt',
      'api_tokens.last_used_at as lastUsedAt',
      'users.id as userId',
      'users.username as username',
      'users.role as role',
      'users.disabled as disabled',
    ])
    .where('api_tokens.token_hash', '=', digest),
);

/** One precompiled lookup by a unique index: this runs on every request made with an API token. */
export async function findApiTokenByDigest(db: Kysely<DB>, digest: string): Promise<ApiTokenCredential | undefined> {
  return (await apiTokenByDigest(db, digest))[0];
}

/** Records a use of a token unless one was recorded since `staleBefore`. */
export async function touchApiToken(db: Kysely<DB>, id: string, at: string, staleBefore: string): Promise<void> {
  await db
    .updateTable('api_tokens')
    .set({ last_used_at: at })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', staleBefore)]))
    .execute();
}
