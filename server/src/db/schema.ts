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
  created_at: string;
  updated_at: string;
  /** The user's plan; null for the default plan. */
  plan_id: string | null;
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

/** Recent failed logins under one throttle key: a (source address, username) pair or a source address. */
export interface LoginFailuresTable {
  key: string;
  failures: number;
  last_failed_at: string;
}

/** A refresh token a refresh replaced, until it would have expired. */
export interface SpentRefreshTokensTable {
  token_hash: string;
  session_id: string;
  spent_at: string;
  expires_at: string;
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
  /** The user the event concerns besides its actor and subject (a lease's holder, an app's owner), who may see it. */
  audience_id: string | null;
  /** Commit order: the writing transaction's id on PostgreSQL, 0 on SQLite (see notifications/feed.ts). */
  tx: Generated<number>;
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

export interface HostsTable {
  id: string;
  type: 'adb_server' | 'adb_device' | 'virtual';
  /** `host:port`; `in-process` for the virtual host. */
  address: string;
  name: string;
  /** `config`: declared by the server's configuration (re-created at boot); `api`: added by an admin. */
  origin: 'config' | 'api';
  draining: number;
  created_at: string;
  updated_at: string;
}

export interface DevicesTable {
  id: string;
  host_id: string;
  /** The serial the host knows the device by (adb's serial, or `host:port` for a direct connection). */
  serial: string;
  kind: 'physical' | 'emulator' | 'network' | 'virtual';
  state: 'online' | 'offline' | 'unauthorized';
  maintenance: number;
  /** 1 from a lease's release until the device's reset has finished. */
  resetting: number;
  /** The node running the reset while `resetting` is 1 (null for resets begun before nodes were recorded). */
  resetting_node: string | null;
  /** JSON object of admin-set labels. */
  labels: string;
  /** JSON `DeviceProperties`, read once per connection; null until the device was first online. */
  properties: string | null;
  /** JSON `Battery`; null when unknown. */
  battery: string | null;
  /** Copied out of `properties` for filtering. */
  sdk: number | null;
  model: string | null;
  /** JSON array of ABIs, copied out of `properties`. */
  abis: string;
  first_seen_at: string;
  last_seen_at: string;
  updated_at: string;
}

export interface LeasesTable {
  id: string;
  user_id: string;
  status: 'queued' | 'granted' | 'released' | 'expired' | 'cancelled' | 'timed_out';
  /** JSON `DeviceSelector`. */
  selector: string;
  count: number;
  ttl_seconds: number;
  note: string | null;
  created_at: string;
  /** While queued: when the wait gives up. */
  wait_until: string | null;
  granted_at: string | null;
  renewed_at: string | null;
  expires_at: string | null;
  ended_at: string | null;
  end_reason: string | null;
  /** The user who released it, when not its holder or the server. */
  ended_by: string | null;
  /** A free-text tag the lease's usage is charged to, besides its user. */
  project: string | null;
  /** The `expires_at` a `lease.expiring` warning was given for; a renewal re-arms the warning. */
  expiry_warned_for: string | null;
}

export interface LeaseDevicesTable {
  lease_id: string;
  device_id: string;
  granted_at: string;
  released_at: string | null;
  /** JSON array: the third-party packages on the device when it was granted. */
  baseline_packages: string | null;
  /** JSON `DeviceReset`; null until the reset after release has run. */
  reset: string | null;
  /** The device's billing class when it was granted (null on leases from before billing). */
  billing_class: string | null;
  /** Where the device time not yet in a usage record starts (null: at `granted_at`). */
  metered_from: string | null;
}

/** One APK's bytes (in the blob store, named by sha256) and what parsing them found. */
export interface AppBlobsTable {
  sha256: string;
  size: number;
  package_name: string;
  /** JSON `ApkMetadata`. */
  metadata: string;
  /** The icon's PNG in the blob store; null when the APK has none we can serve. */
  icon_sha256: string | null;
  created_at: string;
}

/** An uploader's app: a name for a blob, private to its owner unless shared. */
export interface AppsTable {
  id: string;
  sha256: string;
  owner_id: string;
  file_name: string | null;
  shared: number;
  created_at: string;
}

export interface InstallJobsTable {
  id: string;
  app_id: string;
  user_id: string;
  status: 'pending' | 'running' | 'succeeded' | 'failed';
  /** JSON `{ replace, downgrade, grantPermissions }`. */
  options: string;
  created_at: string;
  finished_at: string | null;
  /** The node running the job (null for jobs from before nodes were recorded). */
  node: string | null;
}

export interface InstallJobDevicesTable {
  job_id: string;
  device_id: string;
  serial: string;
  status: 'pending' | 'installing' | 'installed' | 'failed';
  /** Why it failed, as the device said it (`INSTALL_FAILED_OLDER_SDK: …`). */
  reason: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** The device's place in the job's request, from 0: the order the job lists its devices in. */
  position: number;
}

/** A plan: its prices per device-minute, included minutes and quotas. Money in the currency's minor units. */
export interface PlansTable {
  id: string;
  name: string;
  description: string | null;
  currency: string;
  monthly_fee: number;
  /** JSON object: billing class → price per device-minute. */
  prices: string;
  /** The price per device-minute of the classes `prices` does not name. */
  default_price: number;
  included_minutes: number;
  max_concurrent_devices: number | null;
  max_lease_ttl_seconds: number | null;
  minutes_per_period: number | null;
  is_default: number;
  created_at: string;
  updated_at: string;
}

/**
 * A piece of one leased device's time, within one day of the billing time zone, priced at the plan its user had
 * then. `[start_s, end_s)` in whole epoch seconds.
 */
export interface UsageRecordsTable {
  id: string;
  lease_id: string;
  device_id: string;
  user_id: string;
  project: string | null;
  billing_class: string;
  plan_id: string;
  currency: string;
  price_per_minute: number;
  started_at: string;
  ended_at: string;
  start_s: number;
  end_s: number;
  seconds: number;
  /** The part of `seconds` the plan's included minutes covered. */
  included_seconds: number;
  day: string;
  period: string;
  recorded_at: string;
}

export interface BudgetsTable {
  id: string;
  scope: 'user' | 'project';
  /** The user's id or the project. */
  target: string;
  currency: string;
  amount: number;
  /** JSON array of percents, ascending. */
  thresholds: string;
  created_at: string;
  updated_at: string;
}

export interface BudgetAlertsTable {
  budget_id: string;
  period: string;
  threshold: number;
  reached_at: string;
}

export interface InvoicesTable {
  id: string;
  /** Given at finalization, from a gap-free sequence. */
  number: number | null;
  user_id: string;
  username: string;
  period: string;
  period_start: string;
  period_end: string;
  status: 'draft' | 'finalized' | 'void';
  currency: string;
  plan_id: string;
  plan_name: string;
  /** JSON array of invoice lines. */
  lines: string;
  usage_seconds: number;
  total: number;
  created_at: string;
  finalized_at: string | null;
  voided_at: string | null;
  void_reason: string | null;
}

export interface BillingPeriodsTable {
  period: string;
  closed_at: string;
}

/** A notification in a user's inbox, derived from an event that concerns them. */
export interface NotificationsTable {
  id: string;
  user_id: string;
  kind: string;
  title: string;
  body: string;
  /** The API path of what it is about. */
  link: string | null;
  subject_type: string | null;
  subject_id: string | null;
  event_id: string | null;
  created_at: string;
  read_at: string | null;
}

/** A user's choice of channels for one kind of notification; no row means the kind's defaults. */
export interface NotificationPreferencesTable {
  user_id: string;
  kind: string;
  inbox: number;
  email: number;
}

export interface WebhookEndpointsTable {
  id: string;
  /** The owner. */
  user_id: string;
  /** `own`: the events its owner may see; `all`: every event (admins only). */
  scope: 'own' | 'all';
  url: string;
  description: string | null;
  /** JSON array of type patterns as given; empty for every event. */
  event_types: string;
  enabled: number;
  disabled_reason: 'manual' | 'gone' | 'failing' | null;
  /** The first failed attempt since the last delivered one. */
  failing_since: string | null;
  /** The signing secret, sealed (notifications/webhooks/secrets.ts). */
  secret: string;
  /** The secret before the last rotation, sealed, still signing until `previous_secret_expires_at`. */
  previous_secret: string | null;
  previous_secret_expires_at: string | null;
  secret_rotated_at: string | null;
  created_at: string;
  updated_at: string;
}

/** One pattern of an endpoint's event types, for matching in SQL: `prefix` is `family.` for `family.*`. */
export interface WebhookEndpointTypesTable {
  endpoint_id: string;
  pattern: string;
  prefix: string | null;
}

/** One event to one endpoint: queued in the event's transaction, delivered at least once. */
export interface WebhookDeliveriesTable {
  endpoint_id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: Generated<number>;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  /** 1 when a user asked for the next attempt (redelivery, recovery), which is then recorded as `manual`. */
  manual: Generated<number>;
}

export interface WebhookAttemptsTable {
  id: string;
  endpoint_id: string;
  event_id: string;
  number: number;
  trigger: 'scheduled' | 'manual';
  started_at: string;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  /** The start of the response body, bounded in size. */
  response_excerpt: string | null;
}

export interface UserEmailsTable {
  user_id: string;
  email: string;
  verified_at: string | null;
  /** SHA-256 (hex) of the one-time verification token. */
  token_hash: string | null;
  token_expires_at: string | null;
  updated_at: string;
}

/** An email queued for sending. */
export interface EmailMessagesTable {
  id: string;
  user_id: string | null;
  to_address: string;
  kind: string;
  title: string;
  body: string;
  link: string | null;
  /** JSON object: the template's variables. */
  data: string;
  status: 'pending' | 'sent' | 'failed';
  attempts: Generated<number>;
  next_attempt_at: string | null;
  last_error: string | null;
  created_at: string;
  sent_at: string | null;
}

export interface DB {
  users: UsersTable;
  sessions: SessionsTable;
  spent_refresh_tokens: SpentRefreshTokensTable;
  login_failures: LoginFailuresTable;
  api_tokens: ApiTokensTable;
  events: EventsTable;
  idempotency_keys: IdempotencyKeysTable;
  hosts: HostsTable;
  devices: DevicesTable;
  leases: LeasesTable;
  lease_devices: LeaseDevicesTable;
  app_blobs: AppBlobsTable;
  apps: AppsTable;
  install_jobs: InstallJobsTable;
  install_job_devices: InstallJobDevicesTable;
  plans: PlansTable;
  usage_records: UsageRecordsTable;
  budgets: BudgetsTable;
  budget_alerts: BudgetAlertsTable;
  invoices: InvoicesTable;
  billing_periods: BillingPeriodsTable;
  notifications: NotificationsTable;
  notification_preferences: NotificationPreferencesTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_endpoint_types: WebhookEndpointTypesTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  user_emails: UserEmailsTable;
  email_messages: EmailMessagesTable;
}
