import pg from 'pg';
import {
  PostgresAdapter,
  PostgresDialect,
  sql,
  type ColumnDataType,
  type ColumnDefinitionBuilder,
  type Kysely,
  type RawBuilder,
  type SqlBool,
} from 'kysely';

/**
 * Every difference between the two engines the server runs on lives in this module: how a connection is made and
 * what a failed one means, how an int8 comes back, and the few column definitions whose SQL differs. Migrations and
 * repositories use these helpers and otherwise write SQL both engines accept.
 */
export type Engine = 'sqlite' | 'postgres';

/** The engine a Kysely instance talks to. */
export function engineOf(db: Kysely<any>): Engine {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * Whether the engine can aggregate by hashing. SQLite cannot: a GROUP BY that no index delivers in order sorts every
 * row it groups, so grouping along an index more finely than asked, and adding the finer rows up, can be cheaper.
 */
export function aggregatesByHashing(db: Kysely<any>): boolean {
  return engineOf(db) === 'postgres';
}

/** A `postgres://` or `postgresql://` URL. */
export function isPostgresUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** The URL with its password replaced by `***`, fit for messages and logs. */
export function maskedUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = '***';
    return url.href;
  } catch {
    return '(not a URL)';
  }
}

/** PostgreSQL's int8 type: counts and 64-bit columns come back as numbers, as SQLite returns them. */
const INT8_OID = 20;

/** How long a new connection may take before the attempt fails (an unreachable host fails, it does not hang). */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * A pool of connections to the PostgreSQL database at `url`; nothing connects until the first query. A connection
 * that fails while idle in the pool (PostgreSQL ended it, or the network dropped it) is discarded, replaced on a
 * later checkout, and its error handed to `onIdleError`.
 */
export function postgresDialect(url: string, onIdleError: (error: Error) => void): PostgresDialect {
  const pool = new pg.Pool({
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as never,
    },
  });
  pool.on('error', onIdleError);
  // A connection that breaks while checked out but between queries (a transaction's) is reported by the client
  // itself, where nothing listens once the pool has handed it out: its next query fails instead (503), and the pool
  // drops it when it comes back.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return new PostgresDialect({ pool });
}

/** The database could not be reached or refused the connection. The message is one line with the URL masked. */
export class DatabaseConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseConnectionError';
  }
}

/** What a failed first connection to `url` means, in one line naming the setting (or option) that gave the URL. */
export function connectionError(
  url: string,
  error: unknown,
  setting = 'CLOUDPHONE_DATABASE_URL',
): DatabaseConnectionError {
  const { code, message } = error as { code?: string; message?: string };
  const reasons: Record<string, string> = {
    '28P01': 'the password was refused',
    '28000': 'the server refused the user',
    '3D000': 'the database does not exist',
    ECONNREFUSED: 'nothing answers at that address',
    ENOTFOUND: 'the host name is unknown',
    ETIMEDOUT: 'the connection timed out',
  };
  const reason = (code !== undefined ? reasons[code] : undefined) ?? (message ?? String(error)).split('\n')[0];
  return new DatabaseConnectionError(`${setting} ${maskedUrl(url)}: cannot connect: ${reason}`);
}

/** Socket errors of a connection to the database that the network or the database's absence causes. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * PostgreSQL's SQLSTATEs for a connection it ended or refused: admin_shutdown (57P01), crash_shutdown (57P02),
 * cannot_connect_now (57P03, starting up or shutting down), too_many_connections (53300); class 08 (connection
 * exceptions) is matched as a class.
 */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** What the `pg` driver and its pool say when a connection breaks, fails to open in time, or is used after that. */
const BROKEN_CONNECTION = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable)/;

/**
 * The database cannot be reached now, rather than the statement being wrong: a connection refused, reset, ended by
 * PostgreSQL or not opened in time, or SQLite's database locked by another process past the busy timeout
 * (`SQLITE_BUSY`). Requests that meet it may succeed later unchanged. Looks through `cause` chains too.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    const { code } = current as { code?: unknown };
    if (typeof code === 'string') {
      if (UNREACHABLE_CODES.has(code) || UNAVAILABLE_STATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
      if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_')) return true;
    }
    if (BROKEN_CONNECTION.test(current.message)) return true;
  }
  return false;
}

/**
 * A statement broke a unique index: SQLite's `SQLITE_CONSTRAINT_UNIQUE`, PostgreSQL's `unique_violation` (23505,
 * which a primary key's index raises too).
 */
export function isUniqueViolation(error: unknown): boolean {
  const { code } = (error ?? {}) as { code?: unknown };
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}

/** The PostgreSQL tools to copy a database with, for the command that copies a SQLite one. */
export const POSTGRES_BACKUP_ADVICE =
  'the database is PostgreSQL (CLOUDPHONE_DATABASE_URL): back it up with pg_dump, e.g. pg_dump --format=custom';

/**
 * The event log's position column: SQLite's `integer primary key autoincrement` (the rowid, never reused) and
 * PostgreSQL's 64-bit identity column. Both accept an explicit value, so a copy keeps the positions.
 */
export function sequenceColumn(
  db: Kysely<any>,
): [ColumnDataType, (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder] {
  return engineOf(db) === 'postgres'
    ? ['bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity()]
    : ['integer', (c) => c.primaryKey().autoIncrement()];
}

/** A 64-bit integer column: `integer` is already 64-bit in SQLite, 32-bit in PostgreSQL. */
export function bigintType(db: Kysely<any>): ColumnDataType {
  return engineOf(db) === 'postgres' ? 'bigint' : 'integer';
}

/**
 * The text at `key` of the JSON object in the TEXT column `column` (null when absent or JSON null): SQLite's
 * `json_extract`, PostgreSQL's `->>` on the column cast to jsonb. The key is bound as a parameter on both engines;
 * it must hold no double quote (SQLite's JSON path quotes it).
 */
export function jsonText(db: Kysely<any>, column: string, key: string): RawBuilder<string | null> {
  return engineOf(db) === 'postgres'
    ? sql<string | null>`(${sql.ref(column)}::jsonb ->> ${key}::text)`
    : sql<string | null>`json_extract(${sql.ref(column)}, ${`$."${key}"`})`;
}

/** Whether the JSON array of strings in the TEXT column `column` holds `value`. */
export function jsonArrayHas(db: Kysely<any>, column: string, value: string): RawBuilder<SqlBool> {
  return engineOf(db) === 'postgres'
    ? sql<SqlBool>`(${sql.ref(column)}::jsonb @> jsonb_build_array(${value}::text))`
    : sql<SqlBool>`exists (select 1 from json_each(${sql.ref(column)}) where json_each.value = ${value})`;
}

/**
 * Numbers the rows of `table` in the order they were inserted, into its integer column `column`, for a migration
 * that adds an explicit order: SQLite's rowid. PostgreSQL keeps no insertion order, so the column keeps its
 * default there.
 */
export async function numberRowsByInsertion(db: Kysely<any>, table: string, column: string): Promise<void> {
  if (engineOf(db) === 'sqlite') await sql`update ${sql.table(table)} set ${sql.ref(column)} = rowid`.execute(db);
}

/**
 * Holds the lock named `name` until the transaction `trx` ends, waiting while another transaction holds it:
 * PostgreSQL's transaction-scoped advisory lock, which serialises the work it guards across connections and
 * server processes. A no-op on SQLite, whose one connection already runs one transaction at a time.
 */
export async function lockForTransaction(trx: Kysely<any>, name: string): Promise<void> {
  if (engineOf(trx) === 'postgres') await sql`select pg_advisory_xact_lock(hashtextextended(${name}, 0))`.execute(trx);
}

/**
 * Runs `work` on one connection holding a session-level lock named `name` (and the current schema) on PostgreSQL,
 * so that processes sharing the database take turns; on SQLite, simply runs it.
 */
export async function withSessionLock<T>(db: Kysely<any>, name: string, work: (db: Kysely<any>) => Promise<T>): Promise<T> {
  if (engineOf(db) === 'sqlite') return work(db);
  return db.connection().execute(async (connection) => {
    const key = sql`hashtextextended(${name} || ' ' || current_schema(), 0)`;
    await sql`select pg_advisory_lock(${key})`.execute(connection);
    try {
      return await work(connection);
    } finally {
      await sql`select pg_advisory_unlock(${key})`.execute(connection);
    }
  });
}

/**
 * The schema the migrations' own bookkeeping tables belong in: PostgreSQL's current schema, since Kysely's migrator
 * otherwise takes those tables in any schema of the database for its own; SQLite has one schema.
 */
export async function migrationTableSchema(db: Kysely<any>): Promise<string | undefined> {
  if (engineOf(db) === 'sqlite') return undefined;
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  return rows[0]?.schema ?? undefined;
}

/**
 * Whether the event row's transaction (its `tx` column) has ended for every reader: on PostgreSQL, below the oldest
 * transaction still running (`pg_snapshot_xmin`), so that no event can still commit at an earlier position in
 * commit order; on SQLite always, since its one writer commits in log order and `tx` is 0.
 */
export function eventCommitSettled(db: Kysely<any>): RawBuilder<SqlBool> {
  return engineOf(db) === 'postgres'
    ? sql<SqlBool>`${sql.ref('tx')} < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`
    : sql<SqlBool>`1 = 1`;
}
