import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { migrationTableSchema, withSessionLock } from './dialect.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_devices.js';
import * as m0003 from './migrations/0003_apps.js';
import * as m0004 from './migrations/0004_spent_refresh_tokens.js';
import * as m0005 from './migrations/0005_login_failures.js';
import * as m0006 from './migrations/0006_install_job_device_positions.js';
import * as m0007 from './migrations/0007_work_owners.js';
import * as m0008 from './migrations/0008_billing.js';
import * as m0009 from './migrations/0009_usage_report_index.js';
import * as m0010 from './migrations/0010_notifications.js';

/** Forward-only migrations, applied in name order. Add new ones here; never change a shipped one. */
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_devices': m0002,
  '0003_apps': m0003,
  '0004_spent_refresh_tokens': m0004,
  '0005_login_failures': m0005,
  '0006_install_job_device_positions': m0006,
  '0007_work_owners': m0007,
  '0008_billing': m0008,
  '0009_usage_report_index': m0009,
  '0010_notifications': m0010,
};

/** The names of every migration, in the order they apply: what a database at the latest schema has applied. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations);

const provider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export interface MigrationOutcome {
  applied: string[];
}

/**
 * Applies the pending migrations. On PostgreSQL, nodes starting together take turns under a session lock of the
 * schema: the first migrates, the others then find nothing to do (Kysely's own lock table is created by the first
 * migration run, so two first runs at once would collide on creating it).
 */
export async function migrateToLatest(db: Kysely<any>): Promise<MigrationOutcome> {
  return withSessionLock(db, 'cloudphone migrations', async (connection) => {
    const migrator = new Migrator({ db: connection, provider, migrationTableSchema: await migrationTableSchema(db) });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw error instanceof Error ? error : new Error(String(error));
    return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
  });
}
