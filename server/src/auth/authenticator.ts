import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { operations } from '../generated/operations.js';
import { roleAtLeast, scopesAllow, scopesOfRole, type Role, type Scope } from '../http/access.js';
import type { Authenticator } from '../http/auth.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { findApiTokenByDigest, touchApiToken } from '../tokens/repository.js';
import { parseScopes } from '../tokens/view.js';
import { secretDigest } from './secrets.js';
import { findSessionByAccessDigest } from './sessions.js';

/** A token's last use is recorded at most this often, so authenticating is a read on almost every request. */
const LAST_USED_RESOLUTION_MS = 60_000;

function invalidToken(): ApiError {
  return new ApiError('invalid_token', 'The token is not valid.');
}

const SCOPES: readonly Scope[] = ['read', 'write', 'admin'];

/**
 * The scopes of a login session: a session may call every operation the user's role may, so it carries each scope
 * those operations need (with the scopes below them). This is more than the role's ceiling for API tokens: a viewer's
 * session has `write` to change their own account and tokens, while the tokens a viewer creates may only `read`.
 */
export function sessionScopes(role: Role): Scope[] {
  const needed = Object.values(operations).flatMap((op) =>
    op.access !== null && roleAtLeast(role, op.access.role) ? [op.access.scope] : [],
  );
  return SCOPES.filter((scope) => scopesAllow(needed, scope));
}

const scopesOfSession: Record<Role, Scope[]> = {
  viewer: sessionScopes('viewer'),
  member: sessionScopes('member'),
  admin: sessionScopes('admin'),
};

/**
 * What an API token may do today: its scopes (each including those below it) within what the user's role allows
 * now, so a demoted user's old tokens lose what the new role does not have.
 */
export function effectiveScopes(tokenScopes: readonly Scope[], role: Role): Scope[] {
  return scopesOfRole(role).filter((scope) => scopesAllow(tokenScopes, scope));
}

/**
 * Resolves bearer tokens by their prefix: `cpa_` access tokens of login sessions and `cpt_` API tokens, each with one
 * indexed lookup of its sha256 digest. The user is checked on every request, so disabling a user or changing their
 * role takes effect at once.
 */
export class TokenAuthenticator implements Authenticator {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;

  constructor(deps: { db: Kysely<DB>; clock: () => Date }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
  }

  async authenticate(token: string): Promise<Principal> {
    if (token.startsWith('cpa_')) return this.#session(token);
    if (token.startsWith('cpt_')) return this.#apiToken(token);
    throw invalidToken();
  }

  async #session(token: string): Promise<Principal> {
    const session = await findSessionByAccessDigest(this.#db, secretDigest(token));
    if (session === undefined) throw invalidToken();
    if (session.disabled === 1) throw new ApiError('user_disabled', 'The user is disabled.');
    if (session.revokedAt !== null) throw new ApiError('token_revoked', 'The session has ended; log in again.');
    if (session.accessExpiresAt <= this.#clock().toISOString()) {
      throw new ApiError('token_expired', 'The access token expired; refresh it or log in again.');
    }
    return {
      userId: session.userId,
      username: session.username,
      role: session.role,
      scopes: [...scopesOfSession[session.role]],
      method: 'session',
      sessionId: session.sessionId,
    };
  }

  async #apiToken(token: string): Promise<Principal> {
    const credential = await findApiTokenByDigest(this.#db, secretDigest(token));
    if (credential === undefined) throw invalidToken();
    if (credential.disabled === 1) throw new ApiError('user_disabled', 'The user is disabled.');
    if (credential.revokedAt !== null) throw new ApiError('token_revoked', 'The API token was revoked.');
    const now = this.#clock();
    if (credential.expiresAt !== null && credential.expiresAt <= now.toISOString()) {
      throw new ApiError('token_expired', 'The API token expired.');
    }
    const staleBefore = new Date(now.getTime() - LAST_USED_RESOLUTION_MS).toISOString();
    if (credential.lastUsedAt === null || credential.lastUsedAt < staleBefore) {
      await touchApiToken(this.#db, credential.tokenId, now.toISOString(), staleBefore);
    }
    return {
      userId: credential.userId,
      username: credential.username,
      role: credential.role,
      scopes: effectiveScopes(parseScopes(credential.scopes), credential.role),
      method: 'api_token',
      tokenId: credential.tokenId,
    };
  }
}
