import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { DATABASE_FILE, openPostgres } from './database.js';
import { isPostgresUrl, maskedUrl } from './dialect.js';
import { MIGRATION_NAMES, migrateToLatest } from './migrate.js';

/**
 * `cloudphone-server copy-data`: a SQLite install's whole database into an empty PostgreSQL database, every row of
 * every table with the values as stored (ids, event log positions, ordering columns, timestamps as the same text),
 * in one PostgreSQL transaction. The tables come from the source's own schema, so a table a later migration adds is
 * copied without a change here; only the tables in `NOT_COPIED` and SQLite's own (`sqlite_*`) are left out.
 */

/** The migrator's bookkeeping: the target's own migration run fills it. */
export const NOT_COPIED: readonly string[] = ['kysely_migration', 'kysely_migration_lock'];

/** PostgreSQL takes at most 65535 bind parameters in one statement. */
const MAX_PARAMETERS = 65_535;
/** Rows per insert statement, fewer for tables with many columns. */
const BATCH_ROWS = 1_000;

/** The copy cannot or must not run: one line for the admin, naming the option at fault; nothing was written. */
export class CopyRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CopyRefusedError';
  }
}

export interface TablePlan {
  name: string;
  columns: string[];
  /** The order rows are read in: SQLite's rowid (insertion order), or the primary key of a table without one. */
  orderBy: string[];
}

export interface CopyOutcome {
  /** The SQLite file read. */
  source: string;
  /** Rows copied per table, in the order they were copied. */
  tables: { name: string; rows: number }[];
  milliseconds: number;
}

/** Whether `copy-data` copies the table `name`. */
function isCopied(name: string): boolean {
  return !name.startsWith('sqlite_') && !NOT_COPIED.includes(name);
}

/** The SQLite file `from` names: the file itself, or the database file of the data directory it names. */
function sourceFile(from: string): string {
  const path = resolve(from);
  if (!existsSync(path)) throw new CopyRefusedError(`--from ${path}: no such file or directory`);
  if (!statSync(path).isDirectory()) return path;
  const file = join(path, DATABASE_FILE);
  if (!existsSync(file)) throw new CopyRefusedError(`--from ${path}: the directory holds no ${DATABASE_FILE}`);
  return file;
}

/**
 * The tables to copy, each after the tables its foreign keys reference (ties in name order), with their columns as
 * the source declares them.
 */
export function tablesToCopy(sqlite: BetterSqlite3.Database): TablePlan[] {
  const tables = sqlite
    .prepare<[], { name: string; wr: number }>(
      "select name, wr from pragma_table_list where schema = 'main' and type = 'table' order by name",
    )
    .all()
    .filter((t) => isCopied(t.name));
  const references = new Map(
    tables.map((t) => [
      t.name,
      new Set(
        sqlite
          .prepare<[string], { table: string }>('select "table" from pragma_foreign_key_list(?)')
          .all(t.name)
          .map((k) => k.table)
          .filter((name) => name !== t.name),
      ),
    ]),
  );
  const ordered: TablePlan[] = [];
  const placed = new Set<string>();
  while (ordered.length < tables.length) {
    const next = tables.find((t) => !placed.has(t.name) && [...references.get(t.name)!].every((r) => placed.has(r)));
    if (next === undefined) throw new Error('the foreign keys between the tables form a cycle');
    const info = sqlite
      .prepare<[string], { name: string; pk: number }>('select name, pk from pragma_table_info(?)')
      .all(next.name);
    const primaryKey = info.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
    ordered.push({
      name: next.name,
      columns: info.map((c) => c.name),
      orderBy: next.wr === 1 ? primaryKey.map((c) => c.name) : ['rowid'],
    });
    placed.add(next.name);
  }
  return ordered;
}

/** Opens the SQLite file read-only and checks that it is a cloudphone database at this server's latest schema. */
function openSource(file: string): BetterSqlite3.Database {
  const sqlite = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  let applied: string[];
  try {
    applied = sqlite
      .prepare<[], { name: string }>('select name from kysely_migration order by name')
      .all()
      .map((m) => m.name);
  } catch (error) {
    sqlite.close();
    const { code } = error as { code?: string };
    if (code === 'SQLITE_NOTADB') throw new CopyRefusedError(`--from ${file}: not a SQLite database`);
    if (code === 'SQLITE_ERROR') throw new CopyRefusedError(`--from ${file}: not a cloudphone database`);
    throw error;
  }
  const unknown = applied.filter((name) => !MIGRATION_NAMES.includes(name));
  const missing = MIGRATION_NAMES.filter((name) => !applied.includes(name));
  if (unknown.length > 0) {
    sqlite.close();
    throw new CopyRefusedError(
      `--from ${file}: written by a newer cloudphone-server (migration ${unknown[0]}); copy with that version`,
    );
  }
  if (missing.length > 0) {
    sqlite.close();
    throw new CopyRefusedError(
      `--from ${file}: the database lacks migration ${missing[0]}; ` +
        `bring it up to date first with cloudphone-server migrate --data-dir <its data directory>`,
    );
  }
  return sqlite;
}

/** Inserts the source rows of `table` into the target in batches; the number of rows. */
async function copyTable(sqlite: BetterSqlite3.Database, trx: Kysely<any>, table: TablePlan): Promise<number> {
  const batchRows = Math.max(1, Math.min(BATCH_ROWS, Math.floor(MAX_PARAMETERS / table.columns.length)));
  const columns = table.columns.map((c) => `"${c}"`).join(', ');
  const order = table.orderBy.map((c) => `"${c}"`).join(', ');
  const rows = sqlite.prepare(`select ${columns} from "${table.name}" order by ${order}`).iterate();
  let batch: Record<string, unknown>[] = [];
  let count = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await trx.insertInto(table.name).values(batch).execute();
    count += batch.length;
    batch = [];
  };
  for (const row of rows) {
    batch.push(row as Record<string, unknown>);
    if (batch.length === batchRows) await flush();
  }
  await flush();
  return count;
}

/**
 * Continues each identity column (the event log's `seq`) after the largest value copied, so the next row the
 * server inserts gets a higher one.
 */
async function advanceIdentities(trx: Kysely<any>, tables: TablePlan[]): Promise<void> {
  const { rows } = await sql<{ table: string; column: string }>`
    select table_name as table, column_name as column from information_schema.columns
    where table_schema = current_schema() and is_identity = 'YES'`.execute(trx);
  for (const { table, column } of rows.filter((r) => tables.some((t) => t.name === r.table))) {
    await sql`select setval(pg_get_serial_sequence(quote_ident(${table}), ${column}),
                            coalesce(max(${sql.ref(column)}), 0) + 1, false)
              from ${sql.table(table)}`.execute(trx);
  }
}

/**
 * Copies the SQLite database `from` (a file, or a data directory) into the PostgreSQL database at `to`: migrates
 * the target to the latest schema, then, in one transaction that first locks every table against writers, refuses
 * a target holding any row and copies every table. The source is only read, in one read transaction (a consistent
 * snapshot), and must already be at the latest schema.
 */
export async function copyData(from: string, to: string): Promise<CopyOutcome> {
  const started = performance.now();
  if (!isPostgresUrl(to)) {
    throw new CopyRefusedError(
      `--to: expected a PostgreSQL URL such as postgres://user:password@host:5432/database, got "${maskedUrl(to)}"`,
    );
  }
  const file = sourceFile(from);
  const sqlite = openSource(file);
  const target = openPostgres(to, '--to');
  const db = target.db as Kysely<any>;
  try {
    await target.connect();
    await migrateToLatest(db);
    sqlite.exec('begin');
    const tables = tablesToCopy(sqlite);
    const copied = await db.transaction().execute(async (trx) => {
      await sql`lock table ${sql.join(tables.map((t) => sql.table(t.name)))} in exclusive mode`.execute(trx);
      for (const table of tables) {
        const row = await trx.selectFrom(table.name).select(sql`1`.as('found')).limit(1).executeTakeFirst();
        if (row !== undefined) {
          throw new CopyRefusedError(
            `--to ${maskedUrl(to)}: the database is not empty (${table.name} has rows); copy-data fills only an ` +
              'empty database',
          );
        }
      }
      const counts: { name: string; rows: number }[] = [];
      for (const table of tables) counts.push({ name: table.name, rows: await copyTable(sqlite, trx, table) });
      await advanceIdentities(trx, tables);
      return counts;
    });
    return { source: file, tables: copied, milliseconds: performance.now() - started };
  } finally {
    sqlite.close();
    await target.close();
  }
}
