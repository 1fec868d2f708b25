import type { Kysely } from 'kysely';

/**
 * Refresh tokens that a refresh has replaced, by digest: one coming back means two parties hold the session's
 * tokens, and the session is revoked. Kept until the token would have expired anyway.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('spent_refresh_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) => c.notNull().references('sessions.id').onDelete('cascade'))
    .addColumn('spent_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('spent_refresh_tokens_session_id').on('spent_refresh_tokens').column('session_id').execute();
  await db.schema.createIndex('spent_refresh_tokens_expires_at').on('spent_refresh_tokens').column('expires_at').execute();
}
