import type { Kysely } from 'kysely';
import type { ServerConfig } from '../config.js';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { userActor, type LoginFailureReason } from '../events/types.js';
import type { components } from '../generated/types.js';
import { ApiError } from '../http/errors.js';
import { findUserById, findUserByUsername, type UserRow } from '../users/repository.js';
import { toUser } from '../users/view.js';
import { noRevocationListener, type RevocationListener } from '../revocations.js';
import { verifyAgainstDummy, verifyPassword } from './passwords.js';
import { newSecret, secretDigest } from './secrets.js';
import {
  findSessionById,
  findSessionByRefreshDigest,
  findSpentRefreshToken,
  insertSession,
  purgeSpentRefreshTokens,
  revokeSession,
  rotateSession,
  type SessionTokens,
} from './sessions.js';
import { clearFailures, lockFailureCounts, readFailureCounts, recordFailure } from './login-failures.js';
import { loginGate, throttleKeys, type ThrottleKeys } from './throttle.js';

export type TokenPair = components['schemas']['TokenPair'];

export type AuthConfig = Pick<ServerConfig, 'accessTokenTtlSeconds' | 'refreshTokenTtlSeconds' | 'loginThrottle'>;

/** Where a request came from: recorded on the sessions and events it makes. */
export interface Origin {
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
}

type LoginOutcome = { ok: true; pair: TokenPair } | { ok: false; error: ApiError };
/** A refused refresh says which session it revoked, if any, once the transaction has committed. */
type RefreshOutcome = { ok: true; pair: TokenPair } | { ok: false; revoked: string | undefined };

/**
 * A spent refresh token presented again this soon after its refresh is refused without revoking the session: two
 * refreshes by the same client (two CLI commands sharing a profile) can race, and the loser gets no tokens either.
 */
const REUSE_GRACE_MS = 10_000;

function invalidCredentials(): ApiError {
  return new ApiError('invalid_credentials', 'The username or password is wrong.');
}

function invalidRefreshToken(): ApiError {
  return new ApiError('invalid_refresh_token', 'The refresh token is not valid; log in again.');
}

function throttled(retryAfter: number): ApiError {
  return new ApiError('too_many_login_attempts', `Wait ${retryAfter} seconds before trying again.`, { retryAfter });
}

function secondsLater(now: Date, seconds: number): string {
  return new Date(now.getTime() + seconds * 1000).toISOString();
}

/** Logging in, refreshing and logging out: the life of a session. */
export class AuthService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #config: AuthConfig;
  readonly #revocations: RevocationListener;

  constructor(deps: { db: Kysely<DB>; clock: () => Date; config: AuthConfig; revocations?: RevocationListener }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#config = deps.config;
    this.#revocations = deps.revocations ?? noRevocationListener;
  }

  /**
   * Checks a username and password and starts a session. Attempts are throttled per (source address, username)
   * and per source address (`throttle.ts`), before anything about the username is looked at, so a known and an
   * unknown username fail alike: `invalid_credentials` (after the same password hashing work), or
   * `too_many_login_attempts` with `Retry-After`. Every failure is counted and recorded before the error is thrown.
   */
  async login(username: string, password: string, origin: Origin): Promise<TokenPair> {
    const now = this.#clock();
    const name = username.toLowerCase();
    const keys = throttleKeys(origin.ip ?? 'unknown', name);
    const gate = loginGate(await readFailureCounts(this.#db, keys), now, this.#config.loginThrottle);
    if (!gate.open) {
      await this.#db.transaction().execute((trx) => this.#loginThrottled(trx, name, origin, now));
      throw throttled(gate.retryAfterSeconds);
    }
    const user = await findUserByUsername(this.#db, name);
    let passwordMatches = false;
    if (user === undefined) await verifyAgainstDummy(password);
    else passwordMatches = await verifyPassword(password, user.password_hash);
    const outcome = await this.#db
      .transaction()
      .execute((trx) => this.#settleLogin(trx, name, user, passwordMatches, keys, origin, now));
    if (!outcome.ok) throw outcome.error;
    return outcome.pair;
  }

  /**
   * Exchanges a refresh token for a new pair; the session's old tokens stop working. A refresh token that an
   * earlier refresh replaced means someone else holds the session's tokens (OAuth 2.0 Security BCP, refresh token
   * rotation): the session is revoked and `auth.refresh_token_reused` recorded, unless the token was replaced less
   * than `REUSE_GRACE_MS` ago, when it is only refused (a client's own refreshes racing each other).
   */
  async refresh(refreshToken: string, origin: Origin): Promise<TokenPair> {
    const now = this.#clock();
    const digest = secretDigest(refreshToken);
    const outcome = await this.#db.transaction().execute(async (trx): Promise<RefreshOutcome> => {
      await purgeSpentRefreshTokens(trx, now.toISOString());
      const session = await findSessionByRefreshDigest(trx, digest);
      if (session === undefined) return { ok: false, revoked: await this.#revokeOnReuse(trx, digest, origin, now) };
      const user = await findUserById(trx, session.user_id);
      if (user === undefined) throw invalidRefreshToken();
      if (user.disabled === 1) throw new ApiError('user_disabled', 'The user is disabled.');
      if (session.revoked_at !== null || session.refresh_expires_at <= now.toISOString()) throw invalidRefreshToken();
      const { tokens, pair } = this.#issue(user, now);
      if (!(await rotateSession(trx, session, tokens, now.toISOString()))) throw invalidRefreshToken();
      return { ok: true, pair };
    });
    if (outcome.ok) return outcome.pair;
    if (outcome.revoked !== undefined) {
      this.#revocations.revoked({ type: 'session', sessionId: outcome.revoked, reason: 'refresh token reused' });
    }
    throw invalidRefreshToken();
  }

  /** Revokes the session whose spent refresh token `digest` is, past the grace window; resolves its id if it did. */
  async #revokeOnReuse(trx: Kysely<DB>, digest: string, origin: Origin, now: Date): Promise<string | undefined> {
    const spent = await findSpentRefreshToken(trx, digest);
    if (spent === undefined || now.getTime() - Date.parse(spent.spent_at) < REUSE_GRACE_MS) return undefined;
    const session = await findSessionById(trx, spent.session_id);
    if (session === undefined || !(await revokeSession(trx, session.id, now.toISOString()))) return undefined;
    await appendEvent(trx, {
      type: 'auth.refresh_token_reused',
      actor: { type: 'anonymous' },
      subject: { type: 'user', id: session.user_id },
      data: { sessionId: session.id },
      requestId: origin.requestId,
      occurredAt: now,
    });
    return session.id;
  }

  /**
   * Ends the session of a refresh token, if it is live, and then its WebSockets; unknown or ended sessions are not
   * an error.
   */
  async logout(refreshToken: string, origin: Origin): Promise<void> {
    const now = this.#clock();
    const ended = await this.#db.transaction().execute(async (trx) => {
      const session = await findSessionByRefreshDigest(trx, secretDigest(refreshToken));
      if (session === undefined || !(await revokeSession(trx, session.id, now.toISOString()))) return undefined;
      const user = await findUserById(trx, session.user_id);
      await appendEvent(trx, {
        type: 'auth.logged_out',
        actor: user === undefined ? { type: 'anonymous' } : userActor(user),
        subject: { type: 'session', id: session.id },
        data: { sessionId: session.id },
        requestId: origin.requestId,
        occurredAt: now,
      });
      return session.id;
    });
    if (ended !== undefined) this.#revocations.revoked({ type: 'session', sessionId: ended, reason: 'logged out' });
  }

  /**
   * Decides a login whose password was checked against `seen` (undefined for an unknown username), with the
   * throttle and the account re-read in the transaction: an attempt that raced with others is judged on the counts
   * they left, so parallel guesses cannot slip past the throttle, and a password changed meanwhile is not accepted.
   */
  async #settleLogin(
    trx: Kysely<DB>,
    name: string,
    seen: UserRow | undefined,
    passwordMatches: boolean,
    keys: ThrottleKeys,
    origin: Origin,
    now: Date,
  ): Promise<LoginOutcome> {
    const config = this.#config.loginThrottle;
    await lockFailureCounts(trx, keys);
    const counts = await readFailureCounts(trx, keys);
    const gate = loginGate(counts, now, config);
    if (!gate.open) {
      await this.#loginThrottled(trx, name, origin, now);
      return { ok: false, error: throttled(gate.retryAfterSeconds) };
    }
    const user = seen === undefined ? undefined : await findUserById(trx, seen.id);
    const passwordHolds = user !== undefined && passwordMatches && user.password_hash === seen?.password_hash;
    if (user !== undefined && passwordHolds && user.disabled === 0) {
      await clearFailures(trx, keys.pair);
      return { ok: true, pair: await this.#startSession(trx, user, origin, now) };
    }

    const { pair: failedAttempts } = await recordFailure(
      trx,
      keys,
      now.toISOString(),
      new Date(now.getTime() - config.forgetAfterSeconds * 1000).toISOString(),
    );
    const reason = user === undefined ? 'unknown_user' : passwordHolds ? 'user_disabled' : 'wrong_password';
    await this.#loginFailed(trx, name, user?.id, reason, failedAttempts, origin, now);
    return { ok: false, error: invalidCredentials() };
  }

  /** Records an attempt the throttle refused (its subject is the user when the username exists). */
  async #loginThrottled(trx: Kysely<DB>, name: string, origin: Origin, now: Date): Promise<void> {
    const user = await findUserByUsername(trx, name);
    await this.#loginFailed(trx, name, user?.id, 'throttled', 0, origin, now);
  }

  async #startSession(trx: Kysely<DB>, user: UserRow, origin: Origin, now: Date): Promise<TokenPair> {
    const at = now.toISOString();
    const id = newId('ses', now.getTime());
    const { tokens, pair } = this.#issue(user, now);
    await insertSession(trx, {
      id,
      user_id: user.id,
      ...tokens,
      created_at: at,
      last_refreshed_at: null,
      revoked_at: null,
      user_agent: origin.userAgent,
      ip: origin.ip,
    });
    await appendEvent(trx, {
      type: 'auth.login_succeeded',
      actor: userActor(user),
      subject: { type: 'session', id },
      data: { sessionId: id },
      requestId: origin.requestId,
      occurredAt: now,
    });
    return pair;
  }

  async #loginFailed(
    trx: Kysely<DB>,
    username: string,
    userId: string | undefined,
    reason: LoginFailureReason,
    failedAttempts: number,
    origin: Origin,
    now: Date,
  ): Promise<void> {
    await appendEvent(trx, {
      type: 'auth.login_failed',
      actor: { type: 'anonymous' },
      subject: userId === undefined ? null : { type: 'user', id: userId },
      data: { username, reason, failedAttempts },
      requestId: origin.requestId,
      occurredAt: now,
    });
  }

  #issue(user: UserRow, now: Date): { tokens: SessionTokens; pair: TokenPair } {
    const accessToken = newSecret('cpa_');
    const refreshToken = newSecret('cpr_');
    const accessTokenExpiresAt = secondsLater(now, this.#config.accessTokenTtlSeconds);
    const refreshTokenExpiresAt = secondsLater(now, this.#config.refreshTokenTtlSeconds);
    return {
      tokens: {
        access_token_hash: secretDigest(accessToken),
        access_expires_at: accessTokenExpiresAt,
        refresh_token_hash: secretDigest(refreshToken),
        refresh_expires_at: refreshTokenExpiresAt,
      },
      pair: {
        tokenType: 'Bearer',
        accessToken,
        accessTokenExpiresAt,
        refreshToken,
        refreshTokenExpiresAt,
        user: toUser(user),
      },
    };
  }
}
