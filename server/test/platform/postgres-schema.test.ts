import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, openPostgres, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { createTestDatabase, createTestSchema, type TestDatabase } from '../helpers/postgres.js';

/** A column as both engines can describe it: its type family, not the engine's spelling of the type. */
interface Column {
  name: string;
  type: string;
  nullable: boolean;
  default: string | null;
}

interface Table {
  columns: Column[];
  primaryKey: string[];
  /** Every index but the primary key's, named by what it does: `unique? (columns) where …`. */
  indexes: string[];
  /** `(columns) -> table(columns) on delete …`. */
  foreignKeys: string[];
}

type Schema = Record<string, Table>;

function family(type: string): string {
  const t = type.toLowerCase();
  if (t.includes('int')) return 'integer';
  if (t === 'text' || t.startsWith('character') || t.startsWith('varchar')) return 'text';
  return t;
}

/**
 * `'{}'::text` → `'{}'`; `(released_at IS NULL)` → `released_at is null`; `"is_default" = 1` (SQLite keeps the
 * statement's quotes) → `is_default = 1`.
 */
function normalised(text: string | null): string | null {
  if (text === null) return null;
  return text
    .replace(/::[a-z ]+/gi, '')
    .replace(/[()"]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
}

function index(unique: boolean, columns: string[], where: string | null): string {
  return `${unique ? 'unique ' : ''}(${columns.join(', ')})${where ? ` where ${normalised(where)}` : ''}`;
}

/** PostgreSQL's `confdeltype` letters; SQLite spells the actions out. */
const ACTIONS: Record<string, string> = {
  c: 'cascade',
  a: 'no action',
  r: 'restrict',
  n: 'set null',
  d: 'set default',
};

function foreignKey(from: string[], table: string, to: string[], action: string): string {
  return `(${from.join(', ')}) -> ${table}(${to.join(', ')}) on delete ${ACTIONS[action] ?? action.toLowerCase()}`;
}

/** PostgreSQL: the names of the columns numbered in the int2vector `keys` of the relation `relation`, in order. */
function columnNames(keys: string, relation: string) {
  return sql`array(select a.attname::text from unnest(${sql.raw(keys)}) with ordinality k(attnum, n)
                   join pg_attribute a on a.attrelid = ${sql.raw(relation)} and a.attnum = k.attnum order by k.n)`;
}

async function rows<T>(db: Kysely<any>, query: ReturnType<typeof sql>): Promise<T[]> {
  return (await query.execute(db)).rows as T[];
}

async function sqliteSchema(db: Kysely<any>): Promise<Schema> {
  const schema: Schema = {};
  const tables = await rows<{ name: string }>(
    db,
    sql`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%'`,
  );
  for (const { name } of tables) {
    const info = await rows<{ name: string; type: string; notnull: number; pk: number; dflt_value: string | null }>(
      db,
      sql`select * from pragma_table_info(${name})`,
    );
    const indexList = await rows<{ name: string; unique: number; origin: string; partial: number }>(
      db,
      sql`select * from pragma_index_list(${name})`,
    );
    const indexes: string[] = [];
    for (const entry of indexList.filter((i) => i.origin !== 'pk')) {
      const columns = await rows<{ name: string; seqno: number }>(
        db,
        sql`select * from pragma_index_info(${entry.name})`,
      );
      const [definition] = await rows<{ sql: string | null }>(
        db,
        sql`select sql from sqlite_master where type = 'index' and name = ${entry.name}`,
      );
      const where = entry.partial ? /\swhere\s(.*)$/is.exec(definition?.sql ?? '')?.[1] ?? null : null;
      indexes.push(index(entry.unique === 1, columns.sort((a, b) => a.seqno - b.seqno).map((c) => c.name), where));
    }
    const keys = await rows<{ id: number; seq: number; table: string; from: string; to: string; on_delete: string }>(
      db,
      sql`select * from pragma_foreign_key_list(${name})`,
    );
    const foreignKeys = [...new Set(keys.map((k) => k.id))].map((id) => {
      const parts = keys.filter((k) => k.id === id).sort((a, b) => a.seq - b.seq);
      return foreignKey(
        parts.map((k) => k.from),
        parts[0]!.table,
        parts.map((k) => k.to),
        parts[0]!.on_delete,
      );
    });
    schema[name] = {
      // SQLite lets a non-integer primary key column hold NULL unless declared NOT NULL; the schema never means to.
      columns: info.map((c) => ({
        name: c.name,
        type: family(c.type),
        nullable: c.notnull === 0 && c.pk === 0,
        default: normalised(c.dflt_value),
      })),
      primaryKey: info
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name),
      indexes: indexes.sort(),
      foreignKeys: foreignKeys.sort(),
    };
  }
  return schema;
}

async function postgresSchema(db: Kysely<any>): Promise<Schema> {
  const schema: Schema = {};
  const tables = await rows<{ name: string }>(
    db,
    sql`select table_name as name from information_schema.tables
        where table_schema = 'public' and table_name not like 'kysely_%'`,
  );
  for (const { name } of tables) {
    const columns = await rows<{ name: string; type: string; nullable: string; default: string | null }>(
      db,
      sql`select column_name as name, data_type as type, is_nullable as nullable, column_default as default
          from information_schema.columns where table_schema = 'public' and table_name = ${name}
          order by ordinal_position`,
    );
    const indexRows = await rows<{ primary: boolean; unique: boolean; columns: string[]; where: string | null }>(
      db,
      sql`select i.indisprimary as primary, i.indisunique as unique,
                 ${columnNames('i.indkey', 'i.indrelid')} as columns, pg_get_expr(i.indpred, i.indrelid) as where
          from pg_index i where i.indrelid = ${name}::regclass`,
    );
    const keys = await rows<{ from: string[]; table: string; to: string[]; action: string }>(
      db,
      sql`select ${columnNames('c.conkey', 'c.conrelid')} as from, c.confrelid::regclass::text as table,
                 ${columnNames('c.confkey', 'c.confrelid')} as to, c.confdeltype as action
          from pg_constraint c where c.contype = 'f' and c.conrelid = ${name}::regclass`,
    );
    schema[name] = {
      columns: columns.map((c) => ({
        name: c.name,
        type: family(c.type),
        nullable: c.nullable === 'YES',
        default: normalised(c.default),
      })),
      primaryKey: indexRows.find((i) => i.primary)?.columns ?? [],
      indexes: indexRows
        .filter((i) => !i.primary)
        .map((i) => index(i.unique, i.columns, i.where))
        .sort(),
      foreignKeys: keys.map((k) => foreignKey(k.from, k.table, k.to, k.action)).sort(),
    };
  }
  return schema;
}

function sortedByTable(schema: Schema): Schema {
  return Object.fromEntries(Object.entries(schema).sort(([a], [b]) => a.localeCompare(b)));
}

describe('the migrations on both engines', () => {
  let target: TestDatabase;
  let sqlite: Database;
  let postgres: Database;

  beforeAll(async () => {
    target = await createTestDatabase();
    sqlite = openDatabase(':memory:');
    postgres = openPostgres(target.url);
  });

  afterAll(async () => {
    await sqlite?.close();
    await postgres?.close();
    await target?.drop();
  });

  it('apply the same migrations and produce the same tables, columns, keys and indexes', async () => {
    const applied = (await migrateToLatest(sqlite.db)).applied;
    expect(applied.length).toBeGreaterThan(0);
    expect((await migrateToLatest(postgres.db)).applied).toEqual(applied);

    const onSqlite = sortedByTable(await sqliteSchema(sqlite.db));
    const onPostgres = sortedByTable(await postgresSchema(postgres.db));
    expect(Object.keys(onSqlite)).toContain('events');
    expect(onSqlite.lease_devices!.indexes).toContain('unique (device_id) where released_at is null');
    // The one intended difference: an event's commit order is its transaction's id on PostgreSQL, and 0 on SQLite,
    // whose one writer commits in log order.
    const commitOrder = (schema: Schema) => schema.events!.columns.find((column) => column.name === 'tx')!;
    expect(commitOrder(onSqlite).default).toBe('0');
    expect(commitOrder(onPostgres).default).toBe('pg_current_xact_id');
    commitOrder(onPostgres).default = '0';
    expect(onPostgres).toEqual(onSqlite);
  });

  it('migrate a PostgreSQL schema beside another schema of the same database that is already migrated', async () => {
    const [first, second] = [await createTestSchema(), await createTestSchema()];
    const databases = [openPostgres(first.url), openPostgres(second.url)];
    try {
      const applied = (await migrateToLatest(databases[0]!.db)).applied;
      expect((await migrateToLatest(databases[1]!.db)).applied).toEqual(applied);
      expect(await databases[1]!.db.selectFrom('users').selectAll().execute()).toEqual([]);
    } finally {
      for (const database of databases) await database.close();
      await Promise.all([first.drop(), second.drop()]);
    }
  });

  it('keep 64-bit integers as numbers on PostgreSQL, and the event log position counting up', async () => {
    await migrateToLatest(postgres.db);
    const base = {
      type: 'test.event',
      occurred_at: '2026-01-01T00:00:00.000Z',
      actor_type: 'system' as const,
      actor_id: null,
      actor_username: null,
      subject_type: null,
      subject_id: null,
      data: '{}',
      request_id: null,
    };
    const insert = (id: string) =>
      postgres.db.insertInto('events').values({ ...base, id }).returning('seq').executeTakeFirstOrThrow();
    const first = await insert('evt_1');
    const second = await insert('evt_2');
    expect(typeof first.seq).toBe('number');
    expect(second.seq).toBe(first.seq + 1);
    const { count } = await postgres.db
      .selectFrom('events')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .executeTakeFirstOrThrow();
    expect(count).toBe(2);
  });
});
