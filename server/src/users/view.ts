import type { components } from '../generated/types.js';
import type { UserRow } from './repository.js';

export type User = components['schemas']['User'];
export type UserSummary = components['schemas']['UserSummary'];

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    role: row.role,
    disabled: row.disabled === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toUserSummary(row: Pick<UserRow, 'id' | 'username' | 'role'>): UserSummary {
  return { id: row.id, username: row.username, role: row.role };
}
