import { PassThrough, Readable } from 'node:stream';
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
  /** JSON text, raw bytes, or a stream of bytes (read once). */
  body: string | Uint8Array | AsyncIterable<Uint8Array> | undefined;
  /**
   * Milliseconds before the attempt is abandoned with an `APITimeoutError`: until the whole response is read, or
   * with `sendStreaming`, until the response headers arrive and then whenever the body stalls that long. While a
   * streamed request body is being sent, each chunk restarts the timer.
   */
  timeout: number;
  signal: AbortSignal | undefined;
}

export interface TransportResponse {
  status: number;
  /** Header names in lower case; repeated headers joined with `, `. */
  headers: Record<string, string>;
  text: string;
}

/** A response whose 2xx body is handed over unread; error responses are read as text. */
export type StreamingResponse =
  | (TransportResponse & { stream?: undefined })
  | { status: number; headers: Record<string, string>; text?: undefined; stream: Readable };

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
    return (await this.#exchange(request, false)) as TransportResponse;
  }

  /**
   * Sends one attempt; a 2xx response's body is returned as a stream, unread. `timeout` bounds the wait for the
   * response headers, then each pause in the body (an idle timeout), so a long download is never cut while
   * bytes flow. The request's `signal` still aborts the body.
   */
  sendStreaming(request: TransportRequest): Promise<StreamingResponse> {
    return this.#exchange(request, true);
  }

  async #exchange(request: TransportRequest, streaming: boolean): Promise<StreamingResponse> {
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
    let handedOver = false;
    const body = request.body;
    try {
      const response = await dispatcher.request({
        origin: request.origin,
        path: request.path,
        method: request.method,
        headers: request.headers,
        body: body === undefined || typeof body === 'string' || body instanceof Uint8Array ? (body ?? null) : Readable.from(refreshing(body, timer), { objectMode: false }),
        signal: controller.signal,
        // The attempt's own timer above bounds headers and body together; undici's separate ones are off.
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const headers = flattenHeaders(response.headers);
      if (streaming && response.statusCode >= 200 && response.statusCode < 300) {
        clearTimeout(timer);
        handedOver = true;
        return { status: response.statusCode, headers, stream: idleGuarded(response.body, timeout, signal, onAbort) };
      }
      const text = await response.body.text();
      return { status: response.statusCode, headers, text };
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
      if (!handedOver) signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** A streamed request body that restarts the attempt's timer with every chunk undici takes. */
async function* refreshing(body: AsyncIterable<Uint8Array>, timer: NodeJS.Timeout): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    timer.refresh();
    yield chunk;
  }
}

/**
 * A response body, passed through so that stalling longer than `idleMs` fails it with `APITimeoutError`, an
 * abort of `signal` with `APIUserAbortError`, and a broken connection with `APIConnectionError`. Destroying the
 * returned stream releases the connection.
 */
function idleGuarded(source: Readable, idleMs: number, signal: AbortSignal | undefined, onAbort: () => void): Readable {
  const out = new PassThrough();
  let idle: NodeJS.Timeout | undefined;
  let done = false;
  const arm = (): void => {
    if (done) return;
    if (idle) idle.refresh();
    else idle = setTimeout(() => fail(new APITimeoutError(idleMs)), idleMs);
  };
  const cleanup = (): void => {
    done = true;
    if (idle) clearTimeout(idle);
    signal?.removeEventListener('abort', onAbort);
    signal?.removeEventListener('abort', aborted);
  };
  const fail = (error: Error): void => {
    cleanup();
    source.destroy();
    out.destroy(error);
  };
  const aborted = (): void => fail(new APIUserAbortError({ cause: signal?.reason }));
  signal?.addEventListener('abort', aborted, { once: true });
  arm();
  source.pipe(out);
  // The timer measures the server, not the reader: it is off while the reader has not taken what arrived.
  source.on('data', () => {
    if (!out.writableNeedDrain) arm();
    else if (idle) {
      clearTimeout(idle);
      idle = undefined;
    }
  });
  out.on('drain', arm);
  source.on('end', cleanup);
  source.on('error', (error) => {
    if (out.destroyed) return;
    fail(signal?.aborted ? new APIUserAbortError({ cause: error }) : new APIConnectionError(`Connection error: ${error.message}`, { cause: error }));
  });
  out.on('close', () => {
    cleanup();
    if (!source.readableEnded) source.destroy();
  });
  return out;
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
