import { closeSync, existsSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DATABASE_FILE } from './database.js';

export interface BackupOutcome {
  source: string;
  pages: number;
}

/**
 * Copies the database of `dataDir` to `destination` with SQLite's online backup, which is consistent and safe
 * while a server is using the database. Refuses to replace an existing file unless `overwrite`. The copy is mode
 * 0600.
 */
export async function backupDatabase(dataDir: string, destination: string, overwrite: boolean): Promise<BackupOutcome> {
  const source = join(dataDir, DATABASE_FILE);
  if (!existsSync(source)) throw new Error(`No database at ${source}.`);
  if (existsSync(destination)) {
    if (!overwrite) throw new Error(`${destination} exists; pass --force to replace it.`);
    rmSync(destination);
  }
  // A copy holds what the database holds (credential hashes): readable by its owner only.
  closeSync(openSync(destination, 'wx', 0o600));
  const sqlite = new BetterSqlite3(source, { fileMustExist: true });
  try {
    sqlite.pragma('busy_timeout = 5000');
    const { totalPages } = await sqlite.backup(destination);
    return { source, pages: totalPages };
  } finally {
    sqlite.close();
  }
}
