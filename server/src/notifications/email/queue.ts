import type { Kysely } from 'kysely';
import { newId } from '../../db/ids.js';
import type { DB } from '../../db/schema.js';

export interface QueuedEmail {
  /** The user it is for, when it is for one. */
  userId: string | null;
  to: string;
  /** A notification kind, or the verification mail's. */
  kind: string;
  title: string;
  body: string;
  link: string | null;
  /** The values its templates may name besides title, body and link. */
  data: Record<string, unknown>;
}

/**
 * Queues an email, due at once. Pass the transaction of the change it tells of, so that nothing is sent of what
 * did not commit. The sender finds it on its next poll, or sooner when woken after the commit.
 *
 * A pending email with no `next_attempt_at` is due now by whichever clock the sender keeps.
 */
export async function enqueueEmail(trx: Kysely<DB>, email: QueuedEmail, now: Date = new Date()): Promise<void> {
  await trx
    .insertInto('email_messages')
    .values({
      id: newId('eml', now.getTime()),
      user_id: email.userId,
      to_address: email.to,
      kind: email.kind,
      title: email.title,
      body: email.body,
      link: email.link,
      data: JSON.stringify(email.data),
      status: 'pending',
      attempts: 0,
      next_attempt_at: null,
      last_error: null,
      created_at: now.toISOString(),
      sent_at: null,
    })
    .execute();
}
