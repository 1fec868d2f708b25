import type { Kysely } from 'kysely';
import type { DB } from '../../src/db/schema.js';
import { scopesOfRole, type Role } from '../../src/http/access.js';
import type { Principal } from '../../src/http/handler.js';

/** Inserts the user `usr_<username>` directly (no password to log in with) and returns it as a session principal. */
export async function insertUser(db: Kysely<DB>, username: string, role: Role, at: string): Promise<Principal> {
  const id = `usr_${username}`;
  await db
    .insertInto('users')
    .values({
      id,
      username,
      display_name: username,
      role,
      disabled: 0,
      password_hash: 'x',
      created_at: at,
      updated_at: at,
    })
    .execute();
  return { userId: id, username, role, scopes: scopesOfRole(role), method: 'session' };
}
