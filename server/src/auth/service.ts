import type { Kysely } from 'kysely';
import type { ServerConfig } from '../config.js';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { userActor, type LoginFailureReason } from '../events/types.js';
import type { components } from '../generated/types.js';
import { ApiError } from '../http/errors.js';
import { findUserById, findUserByUsername, updateUserRow, type UserRow } from '../users/repository.js';
import { toUser } from '../users/view.js';
import { noRevocationListener, type RevocationListener } from '../revocations.js';
import { verifyAgainstDummy, verifyPassword } from './passwords.js';
import { newSecret, secretDigest } from './secrets.js';
import {
  findSessionByRefreshDigest,
  insertSession,
  revokeSession,
  rotateSession,
  type SessionTokens,
} from './sessions.js';
import { loginGate, stateAfterFailure, type LoginState } from './throttle.js';

export type TokenPair = components['schemas']['TokenPair'];

export type AuthConfig = Pick<ServerConfig, 'accessTokenTtlSeconds' | 'refreshTokenTtlSeconds' | 'loginThrottle'>;

/** Where a request came from: recorded on the sessions and events it makes. */
export interface Origin {
  requestId: string | null;
  ip: string | null;
  userAgent: string | null;
}

type LoginOutcome = { ok: true; pair: TokenPair } | { ok: false; error: ApiError };

function invalidCredentials(): ApiError {
  return new ApiError('invalid_credentials', 'The username or password is wrong.');
}

function invalidRefreshToken(): ApiError {
  return new ApiError('invalid_refresh_token', 'The refresh token is not valid; log in again.');
}

function refusal(reason: 'locked' | 'throttled', retryAfter: number): ApiError {
  return reason === 'locked'
    ? new ApiError('account_locked', `Too many failed logins; try again in ${retryAfter} seconds.`, { retryAfter })
    : new ApiError('too_many_login_attempts', `Wait ${retryAfter} seconds before trying again.`, { retryAfter });
}

function loginState(user: UserRow): LoginState {
  return {
    failedLogins: user.failed_logins,
    lastFailedLoginAt: user.last_failed_login_at,
    lockedUntil: user.locked_until,
  };
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
   * Checks a username and password and starts a session. Every failure is recorded (and counted against the
   * account) before the error is thrown, and answers `invalid_credentials` whatever the reason, unless the account
   * is throttled or locked.
   */
  async login(username: string, password: string, origin: Origin): Promise<TokenPair> {
    const now = this.#clock();
    const name = username.toLowerCase();
    const user = await findUserByUsername(this.#db, name);
    if (user === undefined) {
      await verifyAgainstDummy(password);
      await this.#db
        .transaction()
        .execute((trx) => this.#loginFailed(trx, name, undefined, 'unknown_user', 0, origin, now));
      throw invalidCredentials();
    }
    const gate = loginGate(loginState(user), now, this.#config.loginThrottle);
    if (!gate.open) {
      await this.#db
        .transaction()
        .execute((trx) => this.#loginFailed(trx, name, user.id, gate.reason, gate.failures, origin, now));
      throw refusal(gate.reason, gate.retryAfterSeconds);
    }
    const passwordMatches = await verifyPassword(password, user.password_hash);
    const outcome = await this.#db
      .transaction()
      .execute((trx) => this.#settleLogin(trx, user, passwordMatches, origin, now));
    if (!outcome.ok) throw outcome.error;
    return outcome.pair;
  }

  /** Exchanges a refresh token for a new pair; the session's old tokens stop working. */
  async refresh(refreshToken: string): Promise<TokenPair> {
    const now = this.#clock();
    const digest = secretDigest(refreshToken);
    return this.#db.transaction().execute(async (trx) => {
      const session = await findSessionByRefreshDigest(trx, digest);
      const user = session === undefined ? undefined : await findUserById(trx, session.user_id);
      if (session === undefined || user === undefined) throw invalidRefreshToken();
      if (user.disabled === 1) throw new ApiError('user_disabled', 'The user is disabled.');
      if (session.revoked_at !== null || session.refresh_expires_at <= now.toISOString()) throw invalidRefreshToken();
      const { tokens, pair } = this.#issue(user, now);
      if (!(await rotateSession(trx, session.id, digest, tokens, now.toISOString()))) throw invalidRefreshToken();
      return pair;
    });
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
   * Decides a login whose password was checked against `seen`, with the account re-read in the transaction: an
   * attempt that raced with others is judged on the state they left, so parallel guesses cannot slip past the
   * throttle, and a password changed meanwhile is not accepted.
   */
  async #settleLogin(
    trx: Kysely<DB>,
    seen: UserRow,
    passwordMatches: boolean,
    origin: Origin,
    now: Date,
  ): Promise<LoginOutcome> {
    const user = await findUserById(trx, seen.id);
    if (user === undefined) {
      await this.#loginFailed(trx, seen.username, undefined, 'unknown_user', 0, origin, now);
      return { ok: false, error: invalidCredentials() };
    }
    const gate = loginGate(loginState(user), now, this.#config.loginThrottle);
    if (!gate.open) {
      await this.#loginFailed(trx, user.username, user.id, gate.reason, gate.failures, origin, now);
      return { ok: false, error: refusal(gate.reason, gate.retryAfterSeconds) };
    }
    const passwordHolds = passwordMatches && user.password_hash === seen.password_hash;
    if (passwordHolds && user.disabled === 0) {
      return { ok: true, pair: await this.#startSession(trx, user, origin, now) };
    }

    const next = stateAfterFailure(gate.failures, now, this.#config.loginThrottle);
    await updateUserRow(trx, user.id, {
      failed_logins: next.failedLogins,
      last_failed_login_at: next.lastFailedLoginAt,
      locked_until: next.lockedUntil,
    });
    const reason = passwordHolds ? 'user_disabled' : 'wrong_password';
    await this.#loginFailed(trx, user.username, user.id, reason, next.failedLogins, origin, now);
    if (next.lockedUntil === null) return { ok: false, error: invalidCredentials() };

    await appendEvent(trx, {
      type: 'auth.account_locked',
      actor: { type: 'anonymous' },
      subject: { type: 'user', id: user.id },
      data: { lockedUntil: next.lockedUntil, failedAttempts: next.failedLogins },
      requestId: origin.requestId,
      occurredAt: now,
    });
    return { ok: false, error: refusal('locked', this.#config.loginThrottle.lockSeconds) };
  }

  async #startSession(trx: Kysely<DB>, user: UserRow, origin: Origin, now: Date): Promise<TokenPair> {
    const at = now.toISOString();
    if (user.failed_logins !== 0 || user.locked_until !== null) {
      await updateUserRow(trx, user.id, { failed_logins: 0, last_failed_login_at: null, locked_until: null });
    }
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
