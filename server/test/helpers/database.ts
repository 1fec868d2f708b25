import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { DATABASE_FILE, openDatabase, openPostgres, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import type { DB } from '../../src/db/schema.js';
import { createTestSchema, execute, type TestDatabase } from './postgres.js';

/** The engine of this run's database tests: PostgreSQL with `CLOUDPHONE_TEST_ENGINE=postgres`, else SQLite. */
export const testEngine: 'sqlite' | 'postgres' = process.env.CLOUDPHONE_TEST_ENGINE === 'postgres' ? 'postgres' : 'sqlite';

/** Migrated schemas this process's tests are done with, emptied, for the next test to take. */
const spareSchemas: TestDatabase[] = [];

/**
 * A migrated schema holding no rows, whose `drop` empties it for the next test of this process rather than dropping
 * it: migrating a schema takes a few hundred milliseconds, emptying its tables a few.
 */
async function migratedSchema(): Promise<TestDatabase> {
  let target = spareSchemas.pop();
  if (target === undefined) {
    target = await createTestSchema();
    const database = openPostgres(target.url);
    try {
      await migrateToLatest(database.db);
    } finally {
      await database.close();
    }
  }
  const schema = target;
  return {
    url: schema.url,
    async drop() {
      try {
        await emptySchema(schema.url);
        spareSchemas.push(schema);
      } catch {
        await schema.drop();
      }
    },
  };
}

/**
 * Empties every table of the schema at `url` but the migrator's, and restarts its identity columns, as migrating
 * it afresh would leave it. Gives up rather than waiting when a connection the test left open holds a lock.
 */
async function emptySchema(url: string): Promise<void> {
  await execute(
    url,
    "set lock_timeout = '2s'",
    `do $$
    declare tables text;
    begin
      select string_agg(format('%I', tablename), ', ') into tables
        from pg_tables where schemaname = current_schema() and tablename not like 'kysely_migration%';
      if tables is not null then execute 'truncate table ' || tables || ' restart identity cascade'; end if;
    end $$`,
  );
}

/**
 * A fresh database for a service test, migrated to the latest schema: in-memory SQLite, or with
 * `CLOUDPHONE_TEST_ENGINE=postgres` a schema of its own on the tests' private PostgreSQL, emptied on close.
 */
export async function openTestDatabase(): Promise<Database> {
  if (testEngine === 'sqlite') {
    const database = openDatabase(':memory:');
    await migrateToLatest(database.db);
    return database;
  }
  const target = await migratedSchema();
  const database = openPostgres(target.url);
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
  /** Empties the schema for the next test (nothing on SQLite, whose file goes with the data directory). */
  drop(): Promise<void>;
}

/** A database for one server a test starts, on this run's engine: on PostgreSQL migrated already, holding no rows. */
export async function createServerDatabase(): Promise<ServerDatabase> {
  if (testEngine === 'sqlite') return { databaseUrl: undefined, async drop() {} };
  const target = await migratedSchema();
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
