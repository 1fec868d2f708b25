import BetterSqlite3 from 'better-sqlite3';
import { Migrator, sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, openPostgres, withStatementCache, type Database } from '../../src/db/database.js';
import { ulid } from '../../src/db/ids.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import * as m0001 from '../../src/db/migrations/0001_initial.js';
import * as m0002 from '../../src/db/migrations/0002_devices.js';
import * as m0003 from '../../src/db/migrations/0003_apps.js';
import * as m0004 from '../../src/db/migrations/0004_spent_refresh_tokens.js';
import * as m0005 from '../../src/db/migrations/0005_login_failures.js';
import { precompiled } from '../../src/db/precompiled.js';
import { createTestSchema } from '../helpers/postgres.js';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function decode(base32: string): bigint {
  return [...base32].reduce((n, c) => n * 32n + BigInt(CROCKFORD.indexOf(c)), 0n);
}

describe('ulid', () => {
  it('encodes the time in the first 10 characters and 80 bits in the other 16', () => {
    const now = Date.UTC(2026, 10, 25, 1, 2, 3, 456);
    const id = ulid(now);
    expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(Number(decode(id.slice(0, 10)))).toBe(now);
    expect(decode(id.slice(10))).toBeLessThan(1n << 80n);
  });

  it('within one millisecond, increments the random part by one, so ids sort in creation order', () => {
    const now = Date.UTC(2030, 0, 1);
    const ids = Array.from({ length: 200 }, () => ulid(now));
    expect([...ids].sort()).toEqual(ids);
    for (let i = 1; i < ids.length; i++) {
      expect(decode(ids[i]!.slice(10)) - decode(ids[i - 1]!.slice(10))).toBe(1n);
    }
  });
});

describe('the statement cache', () => {
  it('prepares each SQL text once and drops the least recently used past its size', () => {
    const sqlite = new BetterSqlite3(':memory:');
    let prepared = 0;
    const prepare = sqlite.prepare.bind(sqlite);
    sqlite.prepare = ((sql: string) => {
      prepared++;
      return prepare(sql);
    }) as typeof sqlite.prepare;
    const cache = withStatementCache(sqlite, 2);
    const a = cache.prepare('select 1');
    expect(cache.prepare('select 1')).toBe(a);
    cache.prepare('select 2');
    cache.prepare('select 1');
    cache.prepare('select 3');
    expect(prepared).toBe(3);
    expect(cache.prepare('select 1')).toBe(a);
    cache.prepare('select 2');
    expect(prepared).toBe(4);
    sqlite.close();
  });
});

describe('precompiled queries', () => {
  let database: Database;

  beforeEach(async () => {
    database = openDatabase(':memory:');
    await migrateToLatest(database.db);
    const at = '2026-11-25T00:00:00.000Z';
    for (const [id, username, role] of [
      ['usr_1', 'ann', 'admin'],
      ['usr_2', 'bob', 'member'],
    ] as const) {
      await database.db
        .insertInto('users')
        .values({ id, username, display_name: username, role, disabled: 0, password_hash: 'x', created_at: at, updated_at: at })
        .execute();
    }
  });
  afterEach(async () => {
    await database.close();
  });

  it('runs with each call’s own arguments, in any parameter position', async () => {
    const byRoleAndName = precompiled((db: Database['db'], username: string, role: 'admin' | 'member') =>
      db.selectFrom('users').select(['id']).where('role', '=', role).where('username', '=', username),
    );
    expect(await byRoleAndName(database.db, 'bob', 'member')).toEqual([{ id: 'usr_2' }]);
    expect(await byRoleAndName(database.db, 'ann', 'admin')).toEqual([{ id: 'usr_1' }]);
    expect(await byRoleAndName(database.db, 'ann', 'member')).toEqual([]);
  });

  it('runs inside the caller’s transaction', async () => {
    const names = precompiled((db: Database['db'], id: string) => db.selectFrom('users').select(['username']).where('id', '=', id));
    await database.db.transaction().execute(async (trx) => {
      await trx.updateTable('users').set({ username: 'bobby' }).where('id', '=', 'usr_2').execute();
      expect(await names(trx, 'usr_2')).toEqual([{ username: 'bobby' }]);
    });
  });

  it('compiles once per engine, so one process runs it on SQLite and on PostgreSQL', async () => {
    const names = precompiled((db: Database['db'], id: string) => db.selectFrom('users').select(['username']).where('id', '=', id));
    expect(await names(database.db, 'usr_2')).toEqual([{ username: 'bob' }]);
    const target = await createTestSchema();
    const postgres = openPostgres(target.url);
    try {
      await migrateToLatest(postgres.db);
      expect(await names(postgres.db, 'usr_2')).toEqual([]);
      expect(await names(database.db, 'usr_1')).toEqual([{ username: 'ann' }]);
    } finally {
      await postgres.close();
      await target.drop();
    }
  });

  it('refuses a query that does not use an argument exactly once as a parameter', async () => {
    const twice = precompiled((db: Database['db'], name: string) =>
      db.selectFrom('users').select(['id']).where('username', '=', name).where('display_name', '=', name),
    );
    await expect(twice(database.db, 'ann')).rejects.toThrow(/argument 0 exactly once/);
  });
});

describe('migration 0006', () => {
  it('numbers the devices of existing install jobs in the order SQLite inserted them, not in id order', async () => {
    const database = openDatabase(':memory:');
    try {
      const { db } = database;
      const before = new Migrator({
        db,
        provider: {
          getMigrations: async () => ({
            '0001_initial': m0001,
            '0002_devices': m0002,
            '0003_apps': m0003,
            '0004_spent_refresh_tokens': m0004,
            '0005_login_failures': m0005,
          }),
        },
      });
      expect((await before.migrateToLatest()).error).toBeUndefined();
      const at = '2026-11-25T00:00:00.000Z';
      await sql`insert into users (id, username, display_name, role, disabled, password_hash, created_at, updated_at)
        values ('usr_1', 'ann', 'ann', 'admin', 0, 'x', ${at}, ${at})`.execute(db);
      for (const job of ['ijb_1', 'ijb_2']) {
        await sql`insert into install_jobs (id, app_id, user_id, status, options, created_at)
          values (${job}, 'app_1', 'usr_1', 'pending', '{}', ${at})`.execute(db);
      }
      for (const [job, device] of [['ijb_1', 'dev_c'], ['ijb_2', 'dev_b'], ['ijb_1', 'dev_a'], ['ijb_1', 'dev_b']]) {
        await sql`insert into install_job_devices (job_id, device_id, serial, status)
          values (${job}, ${device}, 'serial', 'pending')`.execute(db);
      }

      expect((await migrateToLatest(db)).applied).toEqual(['0006_install_job_device_positions', '0007_work_owners', '0008_billing', '0009_usage_report_index', '0010_notifications']);
      const rows = await db
        .selectFrom('install_job_devices')
        .select(['device_id', 'position'])
        .where('job_id', '=', 'ijb_1')
        .execute();
      const position = Object.fromEntries(rows.map((row) => [row.device_id, row.position]));
      expect(position.dev_c).toBeLessThan(position.dev_a!);
      expect(position.dev_a).toBeLessThan(position.dev_b!);
    } finally {
      await database.close();
    }
  });
});
