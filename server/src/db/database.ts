import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect, type SqliteDatabase, type SqliteStatement } from 'kysely';
import type { DB } from './schema.js';

/** The database's file name inside the data directory. */
export const DATABASE_FILE = 'cloudphone.db';

export interface Database {
  db: Kysely<DB>;
  /** The raw connection, for online backups and checkpoints. */
  sqlite: BetterSqlite3.Database;
  /** Checkpoints the write-ahead log into the database file, then closes the connection. */
  close(): Promise<void>;
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
    sqlite,
    async close() {
      if (sqlite.open) sqlite.pragma('wal_checkpoint(TRUNCATE)');
      await db.destroy();
    },
  };
}

/** The files SQLite keeps for a database: the database itself, its write-ahead log and its shared-memory index. */
const DATABASE_FILES = [DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`];

/**
 * Opens the database in `dataDir`. The directory (credential hashes, the ADB key, uploaded apps) is mode 0700 and
 * the database files 0600, also when an earlier version or a restored backup left them readable by others. SQLite
 * gives the write-ahead log and shared-memory files the database file's mode, so the database file is created
 * 0600 before SQLite opens it.
 */
export function openDataDir(dataDir: string): Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
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
