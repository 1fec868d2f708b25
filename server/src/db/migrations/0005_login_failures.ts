import type { Kysely } from 'kysely';

/**
 * Failed logins counted per (source address, username) and per source address, replacing the per-account count
 * and lock on `users` (which let anyone lock a known account, and told known usernames from unknown ones).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('login_failures')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('last_failed_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('login_failures_last_failed_at').on('login_failures').column('last_failed_at').execute();
  for (const column of ['failed_logins', 'last_failed_login_at', 'locked_until']) {
    await db.schema.alterTable('users').dropColumn(column).execute();
  }
}
