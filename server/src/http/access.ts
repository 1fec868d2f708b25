export type Role = 'viewer' | 'member' | 'admin';
export type Scope = 'read' | 'write' | 'admin';

export interface Access {
  role: Role;
  scope: Scope;
}

const roleRank: Record<Role, number> = { viewer: 0, member: 1, admin: 2 };
const scopeRank: Record<Scope, number> = { read: 0, write: 1, admin: 2 };

export function roleAtLeast(role: Role, needed: Role): boolean {
  return roleRank[role] >= roleRank[needed];
}

/** A credential's scopes include those below each of them (`write` includes `read`). */
export function scopesAllow(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.some((s) => scopeRank[s] >= scopeRank[needed]);
}

/** The scopes a role may hold: what a login session carries and the ceiling for API tokens. */
export function scopesOfRole(role: Role): Scope[] {
  return (['read', 'write', 'admin'] as const).filter((s) => scopeRank[s] <= roleRank[role]);
}
