import type { components } from '../generated/types.js';
import type { Scope } from '../http/access.js';
import type { ApiTokenRow } from './repository.js';

export type ApiToken = components['schemas']['ApiToken'];
export type CreatedApiToken = components['schemas']['CreatedApiToken'];
export type ApiTokenSummary = components['schemas']['ApiTokenSummary'];

/** Scopes are stored as the JSON array written at creation. */
export function parseScopes(json: string): Scope[] {
  return JSON.parse(json) as Scope[];
}

export function toApiToken(row: ApiTokenRow): ApiToken {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    prefix: row.prefix,
    scopes: parseScopes(row.scopes),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

export function toApiTokenSummary(row: ApiTokenRow): ApiTokenSummary {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    scopes: parseScopes(row.scopes),
    expiresAt: row.expires_at,
  };
}
