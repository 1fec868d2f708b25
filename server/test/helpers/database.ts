import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { DATABASE_FILE, openDatabase, openPostgres, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { DB } from '../../src/db/schema.js';
import { createTestSchema } from './postgres.js';

/** The engine of this run's database tests: PostgreSQL with `CLOUDPHONE_TEST_ENGINE=postgres`, else SQLite. */
export const testEngine: 'sqlite' | 'postgres' = process.env.CLOUDPHONE_TEST_ENGINE === 'postgres' ? 'postgres' : 'sqlite';

/**
 * A fresh database for a service test, migrated to the latest schema: in-memory SQLite, or with
 * `CLOUDPHONE_TEST_ENGINE=postgres` a schema of its own on the tests' private PostgreSQL, dropped on close.
 */
export async function openTestDatabase(): Promise<Database> {
  if (testEngine === 'sqlite') {
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

/** Where a server started by a test keeps its data, besides its data directory. */
export interface ServerDatabase {
  /** For the server's options: undefined on SQLite (the file in its data directory), a fresh schema's URL on PostgreSQL. */
  databaseUrl: string | undefined;
  /** Drops the schema (nothing on SQLite, whose file goes with the data directory). */
  drop(): Promise<void>;
}

/** A database for one server a test starts, on this run's engine. */
export async function createServerDatabase(): Promise<ServerDatabase> {
  if (testEngine === 'sqlite') return { databaseUrl: undefined, async drop() {} };
  const target = await createTestSchema();
  return { databaseUrl: target.url, drop: target.drop };
}

/** A read-only view of a started server's database, for a test to check what it stored. */
export interface DatabaseReader {
  db: Kysely<DB>;
  close(): Promise<void>;
}

/**
 * Reads the database of a server configured with `dataDir` and `databaseUrl`: its SQLite file opened read-only,
 * or its PostgreSQL schema over connections whose transactions are read-only.
 */
export function readServerDatabase(config: { dataDir: string; databaseUrl?: string | undefined }): DatabaseReader {
  if (config.databaseUrl === undefined) {
    const file = new BetterSqlite3(join(config.dataDir, DATABASE_FILE), { readonly: true, fileMustExist: true });
    const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: file }) });
    return { db, close: () => db.destroy() };
  }
  const url = new URL(config.databaseUrl);
  url.searchParams.set('options', `${url.searchParams.get('options') ?? ''} -c default_transaction_read_only=on`.trim());
  const { db, close } = openPostgres(url.href);
  return { db, close };
}
