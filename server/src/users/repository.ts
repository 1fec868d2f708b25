import { sql, type Insertable, type Kysely, type Selectable, type SqlBool, type Updateable } from 'kysely';
import { isUniqueViolation } from '../db/dialect.js';
import type { DB, UsersTable } from '../db/schema.js';
import { precompiled } from '../db/precompiled.js';
import type { Role } from '../http/access.js';
import { likeLiteral } from '../pagination.js';

export type UserRow = Selectable<UsersTable>;

const userById = precompiled((db: Kysely<DB>, id: string) => db.selectFrom('users').selectAll().where('id', '=', id));

/** Precompiled: every `getMe` reads the caller's row. */
export async function findUserById(db: Kysely<DB>, id: string): Promise<UserRow | undefined> {
  return (await userById(db, id))[0];
}

export async function findUserByUsername(db: Kysely<DB>, username: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
}

/** Inserts a user; resolves `false` when the username is taken. */
export async function insertUser(db: Kysely<DB>, user: Insertable<UsersTable>): Promise<boolean> {
  try {
    await db.insertInto('users').values(user).execute();
    return true;
  } catch (error) {
    if (isUniqueViolation(error)) return false;
    throw error;
  }
}

export async function updateUserRow(db: Kysely<DB>, id: string, changes: Updateable<UsersTable>): Promise<void> {
  await db.updateTable('users').set(changes).where('id', '=', id).execute();
}

/** Deletes a user; their sessions and API tokens go with them (foreign keys cascade). */
export async function deleteUserRow(db: Kysely<DB>, id: string): Promise<void> {
  await db.deleteFrom('users').where('id', '=', id).execute();
}

export async function countUsers(db: Kysely<DB>): Promise<number> {
  const { count } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  return Number(count);
}

export async function countEnabledAdmins(db: Kysely<DB>): Promise<number> {
  const { count } = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('role', '=', 'admin')
    .where('disabled', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(count);
}

export interface UserQuery {
  role: Role | undefined;
  disabled: boolean | undefined;
  /** Case-insensitive substring of the username or display name. */
  text: string | undefined;
  afterId: string | undefined;
  limit: number;
}

/** Users in id order, which is creation order. */
export async function queryUsers(db: Kysely<DB>, query: UserQuery): Promise<UserRow[]> {
  let select = db.selectFrom('users').selectAll();
  if (query.role !== undefined) select = select.where('role', '=', query.role);
  if (query.disabled !== undefined) select = select.where('disabled', '=', query.disabled ? 1 : 0);
  if (query.text !== undefined) {
    const pattern = `%${likeLiteral(query.text.toLowerCase())}%`;
    select = select.where((eb) =>
      eb.or([
        sql<SqlBool>`lower(${sql.ref('username')}) like ${pattern} escape '\\'`,
        sql<SqlBool>`lower(${sql.ref('display_name')}) like ${pattern} escape '\\'`,
      ]),
    );
  }
  if (query.afterId !== undefined) select = select.where('id', '>', query.afterId);
  return select.orderBy('id', 'asc').limit(query.limit).execute();
}
