import { chmodSync, closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, sql, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { connectionError, POSTGRES_BACKUP_ADVICE, postgresDialect } from './dialect.js';
import type { DB } from './schema.js';

/** The database's file name inside the data directory. */
export const DATABASE_FILE = 'cloudphone.db';

export interface Database {
  db: Kysely<DB>;
  /**
   * Makes sure the database answers: a no-op for SQLite; for PostgreSQL one round trip, failing with a
   * `DatabaseConnectionError` that names the setting and masks the password.
   */
  connect(): Promise<void>;
  /**
   * SQLite: copies the database to `destination` with the online backup, consistent and safe while a server uses
   * it; refuses to replace an existing file unless `overwrite`; the copy is mode 0600. PostgreSQL: fails with an
   * `UnsupportedByEngineError` naming `pg_dump`, writing nothing.
   */
  backup(destination: string, overwrite: boolean): Promise<{ pages: number }>;
  /** SQLite: checkpoints the write-ahead log into the database file. Then closes every connection. */
  close(): Promise<void>;
  /**
   * Calls `listener` with the error of each pooled PostgreSQL connection that fails while idle (the database ended
   * it, or the network dropped it). The pool replaces such a connection by itself, so this is for the log; without a
   * listener the error is dropped. SQLite has no such connections.
   */
  onIdleConnectionError(listener: (error: Error) => void): void;
}

/** An operation the engine in use leaves to its own tools. */
export class UnsupportedByEngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedByEngineError';
  }
}

/** Distinct SQL texts kept prepared; the queries the server builds come in far fewer shapes than this. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * The connection as Kysely sees it, with each distinct SQL text prepared once (least recently used dropped past
 * the limit). Kysely compiles a query to the same text every time it runs, and preparing (parsing and planning)
 * was the largest cost of a short query.
 */
export function withStatementCache(sqlite: BetterSqlite3.Database, size = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const statements = new Map<string, SqliteStatement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string): SqliteStatement {
      let statement = statements.get(sql);
      if (statement === undefined) {
        statement = sqlite.prepare(sql);
        if (statements.size >= size) statements.delete(statements.keys().next().value!);
      } else {
        statements.delete(sql);
      }
      statements.set(sql, statement);
      return statement;
    },
  };
}

/** Opens (creating if needed) the SQLite database at `path`, or an in-memory one for `':memory:'`. */
export function openDatabase(path: string): Database {
  const sqlite = new BetterSqlite3(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  return {
    db,
    async connect() {},
    async backup(destination, overwrite) {
      if (existsSync(destination)) {
        if (!overwrite) throw new Error(`${destination} exists; pass --force to replace it.`);
        rmSync(destination);
      }
      // A copy holds what the database holds (credential hashes): readable by its owner only.
      closeSync(openSync(destination, 'wx', 0o600));
      const { totalPages } = await sqlite.backup(destination);
      return { pages: totalPages };
    },
    async close() {
      if (sqlite.open) sqlite.pragma('wal_checkpoint(TRUNCATE)');
      await db.destroy();
    },
    onIdleConnectionError() {},
  };
}

/**
 * Opens the PostgreSQL database at `url` through a connection pool; nothing connects before the first query.
 * `setting` is what a failed `connect` names as the source of the URL.
 */
export function openPostgres(url: string, setting?: string): Database {
  const idleErrorListeners = new Set<(error: Error) => void>();
  const db = new Kysely<DB>({
    dialect: postgresDialect(url, (error) => {
      for (const listener of idleErrorListeners) listener(error);
    }),
  });
  return {
    db,
    async connect() {
      try {
        await sql`select 1`.execute(db);
      } catch (error) {
        throw connectionError(url, error, setting);
      }
    },
    async backup() {
      throw new UnsupportedByEngineError(POSTGRES_BACKUP_ADVICE);
    },
    async close() {
      await db.destroy();
    },
    onIdleConnectionError(listener) {
      idleErrorListeners.add(listener);
    },
  };
}

/**
 * The database the configuration names: PostgreSQL when `databaseUrl` is set, else SQLite in `dataDir` (with
 * `mustExist`, failing if there is no database file yet rather than creating one).
 */
export function openConfigured(
  config: { dataDir: string; databaseUrl?: string | undefined },
  { mustExist = false } = {},
): Database {
  if (config.databaseUrl !== undefined) return openPostgres(config.databaseUrl);
  if (mustExist && !existsSync(join(config.dataDir, DATABASE_FILE))) {
    throw new Error(`No database at ${join(config.dataDir, DATABASE_FILE)}.`);
  }
  return openDataDir(config.dataDir);
}

/** The files SQLite keeps for a database: the database itself, its write-ahead log and its shared-memory index. */
const DATABASE_FILES = [DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`];

/**
 * Creates the data directory (the ADB key, uploaded apps, and the SQLite database) mode 0700 on either engine, or
 * makes it 0700 when an earlier version or a restored backup left it readable by others.
 */
export function secureDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
}

/**
 * Opens the database in `dataDir`. The directory is mode 0700 (`secureDataDir`) and the database files 0600, also
 * when an earlier version or a restored backup left them readable by others. SQLite gives the write-ahead log and
 * shared-memory files the database file's mode, so the database file is created 0600 before SQLite opens it.
 */
export function openDataDir(dataDir: string): Database {
  secureDataDir(dataDir);
  const path = join(dataDir, DATABASE_FILE);
  closeSync(openSync(path, 'a', 0o600));
  for (const name of DATABASE_FILES) {
    try {
      chmodSync(join(dataDir, name), 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return openDatabase(path);
}
