import { openDatabase, openPostgres, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createTestSchema } from './postgres.js';

/**
 * A fresh database for a service test, migrated to the latest schema: in-memory SQLite, or with
 * `CLOUDPHONE_TEST_ENGINE=postgres` a schema of its own on the tests' private PostgreSQL, dropped on close.
 */
export async function openTestDatabase(): Promise<Database> {
  if (process.env.CLOUDPHONE_TEST_ENGINE !== 'postgres') {
    const database = openDatabase(':memory:');
    await migrateToLatest(database.db);
    return database;
  }
  const target = await createTestSchema();
  const database = openPostgres(target.url);
  await migrateToLatest(database.db);
  return {
    ...database,
    async close() {
      await database.close();
      await target.drop();
    },
  };
}
