import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { appendEvent } from '../../events/log.js';
import type { components } from '../../generated/types.js';
import { ApiError } from '../../http/errors.js';
import type { Principal } from '../../http/handler.js';
import type { SecretBox } from '../webhooks/secrets.js';
import { enqueueEmail } from './queue.js';
import { VERIFICATION_KIND } from './templates.js';

export type MyEmail = components['schemas']['MyEmail'];

/** How long a verification link works. */
const VERIFICATION_TTL_MS = 24 * 3600 * 1000;

/** A user gets at most one verification mail in this time, so that an account cannot be used to flood an address. */
const VERIFICATION_INTERVAL_MS = 60_000;

/** The path the verification link opens, under the server's public URL. */
const VERIFICATION_PATH = '/v1/email-verifications';

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function invalidToken(): ApiError {
  return new ApiError(
    'invalid_verification_token',
    'This verification link is unknown, expired or already used; set your email address again for a new one.',
  );
}

function viewOf(row: { email: string; verified_at: string | null } | undefined): MyEmail {
  if (row === undefined) return { email: null, verified: false, verifiedAt: null };
  return { email: row.email, verified: row.verified_at !== null, verifiedAt: row.verified_at };
}

/**
 * Each user's email address, mailed only once verified: setting it mails a one-time link (a random token of which
 * only the SHA-256 is stored) that verifies it when opened.
 */
export class EmailService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #secrets: SecretBox;
  readonly #publicUrl: () => string;
  readonly #unavailable: string | null;
  readonly #queued: () => void;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    /** The server's URL as users reach it, for the verification link. */
    publicUrl: () => string;
    /** Why no email can be sent (no SMTP server configured), or null when it can. */
    unavailable: string | null;
    /** Called after a commit that queued an email (wakes the sender). */
    queued: () => void;
    /** Seals the verification link while it waits in the queue: it is a credential. */
    secrets: SecretBox;
  }) {
    this.#db = deps.db;
    this.#secrets = deps.secrets;
    this.#clock = deps.clock;
    this.#publicUrl = () => deps.publicUrl().replace(/\/+$/, '');
    this.#unavailable = deps.unavailable;
    this.#queued = deps.queued;
  }

  async get(principal: Principal): Promise<MyEmail> {
    return viewOf(await this.#row(this.#db, principal.userId));
  }

  /**
   * Sets the caller's address, unverified, and queues the verification mail; setting the verified address again
   * changes nothing and mails nothing. Another address, or the same one unverified, gets a new link and voids the
   * previous one.
   */
  async set(principal: Principal, email: string): Promise<MyEmail> {
    if (this.#unavailable !== null) {
      throw new ApiError('email_unavailable', `This server sends no email: ${this.#unavailable}.`);
    }
    const now = this.#clock();
    const token = randomBytes(32).toString('base64url');
    const result = await this.#db.transaction().execute(async (trx) => {
      const current = await this.#row(trx, principal.userId);
      if (current !== undefined && current.email === email && current.verified_at !== null) {
        return { view: viewOf(current), queued: false };
      }
      const waitMs = current === undefined || current.verified_at !== null ? 0 : Date.parse(current.updated_at) + VERIFICATION_INTERVAL_MS - now.getTime();
      if (waitMs > 0) {
        const retryAfter = Math.ceil(waitMs / 1000);
        throw new ApiError('rate_limited', `A verification mail was sent less than a minute ago; retry in ${retryAfter} s.`, { retryAfter });
      }
      const values = {
        email,
        verified_at: null,
        token_hash: tokenHash(token),
        token_expires_at: new Date(now.getTime() + VERIFICATION_TTL_MS).toISOString(),
        updated_at: now.toISOString(),
      };
      await trx
        .insertInto('user_emails')
        .values({ user_id: principal.userId, ...values })
        .onConflict((oc) => oc.column('user_id').doUpdateSet(values))
        .execute();
      // A link still queued for the previous address would not work any more.
      await this.#forgetQueuedLinks(trx, principal.userId);
      await enqueueEmail(
        trx,
        {
          userId: principal.userId,
          to: email,
          kind: VERIFICATION_KIND,
          title: 'Verify your email address',
          body: `Open the link to verify ${email} for ${principal.username}.`,
          link: this.#secrets.seal(`${this.#publicUrl()}${VERIFICATION_PATH}?token=${token}`),
          data: { username: principal.username, email },
        },
        now,
      );
      return { view: viewOf({ email, verified_at: null }), queued: true };
    });
    if (result.queued) this.#queued();
    return result.view;
  }

  /** Removes the caller's address; a link on its way to it stops working. */
  async delete(principal: Principal): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.deleteFrom('user_emails').where('user_id', '=', principal.userId).execute();
      await this.#forgetQueuedLinks(trx, principal.userId);
    });
  }

  /** Verifies the address whose link holds `token`, once: returns the address. */
  async verify(token: string, requestId: string | null): Promise<string> {
    const now = this.#clock();
    return this.#db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('user_emails')
        .innerJoin('users', 'users.id', 'user_emails.user_id')
        .select(['user_emails.user_id', 'user_emails.email', 'user_emails.token_expires_at', 'users.username'])
        .where('user_emails.token_hash', '=', tokenHash(token))
        .executeTakeFirst();
      if (row === undefined || row.token_expires_at === null || row.token_expires_at <= now.toISOString()) {
        throw invalidToken();
      }
      // The token is spent by whichever request clears it first.
      const updated = await trx
        .updateTable('user_emails')
        .set({ verified_at: now.toISOString(), token_hash: null, token_expires_at: null, updated_at: now.toISOString() })
        .where('user_id', '=', row.user_id)
        .where('token_hash', '=', tokenHash(token))
        .executeTakeFirst();
      if (updated.numUpdatedRows === 0n) throw invalidToken();
      await appendEvent(trx, {
        type: 'user.email_verified',
        actor: { type: 'user', id: row.user_id, username: row.username },
        subject: { type: 'user', id: row.user_id },
        data: { userId: row.user_id },
        requestId,
        occurredAt: now,
      });
      return row.email;
    });
  }

  #row(db: Kysely<DB>, userId: string) {
    return db
      .selectFrom('user_emails')
      .select(['email', 'verified_at', 'updated_at'])
      .where('user_id', '=', userId)
      .executeTakeFirst();
  }

  async #forgetQueuedLinks(trx: Kysely<DB>, userId: string): Promise<void> {
    await trx
      .deleteFrom('email_messages')
      .where('user_id', '=', userId)
      .where('kind', '=', VERIFICATION_KIND)
      .where('status', '=', 'pending')
      .execute();
  }
}
