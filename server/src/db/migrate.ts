import { Migrator, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { migrationTableSchema } from './dialect.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_devices.js';
import * as m0003 from './migrations/0003_apps.js';
import * as m0004 from './migrations/0004_spent_refresh_tokens.js';
import * as m0005 from './migrations/0005_login_failures.js';
import * as m0006 from './migrations/0006_install_job_device_positions.js';

/** Forward-only migrations, applied in name order. Add new ones here; never change a shipped one. */
const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_devices': m0002,
  '0003_apps': m0003,
  '0004_spent_refresh_tokens': m0004,
  '0005_login_failures': m0005,
  '0006_install_job_device_positions': m0006,
};

const provider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export interface MigrationOutcome {
  applied: string[];
}

export async function migrateToLatest(db: Kysely<any>): Promise<MigrationOutcome> {
  const migrator = new Migrator({ db, provider, migrationTableSchema: await migrationTableSchema(db) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
