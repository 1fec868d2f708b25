/**
 * The one catalogue of error codes. Every non-2xx response is an RFC 9457 problem whose `code` comes from here;
 * the SDK and CLI map the same codes, so a code, once shipped, keeps its meaning.
 */
export const errorCatalogue = {
  validation_failed: { status: 400, title: 'Validation failed' },
  malformed_json: { status: 400, title: 'Malformed JSON' },
  invalid_encoding: { status: 400, title: 'Invalid encoding' },
  malformed_request: { status: 400, title: 'Malformed request' },
  invalid_cursor: { status: 400, title: 'Invalid cursor' },
  invalid_device_path: { status: 400, title: 'Invalid device path' },
  webhook_url_not_allowed: { status: 400, title: 'Webhook URL not allowed' },
  invalid_verification_token: { status: 400, title: 'Invalid verification token' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  invalid_token: { status: 401, title: 'Invalid token' },
  token_expired: { status: 401, title: 'Token expired' },
  token_revoked: { status: 401, title: 'Token revoked' },
  user_disabled: { status: 401, title: 'User disabled' },
  invalid_credentials: { status: 401, title: 'Invalid credentials' },
  invalid_refresh_token: { status: 401, title: 'Invalid refresh token' },
  budget_exhausted: { status: 402, title: 'Budget exhausted' },
  lease_required: { status: 403, title: 'Lease required' },
  insufficient_role: { status: 403, title: 'Insufficient role' },
  insufficient_scope: { status: 403, title: 'Insufficient scope' },
  scope_exceeds_role: { status: 403, title: 'Scope exceeds role' },
  quota_exceeded: { status: 403, title: 'Quota exceeded' },
  not_found: { status: 404, title: 'Not found' },
  lease_not_found: { status: 404, title: 'Lease not found' },
  device_not_found: { status: 404, title: 'Device not found' },
  host_not_found: { status: 404, title: 'Host not found' },
  file_not_found: { status: 404, title: 'File not found' },
  app_not_found: { status: 404, title: 'App not found' },
  app_blob_not_found: { status: 404, title: 'App blob not found' },
  icon_not_found: { status: 404, title: 'Icon not found' },
  install_job_not_found: { status: 404, title: 'Install job not found' },
  package_not_installed: { status: 404, title: 'Package not installed' },
  plan_not_found: { status: 404, title: 'Plan not found' },
  budget_not_found: { status: 404, title: 'Budget not found' },
  invoice_not_found: { status: 404, title: 'Invoice not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'Request timeout' },
  username_taken: { status: 409, title: 'Username taken' },
  last_admin: { status: 409, title: 'Last admin' },
  no_devices_available: { status: 409, title: 'No devices available' },
  lease_not_active: { status: 409, title: 'Lease not active' },
  device_offline: { status: 409, title: 'Device offline' },
  host_exists: { status: 409, title: 'Host exists' },
  device_storage_full: { status: 409, title: 'Device storage full' },
  idempotency_key_in_use: { status: 409, title: 'Idempotency key in use' },
  idempotency_secret_not_replayable: { status: 409, title: 'Idempotency secret not replayable' },
  plan_in_use: { status: 409, title: 'Plan in use' },
  plan_name_taken: { status: 409, title: 'Plan name taken' },
  budget_exists: { status: 409, title: 'Budget exists' },
  currency_mismatch: { status: 409, title: 'Currency mismatch' },
  invoice_not_draft: { status: 409, title: 'Invoice not draft' },
  invoice_already_void: { status: 409, title: 'Invoice already void' },
  email_unavailable: { status: 409, title: 'Email unavailable' },
  webhook_endpoint_disabled: { status: 409, title: 'Webhook endpoint disabled' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  range_not_satisfiable: { status: 416, title: 'Range not satisfiable' },
  request_headers_too_large: { status: 431, title: 'Request headers too large' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused' },
  selector_unsatisfiable: { status: 422, title: 'Selector unsatisfiable' },
  invalid_apk: { status: 422, title: 'Invalid APK' },
  app_incompatible: { status: 422, title: 'App incompatible' },
  device_path_refused: { status: 422, title: 'Device path refused' },
  too_many_login_attempts: { status: 429, title: 'Too many login attempts' },
  rate_limited: { status: 429, title: 'Rate limited' },
  internal_error: { status: 500, title: 'Internal error' },
  device_command_failed: { status: 502, title: 'Device command failed' },
  service_unavailable: { status: 503, title: 'Service unavailable' },
  database_unavailable: { status: 503, title: 'Database unavailable' },
  device_timeout: { status: 504, title: 'Device timeout' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: ErrorCode;
  requestId: string;
  errors?: FieldError[];
}

/**
 * Members a problem of some codes carries besides the standard ones (`quota` on `quota_exceeded`, `budget` on
 * `budget_exhausted`), as the contract's Problem schema names them.
 */
export type ProblemExtensions = Record<string, unknown>;

export const PROBLEM_TYPE_BASE = 'https://cloudphone.dev/problems/';

/** An error that becomes a problem response. Throw it from services and handlers. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  /** Seconds, sent as `Retry-After`. */
  readonly retryAfter: number | undefined;
  readonly extensions: ProblemExtensions | undefined;

  constructor(
    code: ErrorCode,
    detail: string,
    options: { errors?: FieldError[]; retryAfter?: number; extensions?: ProblemExtensions } = {},
  ) {
    super(detail);
    this.name = 'ApiError';
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.errors = options.errors;
    this.retryAfter = options.retryAfter;
    this.extensions = options.extensions;
  }

  toProblem(requestId: string): Problem & ProblemExtensions {
    return {
      // First, so that the standard members always win over an extension of the same name.
      ...this.extensions,
      type: `${PROBLEM_TYPE_BASE}${this.code}`,
      title: errorCatalogue[this.code].title,
      status: this.status,
      detail: this.message,
      code: this.code,
      requestId,
      ...(this.errors ? { errors: this.errors } : {}),
    };
  }
}
