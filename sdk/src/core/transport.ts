import type { Dispatcher } from 'undici';
import type { OperationMeta, QueryParamMeta } from '../generated/operations.js';
import { APIConnectionError, APITimeoutError, APIUserAbortError, CloudPhoneError } from './errors.js';

/** One HTTP exchange, as the client hands it to the transport. */
export interface TransportRequest {
  method: string;
  /** `scheme://host[:port]`. */
  origin: string;
  /** Path and query string, already encoded. */
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  /** Milliseconds before the attempt is abandoned with an `APITimeoutError`. */
  timeout: number;
  signal: AbortSignal | undefined;
}

export interface TransportResponse {
  status: number;
  /** Header names in lower case; repeated headers joined with `, `. */
  headers: Record<string, string>;
  text: string;
}

/** undici's code for a request it refuses to send (an invalid header value, …). */
const INVALID_ARGUMENT = 'UND_ERR_INVALID_ARG';

/** How long an idle keep-alive connection stays open. */
const KEEP_ALIVE_TIMEOUT = 10_000;

/**
 * Sends requests through one undici dispatcher. Without a `dispatcher`, the first request imports undici and
 * creates an `Agent` (a keep-alive connection pool) that every later request, and every client derived with
 * `withOptions`, reuses.
 */
export class Transport {
  #dispatcher: Promise<Dispatcher> | undefined;

  constructor(dispatcher?: Dispatcher) {
    this.#dispatcher = dispatcher && Promise.resolve(dispatcher);
  }

  #getDispatcher(): Promise<Dispatcher> {
    this.#dispatcher ??= import('undici').then(({ Agent }) => new Agent({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT }));
    return this.#dispatcher;
  }

  /** Sends one attempt and reads the whole response, within `timeout`. */
  async send(request: TransportRequest): Promise<TransportResponse> {
    const { signal, timeout } = request;
    if (signal?.aborted) throw new APIUserAbortError({ cause: signal.reason });
    const dispatcher = await this.#getDispatcher();
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout);
    const onAbort = (): void => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const response = await dispatcher.request({
        origin: request.origin,
        path: request.path,
        method: request.method,
        headers: request.headers,
        body: request.body ?? null,
        signal: controller.signal,
        // The attempt's own timer above bounds headers and body together; undici's separate ones are off.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const text = await response.body.text();
      return { status: response.statusCode, headers: flattenHeaders(response.headers), text };
    } catch (error) {
      if (timedOut) throw new APITimeoutError(timeout);
      if (signal?.aborted) throw new APIUserAbortError({ cause: error });
      if (error instanceof Error && (error as NodeJS.ErrnoException).code === INVALID_ARGUMENT) {
        throw new CloudPhoneError(`Invalid request: ${error.message}`, { cause: error });
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new APIConnectionError(`Connection error: ${reason}`, { cause: error });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function flattenHeaders(headers: Dispatcher.ResponseData['headers']): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

/** One path segment: percent-encoded, with `.` and `..` encoded too so no URL normalisation can drop them. */
function encodeSegment(value: string): string {
  const encoded = encodeURIComponent(value);
  return encoded === '.' || encoded === '..' ? encoded.replace(/\./g, '%2E') : encoded;
}

/** The operation's path with its `{param}`s filled in from `values`, each encoded as one segment. */
export function renderPath(
  operationId: string,
  op: Pick<OperationMeta, 'path' | 'pathParams'>,
  values: Record<string, unknown> | undefined,
): string {
  let path = op.path;
  for (const name of op.pathParams) {
    const value = values?.[name];
    if (value === undefined || value === null || value === '') {
      throw new CloudPhoneError(`${operationId}: expected a non-empty value for the path parameter ${name}.`);
    }
    path = path.replace(`{${name}}`, encodeSegment(String(value)));
  }
  return path;
}

/**
 * The query string (without `?`) for `query`: `undefined` and `null` values are left out, booleans are sent as
 * `true`/`false`, and arrays as repeated keys (`type=a&type=b`) unless the contract says `explode: false`.
 */
export function serializeQuery(
  query: Record<string, unknown> | undefined,
  params: readonly QueryParamMeta[],
): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) {
      const explode = params.find((p) => p.name === name)?.explode ?? true;
      if (explode) for (const item of value) search.append(name, String(item));
      else if (value.length > 0) search.append(name, value.map(String).join(','));
    } else {
      search.append(name, String(value));
    }
  }
  return search.toString();
}
