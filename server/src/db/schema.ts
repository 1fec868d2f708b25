import type { Generated } from 'kysely';

/**
 * Every table of the control plane. Timestamps are ISO 8601 UTC strings (they sort lexically), booleans are
 * 0/1 integers and JSON columns are TEXT, so the same schema maps onto PostgreSQL without change of meaning.
 */
export interface UsersTable {
  id: string;
  username: string;
  display_name: string;
  role: 'admin' | 'member' | 'viewer';
  disabled: number;
  password_hash: string;
  failed_logins: number;
  last_failed_login_at: string | null;
  locked_until: string | null;
  created_at: string;
  updated_at: string;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  access_token_hash: string;
  access_expires_at: string;
  refresh_token_hash: string;
  refresh_expires_at: string;
  created_at: string;
  last_refreshed_at: string | null;
  revoked_at: string | null;
  user_agent: string | null;
  ip: string | null;
}

export interface ApiTokensTable {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  token_hash: string;
  /** JSON array of scopes. */
  scopes: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface EventsTable {
  /** Log position: strictly increasing, the cursor of the event log. */
  seq: Generated<number>;
  id: string;
  type: string;
  occurred_at: string;
  actor_type: 'user' | 'system' | 'anonymous';
  actor_id: string | null;
  actor_username: string | null;
  subject_type: string | null;
  subject_id: string | null;
  /** JSON object. */
  data: string;
  request_id: string | null;
}

export interface IdempotencyKeysTable {
  user_id: string;
  key: string;
  operation_id: string;
  request_hash: string;
  /** null while the first request is still running. */
  status: number | null;
  /** JSON response body, or null for an empty body. */
  response_body: string | null;
  created_at: string;
  expires_at: string;
}

export interface DB {
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  events: EventsTable;
  idempotency_keys: IdempotencyKeysTable;
}
