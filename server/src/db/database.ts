import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
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

/** Opens (creating if needed) the SQLite database at `path`, or an in-memory one for `':memory:'`. */
export function openDatabase(path: string): Database {
  const sqlite = new BetterSqlite3(path);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: sqlite }) });
  return {
    db,
    sqlite,
    async close() {
      if (sqlite.open) sqlite.pragma('wal_checkpoint(TRUNCATE)');
      await db.destroy();
    },
  };
}

/** Opens the database in `dataDir`, creating the directory (mode 0700: it holds credential hashes) if needed. */
export function openDataDir(dataDir: string): Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return openDatabase(join(dataDir, DATABASE_FILE));
}
