import { sql, type Kysely, type SqlBool } from 'kysely';
import { engineOf } from '../../db/dialect.js';
import type { DB } from '../../db/schema.js';
import type { AppendedEvent } from '../../events/types.js';

/**
 * Queues `event` for every enabled webhook endpoint that wants it, in the transaction that appends it, so that a
 * delivery exists exactly when the event committed. An endpoint wants an event when
 * - its owner may see it: the endpoint has scope `all` and its owner is an enabled admin, or the owner caused the
 *   event, is its subject or its audience; and
 * - its types take it: it lists none (every type), or one equal to the event's, or a family `f.*` whose prefix
 *   `f.` starts the event's type.
 * A `webhook.test` event goes to the endpoint it is about and nowhere else, whatever that endpoint's types.
 */
export async function enqueueWebhookDeliveries(trx: Kysely<DB>, event: AppendedEvent): Promise<void> {
  const type = event.type as string;
  let endpoints = trx
    .selectFrom('webhook_endpoints as e')
    .innerJoin('users as u', 'u.id', 'e.user_id')
    .select([
      'e.id',
      sql.val(event.id).as('event_id'),
      sql.val(type).as('event_type'),
      sql.lit('pending').as('status'),
      sql.val(event.occurredAt).as('next_attempt_at'),
      sql.val(event.occurredAt).as('created_at'),
    ])
    .where('e.enabled', '=', 1);
  if (type === 'webhook.test') {
    if (event.subjectId === null) return;
    endpoints = endpoints.where('e.id', '=', event.subjectId);
  } else {
    const concerned = [...new Set([event.actorId, event.subjectId, event.audienceId])].filter((id): id is string => id !== null);
    endpoints = endpoints
      .where((eb) =>
        eb.or([
          eb.and([eb('e.scope', '=', 'all'), eb('u.role', '=', 'admin'), eb('u.disabled', '=', 0)]),
          ...(concerned.length > 0 ? [eb('e.user_id', 'in', concerned)] : []),
        ]),
      )
      .where((eb) =>
        eb.or([
          eb.not(eb.exists(eb.selectFrom('webhook_endpoint_types as t').select(sql.lit(1).as('one')).whereRef('t.endpoint_id', '=', 'e.id'))),
          eb.exists(
            eb
              .selectFrom('webhook_endpoint_types as t')
              .select(sql.lit(1).as('one'))
              .whereRef('t.endpoint_id', '=', 'e.id')
              .where((tb) =>
                tb.or([
                  tb('t.pattern', '=', type),
                  sql<SqlBool>`(${sql.ref('t.prefix')} is not null and substr(${type}, 1, length(${sql.ref('t.prefix')})) = ${sql.ref('t.prefix')})`,
                ]),
              ),
          ),
        ]),
      );
  }
  // On PostgreSQL an endpoint deleted while this transaction runs would fail the delivery's foreign key, and with it
  // the change the event records: the key-share lock (the one the foreign key check takes anyway) waits for such a
  // deletion and then skips the row.
  if (engineOf(trx) === 'postgres') endpoints = endpoints.forKeyShare('e');
  await trx
    .insertInto('webhook_deliveries')
    .columns(['endpoint_id', 'event_id', 'event_type', 'status', 'next_attempt_at', 'created_at'])
    .expression(endpoints)
    .execute();
}
