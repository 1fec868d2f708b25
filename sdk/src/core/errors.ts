import type { Problem, QuotaViolation } from '../generated/models.js';

/** The base class of every error the SDK throws. */
export class CloudPhoneError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The longest part of a non-JSON error body kept as the problem's `detail`. */
const MAX_DETAIL = 500;

function isProblem(body: unknown): body is Partial<Problem> & { code: string } {
  return typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string';
}

/**
 * The problem for an error response: the body itself when it is a problem, otherwise one made from the status
 * and the body (as `detail`), with the code `http_<status>`.
 */
function toProblem(status: number, body: unknown, headers: Record<string, string>): Problem {
  const requestId = headers['x-request-id'] ?? '';
  if (isProblem(body)) {
    return {
      ...body,
      type: body.type ?? `https://cloudphone.dev/problems/${body.code}`,
      title: body.title ?? `HTTP ${status}`,
      status: typeof body.status === 'number' ? body.status : status,
      requestId: body.requestId ?? requestId,
    };
  }
  const text = (typeof body === 'string' ? body : (JSON.stringify(body) ?? '')).trim().slice(0, MAX_DETAIL);
  return {
    type: 'about:blank',
    title: `HTTP ${status}`,
    status,
    code: `http_${status}`,
    ...(text ? { detail: text } : {}),
    requestId,
  };
}

/** The server answered with an error status. `problem` is the RFC 9457 body, `code` its stable error code. */
export class APIError extends CloudPhoneError {
  /** The HTTP status. */
  readonly status: number;
  /** The stable, machine-readable error code (`not_found`, `token_expired`, …). */
  readonly code: string;
  /** The server's request id, for its logs. */
  readonly requestId: string | undefined;
  /** The problem details the server sent. */
  readonly problem: Problem;
  /** The response headers, names in lower case. */
  readonly headers: Record<string, string>;

  constructor(status: number, problem: Problem, headers: Record<string, string>) {
    super(`${status} ${problem.code}: ${problem.detail ?? problem.title}`);
    this.status = status;
    this.code = problem.code;
    this.requestId = problem.requestId || headers['x-request-id'] || undefined;
    this.problem = problem;
    this.headers = headers;
  }

  /**
   * The error for a response: an instance of the subclass for `status` (`NotFoundError` for 404, …).
   *
   * @param body The parsed JSON body, or the body's text when it is not JSON.
   */
  static from(status: number, body: unknown, headers: Record<string, string>): APIError {
    const ErrorClass = errorClassFor(status);
    return new ErrorClass(status, toProblem(status, body, headers), headers);
  }
}

/** 400: the request is malformed or fails validation (`validation_failed`, `malformed_json`, `invalid_cursor`). */
export class BadRequestError extends APIError {}

/** 401: missing, invalid, expired or revoked credentials. */
export class AuthenticationError extends APIError {}

/** 402: a budget that pays for the request cannot afford it (`budget_exhausted`). */
export class PaymentRequiredError extends APIError {
  /** On `budget_exhausted`, the budget that cannot pay: its id, scope, currency, monthly `amount` and `spent`. */
  get budget(): Problem['budget'] {
    return this.problem.budget;
  }
}

/** 403: authenticated, but not allowed (`insufficient_role`, `insufficient_scope`, `quota_exceeded`, …). */
export class PermissionDeniedError extends APIError {
  /** On `quota_exceeded`, the plan quota the request exceeds: its `name`, `limit`, `current` and `requested`. */
  get quota(): QuotaViolation | undefined {
    return this.problem.quota;
  }
}

/** 404: no such resource, or it is not yours to see. */
export class NotFoundError extends APIError {}

/** 409: the request conflicts with the current state (`username_taken`, `last_admin`, …). */
export class ConflictError extends APIError {}

/** 422: well-formed but not acceptable (`idempotency_key_reused`). */
export class UnprocessableEntityError extends APIError {}

/** 429: too many requests; `headers['retry-after']` says when to try again. */
export class RateLimitError extends APIError {}

/** 5xx: the server failed. */
export class InternalServerError extends APIError {}

function errorClassFor(status: number): typeof APIError {
  switch (status) {
    case 400:
      return BadRequestError;
    case 401:
      return AuthenticationError;
    case 402:
      return PaymentRequiredError;
    case 403:
      return PermissionDeniedError;
    case 404:
      return NotFoundError;
    case 409:
      return ConflictError;
    case 422:
      return UnprocessableEntityError;
    case 429:
      return RateLimitError;
    default:
      return status >= 500 ? InternalServerError : APIError;
  }
}

/** The request did not get a response: the connection failed or broke. `cause` holds the underlying error. */
export class APIConnectionError extends CloudPhoneError {
  constructor(message = 'Connection error.', options?: ErrorOptions) {
    super(message, options);
  }
}

/** An attempt took longer than the `timeout` option. */
export class APITimeoutError extends CloudPhoneError {
  constructor(timeout: number) {
    super(`Request timed out after ${timeout} ms.`);
  }
}

/** The caller's `AbortSignal` aborted the request. */
export class APIUserAbortError extends CloudPhoneError {
  constructor(options?: ErrorOptions) {
    super('Request was aborted.', options);
  }
}
