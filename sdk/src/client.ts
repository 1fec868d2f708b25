import { randomUUID } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { BinaryResponse, binaryChunks, isBinaryBody, isReplayable, type BinaryBody } from './core/binary.js';
import { APIError, CloudPhoneError } from './core/errors.js';
import { Page, PagePromise, type PageBody } from './core/pagination.js';
import { backoff, isRetrySafe, retryDelay, shouldRetryError, shouldRetryResponse, sleep, type Sleep } from './core/retry.js';
import { renderPath, serializeQuery, Transport, type StreamingResponse, type TransportResponse } from './core/transport.js';
import type { TokenPair } from './generated/models.js';
import {
  operations,
  type OperationId,
  type OperationMeta,
  type PageItemOf,
  type PaginatedOperationId,
  type ParamsOf,
  type ResultOf,
} from './generated/operations.js';
import { resources, type Resources } from './resources/index.js';
import { VERSION } from './version.js';

const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';
const DEFAULT_TIMEOUT = 60_000;
const DEFAULT_MAX_RETRIES = 2;

export interface ClientOptions {
  /** The server's URL, optionally with a path prefix. Default: `CLOUDPHONE_API_URL`, else `http://127.0.0.1:8080`. */
  baseUrl?: string;
  /** An access token from `login` or an API token (`cpt_…`). Default: `CLOUDPHONE_TOKEN`. */
  token?: string;
  /** With a refresh token, a 401 `token_expired` triggers one `refreshSession` and a retry with the new token. */
  refreshToken?: string;
  /** Called with every new token pair after a refresh, to persist the rotated tokens. */
  onTokenRefresh?: (pair: TokenPair) => void | Promise<void>;
  /** Milliseconds per attempt before it fails with `APITimeoutError`. Default 60 000. */
  timeout?: number;
  /** Retries after a retryable failure. Default 2. */
  maxRetries?: number;
  /** The undici dispatcher requests go through. Default: one keep-alive `Agent`, created on the first request. */
  dispatcher?: Dispatcher;
  /** Headers sent with every request. */
  defaultHeaders?: Record<string, string>;
  /** A product token (`my-app/1.2`) put in front of the SDK's own in the `User-Agent` header. */
  userAgent?: string;
  /** How the client waits between attempts. Default: a timer that ends early when the call is aborted. */
  sleep?: Sleep;
  /** The source of backoff jitter, a number in [0, 1). Default `Math.random`. */
  jitter?: () => number;
}

export interface RequestOptions {
  /** Milliseconds per attempt; overrides the client's `timeout`. */
  timeout?: number;
  /** Aborts the call (any attempt or wait in progress) with `APIUserAbortError`. */
  signal?: AbortSignal;
  /** Overrides the client's `maxRetries`. */
  maxRetries?: number;
  /** The `Idempotency-Key` to send. Operations that take one get a random UUID otherwise, the same on every retry. */
  idempotencyKey?: string;
  /** Extra headers (`X-Request-Id`, …); they override the client's. */
  headers?: Record<string, string>;
}

/** The arguments of `request` and `paginate` after the operationId: `params` may be left out when all are optional. */
export type RequestArgs<Id extends OperationId> = {} extends ParamsOf<Id>
  ? [params?: ParamsOf<Id>, options?: RequestOptions]
  : [params: ParamsOf<Id>, options?: RequestOptions];

/** `ParamsOf<Id>` for any operation, as the client handles it internally. */
interface Params {
  path?: Record<string, unknown>;
  query?: Record<string, unknown>;
  headers?: Record<string, string | undefined>;
  body?: unknown;
}

/** The option values a client was created with, after defaults and environment fallbacks. */
interface ResolvedOptions {
  baseUrl: string;
  timeout: number;
  maxRetries: number;
  onTokenRefresh: ((pair: TokenPair) => void | Promise<void>) | undefined;
  dispatcher: Dispatcher | undefined;
  defaultHeaders: Record<string, string>;
  userAgent: string | undefined;
  sleep: Sleep;
  jitter: () => number;
}

function fromEnv(name: string): string | undefined {
  return process.env[name] || undefined;
}

function assignHeaders(target: Record<string, string>, headers: Record<string, string | undefined> | undefined): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) target[name.toLowerCase()] = value;
  }
}

function successBody(operationId: OperationId, response: TransportResponse): unknown {
  if (response.status === 204 || response.text === '') return undefined;
  try {
    return JSON.parse(response.text);
  } catch (cause) {
    throw new CloudPhoneError(`${operationId}: the ${response.status} response is not valid JSON.`, { cause });
  }
}

function errorBody(response: TransportResponse): unknown {
  if (!/\bjson\b/i.test(response.headers['content-type'] ?? '')) return response.text;
  try {
    return JSON.parse(response.text);
  } catch {
    return response.text;
  }
}

/** What SDK helpers outside the class (`openWebSocket`) need from a client. Internal: not exported by the package. */
export interface ClientInternals {
  /** `scheme://host[:port]`. */
  origin: string;
  /** The base URL's path prefix, without a trailing slash (`''` for none). */
  basePath: string;
  /** The current access or API token (it changes when the client refreshes). */
  token: string | undefined;
  userAgent: string;
  defaultHeaders: Record<string, string>;
  timeout: number;
  /** How the client waits between attempts, and its source of backoff jitter (both options of the client). */
  sleep: Sleep;
  jitter: () => number;
  /**
   * After `expired` was refused as expired: refreshes the session (once, shared with concurrent callers) and
   * resolves to the new token, or to undefined when the client has no refresh token.
   */
  refreshAfter(expired: string): Promise<string | undefined>;
  /**
   * Calls an operation as `request` does, but accepts `accept` (`text/csv`, …) and answers the body unread, as a
   * `BinaryResponse`: for operations that answer other media types than their table's (CSV besides JSON).
   */
  requestAs<Id extends OperationId>(
    operationId: Id,
    accept: string,
    params: ParamsOf<Id>,
    options?: RequestOptions,
  ): Promise<BinaryResponse>;
}

let internals: (client: CloudPhone) => ClientInternals;

/** @internal The connection details of `client`, for the SDK's own helpers. */
export function clientInternals(client: CloudPhone): ClientInternals {
  return internals(client);
}

/** The request body as the transport sends it: JSON text, or raw bytes for binary operations. */
function requestBody(operationId: OperationId, op: OperationMeta, body: unknown): string | Uint8Array | AsyncIterable<Uint8Array> | undefined {
  if (!op.hasBody || body === undefined) return undefined;
  if (op.binaryBody === null) return JSON.stringify(body);
  if (!isBinaryBody(body)) {
    throw new CloudPhoneError(`${operationId}: the body must be a string, Uint8Array, Readable, ReadableStream or async iterable of bytes.`);
  }
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return body;
  return binaryChunks(body as Exclude<BinaryBody, string | Uint8Array>);
}

export interface CloudPhone extends Resources {}

/**
 * A client for the cloudphone API. One property per tag of the contract (`cp.auth`, `cp.me`, `cp.users`,
 * `cp.tokens`, `cp.events`) holds a method per operation; `request` and `paginate` call any operation by its
 * operationId.
 *
 * @example
 * ```ts
 * const cp = new CloudPhone({ token: process.env.CLOUDPHONE_TOKEN });
 * for await (const user of cp.users.list({ role: 'member' })) console.log(user.username);
 * ```
 */
export class CloudPhone {
  /** The server's URL, without a trailing slash. */
  readonly baseUrl: string;
  /** Milliseconds per attempt. */
  readonly timeout: number;
  /** Retries after a retryable failure. */
  readonly maxRetries: number;

  readonly #options: ResolvedOptions;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #userAgent: string;
  #transport: Transport;
  #token: string | undefined;
  #refreshToken: string | undefined;
  #refreshing: Promise<void> | undefined;

  static {
    internals = (client) => ({
      origin: client.#origin,
      basePath: client.#basePath,
      token: client.#token,
      userAgent: client.#userAgent,
      defaultHeaders: client.#options.defaultHeaders,
      timeout: client.#options.timeout,
      sleep: client.#options.sleep,
      jitter: client.#options.jitter,
      refreshAfter: async (expired) => {
        if (client.#refreshToken === undefined) return undefined;
        await client.#refresh(expired);
        return client.#token;
      },
      requestAs: (operationId, accept, params, options) =>
        client.#call(operationId, params as Params, options ?? {}, accept) as Promise<BinaryResponse>,
    });
  }

  constructor(options: ClientOptions = {}) {
    const baseUrl = (options.baseUrl ?? fromEnv('CLOUDPHONE_API_URL') ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch (cause) {
      throw new CloudPhoneError(`Invalid baseUrl: ${baseUrl}`, { cause });
    }
    this.#options = {
      baseUrl,
      timeout: options.timeout ?? DEFAULT_TIMEOUT,
      maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
      onTokenRefresh: options.onTokenRefresh,
      dispatcher: options.dispatcher,
      defaultHeaders: options.defaultHeaders ?? {},
      userAgent: options.userAgent,
      sleep: options.sleep ?? sleep,
      jitter: options.jitter ?? Math.random,
    };
    this.baseUrl = baseUrl;
    this.timeout = this.#options.timeout;
    this.maxRetries = this.#options.maxRetries;
    this.#origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#userAgent = [options.userAgent, `cloudphone-sdk/${VERSION}`, `node/${process.versions.node}`]
      .filter(Boolean)
      .join(' ');
    this.#transport = new Transport(options.dispatcher);
    this.#token = options.token ?? fromEnv('CLOUDPHONE_TOKEN');
    this.#refreshToken = options.refreshToken;
    for (const [name, Resource] of Object.entries(resources)) {
      Object.defineProperty(this, name, { value: new Resource(this), enumerable: true });
    }
  }

  /**
   * A client with some options changed and the rest (including the current tokens) kept. It shares this
   * client's connection pool unless `options.dispatcher` is given.
   */
  withOptions(options: ClientOptions): CloudPhone {
    const client = new CloudPhone({
      ...this.#options,
      token: this.#token,
      refreshToken: this.#refreshToken,
      ...options,
    });
    if (options.dispatcher === undefined) client.#transport = this.#transport;
    return client;
  }

  /**
   * Calls an operation by its operationId and resolves to its response body (`undefined` for 204).
   *
   * @example
   * ```ts
   * const user = await cp.request('getUser', { path: { userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' } });
   * ```
   */
  request<Id extends OperationId>(operationId: Id, ...[params, options]: RequestArgs<Id>): Promise<ResultOf<Id>> {
    return this.#call(operationId, (params ?? {}) as Params, options ?? {}) as Promise<ResultOf<Id>>;
  }

  /**
   * Calls a list operation: `await` the result for the first page, or iterate it with `for await` for every
   * item of every page. Later pages are fetched with the same query and options plus the previous page's cursor.
   */
  paginate<Id extends PaginatedOperationId>(
    operationId: Id,
    ...[params, options]: RequestArgs<Id>
  ): PagePromise<PageItemOf<Id>> {
    const base = (params ?? {}) as Params;
    const fetchPage = async (cursor?: string): Promise<Page<PageItemOf<Id>>> => {
      const query = cursor === undefined ? base.query : { ...base.query, cursor };
      const body = await this.#call(operationId, { ...base, query }, options ?? {});
      return new Page(body as PageBody<PageItemOf<Id>>, fetchPage);
    };
    return new PagePromise(() => fetchPage());
  }

  /**
   * Sends an operation, retrying as the retry policy allows. A 401 `token_expired` on a call that sent the
   * access token leads to one refresh and a retry (`refreshSession` itself is public and sends no token).
   * `accept` asks for that media type and answers a `BinaryResponse` whatever the operation's table says.
   */
  async #call(operationId: OperationId, params: Params, options: RequestOptions, accept?: string): Promise<unknown> {
    const op: OperationMeta = operations[operationId];
    const binaryResponse = accept ?? op.binaryResponse;
    if (op.websocket) {
      throw new CloudPhoneError(`${operationId} is a WebSocket operation: open it with openWebSocket(client, '${operationId}', …).`);
    }
    const query = serializeQuery(params.query, op.queryParams);
    const path = `${this.#basePath}${renderPath(operationId, op, params.path)}${query ? `?${query}` : ''}`;
    const body = requestBody(operationId, op, params.body);
    // A streamed body is read by the first attempt: it cannot be sent again, so such calls are never retried.
    const replayable = body === undefined || isReplayable(body);
    const idempotencyKey =
      options.idempotencyKey ?? params.headers?.['Idempotency-Key'] ?? (op.idempotent ? randomUUID() : undefined);
    const timeout = options.timeout ?? this.timeout;
    const maxRetries = replayable ? (options.maxRetries ?? this.maxRetries) : 0;
    const safe = isRetrySafe(op);
    let refreshed = false;
    let retries = 0;

    for (;;) {
      const token = op.authenticated ? this.#token : undefined;
      const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.#userAgent };
      assignHeaders(headers, this.#options.defaultHeaders);
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = op.binaryBody ?? 'application/json';
      if (binaryResponse !== null) headers.accept = `${binaryResponse}, application/problem+json`;
      assignHeaders(headers, params.headers);
      if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
      assignHeaders(headers, options.headers);

      let response: StreamingResponse;
      try {
        const request = { method: op.method, origin: this.#origin, path, headers, body, timeout, signal: options.signal };
        response = binaryResponse === null ? await this.#transport.send(request) : await this.#transport.sendStreaming(request);
      } catch (error) {
        if (retries < maxRetries && error instanceof CloudPhoneError && shouldRetryError(error, safe)) {
          await this.#options.sleep(backoff(retries, this.#options.jitter), options.signal);
          retries += 1;
          continue;
        }
        throw error;
      }
      if (response.stream !== undefined) {
        return new BinaryResponse({ status: response.status, headers: response.headers, body: response.stream });
      }
      if (response.status >= 200 && response.status < 300) return successBody(operationId, response);

      const error = APIError.from(response.status, errorBody(response), response.headers);
      const expired = error.status === 401 && error.code === 'token_expired';
      if (expired && replayable && !refreshed && token !== undefined && this.#refreshToken !== undefined) {
        refreshed = true;
        await this.#refresh(token);
        continue;
      }
      if (retries < maxRetries && shouldRetryResponse(error, safe)) {
        const delay = retryDelay(retries, response.headers['retry-after'], this.#options.jitter, Date.now());
        if (delay !== null) {
          await this.#options.sleep(delay, options.signal);
          retries += 1;
          continue;
        }
      }
      throw error;
    }
  }

  /**
   * Exchanges the refresh token for a new pair after `expired` was rejected. Concurrent calls share one refresh,
   * and a call whose token was already replaced just retries with the new one.
   */
  async #refresh(expired: string): Promise<void> {
    if (this.#token !== expired) return;
    this.#refreshing ??= this.#rotate().finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
  }

  async #rotate(): Promise<void> {
    const pair = (await this.#call('refreshSession', { body: { refreshToken: this.#refreshToken } }, {})) as TokenPair;
    this.#token = pair.accessToken;
    this.#refreshToken = pair.refreshToken;
    await this.#options.onTokenRefresh?.(pair);
  }
}
