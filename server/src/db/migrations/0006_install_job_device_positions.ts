import type { Kysely } from 'kysely';
import { numberRowsByInsertion } from '../dialect.js';

/**
 * An install job's devices get an explicit position, the order of the request, instead of SQLite's implicit rowid
 * (which PostgreSQL does not have). Existing rows are numbered in the order they were inserted.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('install_job_devices')
    .addColumn('position', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await numberRowsByInsertion(db, 'install_job_devices', 'position');
}
