import { sql, type Kysely } from 'kysely';
import { bigintType, engineOf } from '../dialect.js';

/**
 * Notifications: the event log's audience and commit order, the inbox and its preferences, webhook endpoints with
 * their delivery queue and attempt log, users' email addresses and the email queue, and the lease expiry warning.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const big = bigintType(db);
  const postgres = engineOf(db) === 'postgres';
  // The user an event concerns besides its actor and subject (a lease's holder, an app's owner): who may see it.
  await db.schema.alterTable('events').addColumn('audience_id', 'text').execute();
  await db.schema.createIndex('events_audience').on('events').columns(['audience_id', 'seq']).execute();
  // The order events commit in, which live streams follow: on PostgreSQL the writing transaction's id (see the
  // event feed), on SQLite always 0, since its one writer commits in log order.
  await db.schema
    .alterTable('events')
    .addColumn('tx', big, (c) => c.notNull().defaultTo(postgres ? sql`pg_current_xact_id()::text::bigint` : 0))
    .execute();
  await db.schema.createIndex('events_commit_order').on('events').columns(['tx', 'seq']).execute();
  if (postgres) {
    // Every node's feed hears of new events when they commit (NOTIFY is delivered at commit), on a channel of the
    // schema, so that several deployments can share one database.
    await sql`create function cloudphone_events_committed() returns trigger language plpgsql as $$
      begin
        perform pg_notify('cloudphone_events_' || left(md5(tg_table_schema), 24), '');
        return null;
      end $$`.execute(db);
    await sql`create trigger events_committed after insert on events
      for each statement execute function cloudphone_events_committed()`.execute(db);
  }

  await db.schema.alterTable('leases').addColumn('expiry_warned_for', 'text').execute();

  await db.schema
    .createTable('notifications')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('link', 'text')
    .addColumn('subject_type', 'text')
    .addColumn('subject_id', 'text')
    .addColumn('event_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('read_at', 'text')
    .execute();
  await db.schema
    .createIndex('notifications_user')
    .on('notifications')
    .columns(['user_id', 'read_at', 'created_at'])
    .execute();
  await db.schema
    .createTable('notification_preferences')
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('inbox', 'integer', (c) => c.notNull())
    .addColumn('email', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('notification_preferences_pk', ['user_id', 'kind'])
    .execute();

  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('event_types', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('disabled_reason', 'text')
    .addColumn('failing_since', 'text')
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('previous_secret', 'text')
    .addColumn('previous_secret_expires_at', 'text')
    .addColumn('secret_rotated_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('webhook_endpoints_user').on('webhook_endpoints').columns(['user_id']).execute();
  // With the owner's index, the outbox finds an event's endpoints (its users' and the admins' scope-all ones) by two
  // index searches instead of reading every endpoint for every event.
  await db.schema.createIndex('webhook_endpoints_scope').on('webhook_endpoints').columns(['scope']).execute();
  await db.schema
    .createTable('webhook_endpoint_types')
    .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('pattern', 'text', (c) => c.notNull())
    .addColumn('prefix', 'text')
    .addPrimaryKeyConstraint('webhook_endpoint_types_pk', ['endpoint_id', 'pattern'])
    .execute();
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text')
    .addColumn('last_attempt_at', 'text')
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('delivered_at', 'text')
    // 1 when a user asked for the next attempt (a redelivery, a recovery): the dispatcher records it as manual.
    .addColumn('manual', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('webhook_deliveries_pk', ['endpoint_id', 'event_id'])
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_due')
    .on('webhook_deliveries')
    .columns(['status', 'next_attempt_at'])
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_endpoint')
    .on('webhook_deliveries')
    .columns(['endpoint_id', 'created_at'])
    .execute();
  await db.schema
    .createTable('webhook_attempts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('endpoint_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('number', 'integer', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('latency_ms', 'integer', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('response_excerpt', 'text')
    .addForeignKeyConstraint(
      'webhook_attempts_delivery',
      ['endpoint_id', 'event_id'],
      'webhook_deliveries',
      ['endpoint_id', 'event_id'],
      (c) => c.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('webhook_attempts_delivery')
    .on('webhook_attempts')
    .columns(['endpoint_id', 'event_id', 'number'])
    .execute();

  await db.schema
    .createTable('user_emails')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id').onDelete('cascade'))
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('verified_at', 'text')
    .addColumn('token_hash', 'text', (c) => c.unique())
    .addColumn('token_expires_at', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  // No foreign key to users: a message queued stays in the log of what was sent.
  await db.schema
    .createTable('email_messages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text')
    .addColumn('to_address', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('link', 'text')
    .addColumn('data', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'text')
    .execute();
  await db.schema.createIndex('email_messages_due').on('email_messages').columns(['status', 'next_attempt_at']).execute();
}
