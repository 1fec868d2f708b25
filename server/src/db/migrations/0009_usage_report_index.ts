import type { Kysely } from 'kysely';

/**
 * The usage report's index: every column the report reads, led by the day it filters on. SQLite has no hash
 * aggregation, so a GROUP BY that no index delivers in order sorts every record of the range; from this index it
 * reads no table rows, groups along the index (day, currency, project, user, billing class) without sorting, and
 * sorts only narrow entries for a grouping by device. It leads with the day, so the index on the day alone goes.
 * PostgreSQL aggregates by hashing and has the same index, as both engines keep one schema.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('usage_records_report')
    .on('usage_records')
    .columns(['day', 'currency', 'project', 'user_id', 'billing_class', 'device_id', 'price_per_minute', 'seconds', 'included_seconds'])
    .execute();
  await db.schema.dropIndex('usage_records_day').execute();
}
