import type { Kysely } from 'kysely';
import { newSecret, secretDigest } from '../auth/secrets.js';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { principalActor } from '../events/types.js';
import { scopesAllow, scopesOfRole, type Scope } from '../http/access.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { noRevocationListener, type RevocationListener } from '../revocations.js';
import { findApiToken, insertApiToken, queryApiTokens, revokeApiTokenRow, type ApiTokenRow } from './repository.js';
import { toApiToken, toApiTokenSummary, type ApiToken, type CreatedApiToken } from './view.js';

export interface NewApiToken {
  name: string;
  scopes: Scope[];
  expiresInDays?: number | undefined;
  expiresAt?: string | undefined;
}

export interface ApiTokenListQuery {
  userId?: string | undefined;
  allUsers?: boolean | undefined;
  includeRevoked?: boolean | undefined;
  cursor?: string | undefined;
  limit: number;
}

/** The characters of a secret kept in the clear to recognise it: `cpt_` and four more. */
const PREFIX_LENGTH = 8;
const DAY_MS = 86_400_000;
const SCOPE_ORDER: readonly Scope[] = ['read', 'write', 'admin'];
const tokenPosition = idPosition(/^tok_[0-9A-Z]{26}$/);

function invalidExpiry(message: string): ApiError {
  return new ApiError('validation_failed', `expiresAt ${message}.`, { errors: [{ field: '/expiresAt', message }] });
}

/** The scopes in `requested` that `held` does not cover. */
function uncovered(requested: readonly Scope[], held: readonly Scope[]): Scope[] {
  return requested.filter((scope) => !scopesAllow(held, scope));
}

/** API tokens: a user's own, and as an admin anyone's. Others' tokens are reported as not found. */
export class ApiTokenService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;

  readonly #revocations: RevocationListener;

  constructor(deps: { db: Kysely<DB>; clock: () => Date; revocations?: RevocationListener }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#revocations = deps.revocations ?? noRevocationListener;
  }

  /** The caller's tokens; with `userId` another user's, with `allUsers` everyone's (both for admins only). */
  async list(principal: Principal, query: ApiTokenListQuery): Promise<Page<ApiToken>> {
    const owner = query.userId ?? (query.allUsers === true ? undefined : principal.userId);
    if (owner !== principal.userId && principal.role !== 'admin') {
      throw new ApiError('insufficient_role', "Listing other users' tokens needs the admin role.");
    }
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, tokenPosition);
    const rows = await queryApiTokens(this.#db, {
      userId: owner,
      includeRevoked: query.includeRevoked === true,
      afterId: after?.id,
      limit: query.limit + 1,
    });
    return toPage(rows, query.limit, toApiToken, (row) => ({ id: row.id }));
  }

  /**
   * Creates a token for the caller. Its scopes may not exceed the caller's role, nor the credential the caller is
   * using, so a token can never mint a stronger one.
   */
  async create(principal: Principal, input: NewApiToken, requestId: string | null): Promise<CreatedApiToken> {
    const beyondRole = uncovered(input.scopes, scopesOfRole(principal.role));
    if (beyondRole.length > 0) {
      throw new ApiError('scope_exceeds_role', `The ${principal.role} role cannot grant ${beyondRole.join(', ')}.`);
    }
    const beyondCredential = uncovered(input.scopes, principal.scopes);
    if (beyondCredential.length > 0) {
      throw new ApiError('scope_exceeds_role', `This credential cannot grant ${beyondCredential.join(', ')}.`);
    }
    const now = this.#clock();
    const secret = newSecret('cpt_');
    const row: ApiTokenRow = {
      id: newId('tok', now.getTime()),
      user_id: principal.userId,
      name: input.name,
      prefix: secret.slice(0, PREFIX_LENGTH),
      token_hash: secretDigest(secret),
      scopes: JSON.stringify(SCOPE_ORDER.filter((scope) => input.scopes.includes(scope))),
      created_at: now.toISOString(),
      expires_at: expiry(input, now),
      last_used_at: null,
      revoked_at: null,
    };
    await this.#db.transaction().execute(async (trx) => {
      await insertApiToken(trx, row);
      await appendEvent(trx, {
        type: 'token.created',
        actor: principalActor(principal),
        subject: { type: 'api_token', id: row.id },
        data: { token: toApiTokenSummary(row) },
        requestId,
        occurredAt: now,
      });
    });
    return { ...toApiToken(row), secret };
  }

  async get(principal: Principal, id: string): Promise<ApiToken> {
    return toApiToken(visible(principal, id, await findApiToken(this.#db, id)));
  }

  /** Revokes a token (its open WebSockets close once that is committed); revoking it again changes nothing. */
  async revoke(principal: Principal, id: string, requestId: string | null): Promise<void> {
    const now = this.#clock();
    await this.#db.transaction().execute(async (trx) => {
      const token = visible(principal, id, await findApiToken(trx, id));
      if (!(await revokeApiTokenRow(trx, id, now.toISOString()))) return;
      await appendEvent(trx, {
        type: 'token.revoked',
        actor: principalActor(principal),
        subject: { type: 'api_token', id },
        data: { token: toApiTokenSummary(token) },
        requestId,
        occurredAt: now,
      });
    });
    this.#revocations.revoked({ type: 'api_token', tokenId: id, reason: 'token revoked' });
  }
}

function visible(principal: Principal, id: string, token: ApiTokenRow | undefined): ApiTokenRow {
  if (token === undefined || (token.user_id !== principal.userId && principal.role !== 'admin')) {
    throw new ApiError('not_found', `No API token ${id}.`);
  }
  return token;
}

/** When a new token expires: `expiresInDays` from now, or at `expiresAt` (in the future), or never. */
function expiry(input: NewApiToken, now: Date): string | null {
  if (input.expiresInDays !== undefined && input.expiresAt !== undefined) {
    throw invalidExpiry('must not be given with expiresInDays');
  }
  if (input.expiresInDays !== undefined) return new Date(now.getTime() + input.expiresInDays * DAY_MS).toISOString();
  if (input.expiresAt === undefined) return null;
  const at = new Date(input.expiresAt);
  if (at.getTime() <= now.getTime()) throw invalidExpiry('must be in the future');
  return at.toISOString();
}
