import type { FastifyBaseLogger } from 'fastify';
import type { Kysely, Selectable } from 'kysely';
import type { Cluster } from '../../cluster/cluster.js';
import type { DB, EmailMessagesTable } from '../../db/schema.js';
import { nextAttemptAt } from '../webhooks/schedule.js';
import type { SecretBox } from '../webhooks/secrets.js';
import { isPermanentFailure, type Mailer } from './mailer.js';
import { UnknownEmailKindError, VERIFICATION_KIND, type EmailTemplates } from './templates.js';

type Log = Pick<FastifyBaseLogger, 'debug' | 'warn' | 'error'>;
type EmailRow = Selectable<EmailMessagesTable>;

/** How often the leader looks for due emails when nothing woke it. */
const EMAIL_POLL_MS = 1000;

/** How many emails are handed to the mail server at once. */
const EMAIL_CONCURRENCY = 4;

/**
 * How long shutdown waits for the emails being sent. One still unanswered then is left to the process's end: it
 * stays pending and is sent again by the next leader (the server may then get it twice).
 */
const EMAIL_CLOSE_MS = 5000;

/** The longest `last_error` kept. */
const ERROR_LENGTH = 1000;

/**
 * An email for an address its user no longer has (changed, removed, or the user deleted): a notification to an
 * address not verified any more, or a verification mail whose address was verified meanwhile or is gone.
 */
class AddressWithdrawnError extends Error {
  constructor(verification: boolean) {
    super(
      verification
        ? 'the address is no longer waiting to be verified'
        : 'the address is no longer the verified address of its user',
    );
    this.name = 'AddressWithdrawnError';
  }
}

/**
 * An email never tried within this time after it was queued is no longer sent (it fails instead): news of a lease
 * or a budget that old is no use. That happens after a time with email off, while the queue kept what users would
 * have been mailed. Retries of an email tried in time follow their own schedule.
 */
export const EMAIL_MAX_AGE_MS = 3 * 24 * 3600 * 1000;

class StaleEmailError extends Error {
  constructor() {
    super('not tried within 3 days of being queued: too old to send');
    this.name = 'StaleEmailError';
  }
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.slice(0, ERROR_LENGTH);
}

/**
 * Sends the queued emails: only on the cluster's leader, a few at a time, each failure recorded and retried later
 * until the attempts run out. It never runs inside a request: a request queues, and wakes it after the commit.
 */
export class EmailDispatcher {
  readonly #secrets: SecretBox;
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #log: Log;
  readonly #mailer: Mailer;
  readonly #templates: EmailTemplates;
  readonly #cluster: Cluster | undefined;
  readonly #pollMs: number;
  readonly #concurrency: number;
  readonly #closeTimeoutMs: number;
  readonly #random: () => number;
  #timer: NodeJS.Timeout | null = null;
  #stopLeading: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #closed = false;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    log: Log;
    mailer: Mailer;
    templates: EmailTemplates;
    /** Unseals the verification links, which the queue keeps sealed (they are credentials). */
    secrets: SecretBox;
    /** Without one, this process sends (a lone node). */
    cluster?: Cluster | undefined;
    pollMs?: number | undefined;
    concurrency?: number | undefined;
    closeTimeoutMs?: number | undefined;
    /** The jitter of the retry delays, in [0, 1). */
    random?: () => number;
  }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#secrets = deps.secrets;
    this.#mailer = deps.mailer;
    this.#templates = deps.templates;
    this.#cluster = deps.cluster;
    this.#pollMs = deps.pollMs ?? EMAIL_POLL_MS;
    this.#concurrency = deps.concurrency ?? EMAIL_CONCURRENCY;
    this.#closeTimeoutMs = deps.closeTimeoutMs ?? EMAIL_CLOSE_MS;
    this.#random = deps.random ?? Math.random;
  }

  start(): void {
    this.#timer = setInterval(() => this.wake(), this.#pollMs);
    this.#timer.unref();
    this.#stopLeading = this.#cluster?.onLeadership((leader) => leader && this.wake()) ?? null;
    this.wake();
  }

  /** Looks for due emails now (after a commit that queued some); a no-op on a node that does not lead. */
  wake(): void {
    void this.sendDue();
  }

  /**
   * Sends every email due now, and resolves when done. A call while sending makes the running pass look again
   * rather than start another. Public so that tests with a manual clock can drive it.
   */
  sendDue(): Promise<void> {
    if (this.#closed || this.#cluster?.isLeader() === false) return this.#running ?? Promise.resolve();
    if (this.#running !== null) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#pass()
      .catch((error: unknown) => this.#log.error({ err: error }, 'could not send the queued emails'))
      .finally(() => {
        this.#running = null;
      });
    return this.#running;
  }

  /** Stops sending; resolves once the emails being sent are done, or `closeTimeoutMs` passed. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#stopLeading?.();
    this.#stopLeading = null;
    if (this.#running === null) return;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#closeTimeoutMs);
    });
    await Promise.race([this.#running, waited]);
    clearTimeout(timer);
  }

  async #pass(): Promise<void> {
    for (;;) {
      this.#again = false;
      if (this.#closed || this.#cluster?.isLeader() === false) return;
      const due = await this.#due(this.#clock().toISOString());
      await Promise.all(due.map((row) => this.#send(row)));
      if (due.length < this.#concurrency && !this.#again) return;
    }
  }

  #due(now: string): Promise<EmailRow[]> {
    return this.#db
      .selectFrom('email_messages')
      .selectAll()
      .where('status', '=', 'pending')
      .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', now)]))
      .orderBy('created_at')
      .orderBy('id')
      .limit(this.#concurrency)
      .execute();
  }

  async #send(row: EmailRow): Promise<void> {
    const attempts = row.attempts + 1;
    let failure: unknown = null;
    try {
      if (row.attempts === 0 && this.#clock().getTime() - Date.parse(row.created_at) > EMAIL_MAX_AGE_MS) {
        throw new StaleEmailError();
      }
      if (!(await this.#stillAddressed(row))) throw new AddressWithdrawnError(row.kind === VERIFICATION_KIND);
      const rendered = await this.#templates.render({
        kind: row.kind,
        title: row.title,
        body: row.body,
        link: row.kind === VERIFICATION_KIND && row.link !== null ? this.#secrets.unseal(row.link) : row.link,
        data: JSON.parse(row.data) as Record<string, unknown>,
      });
      await this.#mailer.send({ to: row.to_address, ...rendered });
    } catch (error) {
      failure = error;
    }
    const now = this.#clock();
    const next = failure === null ? null : this.#nextAttempt(failure, now, attempts);
    const status = failure === null ? 'sent' : next === null ? 'failed' : 'pending';
    await this.#db
      .updateTable('email_messages')
      .set({
        status,
        attempts,
        next_attempt_at: next === null ? null : next.toISOString(),
        last_error: failure === null ? null : errorText(failure),
        sent_at: failure === null ? now.toISOString() : null,
        // The verification link is a credential: once it is mailed (or never will be) the queue forgets it.
        ...(row.kind === VERIFICATION_KIND && status !== 'pending' ? { link: null } : {}),
      })
      .where('id', '=', row.id)
      .execute();
    if (failure === null) {
      this.#log.debug({ emailId: row.id, kind: row.kind, attempts }, 'email sent');
    } else {
      this.#log.warn({ emailId: row.id, kind: row.kind, attempts, status, error: errorText(failure) }, 'could not send an email');
    }
  }

  /**
   * Whether the email's address is still its user's: verified for a notification, waiting for its link for the
   * verification mail.
   */
  async #stillAddressed(row: EmailRow): Promise<boolean> {
    if (row.user_id === null) return true;
    const verification = row.kind === VERIFICATION_KIND;
    const current = await this.#db
      .selectFrom('user_emails')
      .select('user_id')
      .where('user_id', '=', row.user_id)
      .where('email', '=', row.to_address)
      .where(verification ? 'token_hash' : 'verified_at', 'is not', null)
      .executeTakeFirst();
    return current !== undefined;
  }

  /** When to try again after `attempts` failed attempts, webhook deliveries' schedule; null to give up. */
  #nextAttempt(failure: unknown, now: Date, attempts: number): Date | null {
    const final =
      failure instanceof UnknownEmailKindError || failure instanceof AddressWithdrawnError || failure instanceof StaleEmailError;
    if (final || isPermanentFailure(failure)) return null;
    return nextAttemptAt(now, attempts, { random: this.#random });
  }
}
