import type { IncomingMessage } from 'node:http';
import type { ClientRequest } from 'node:http';
import type { WebSocket } from 'ws';
import { clientInternals, type CloudPhone } from '../client.js';
import { operations, type OperationId, type OperationTypes } from '../generated/operations.js';
import { APIConnectionError, APIError, APITimeoutError, APIUserAbortError, CloudPhoneError } from './errors.js';
import { renderPath, serializeQuery } from './transport.js';

/** The operations that upgrade to a WebSocket (`x-websocket` in the contract). */
export type WebSocketOperationId = {
  [Id in OperationId]: (typeof operations)[Id]['websocket'] extends true ? Id : never;
}[OperationId];

/** The path and query parameters of a WebSocket operation. */
export type WebSocketParamsOf<Id extends WebSocketOperationId> = OperationTypes[Id]['params'];

export interface WebSocketOptions {
  /** Milliseconds for the opening handshake. Default: the client's timeout. */
  timeout?: number;
  /** Aborts the handshake (or, once open, terminates the socket). */
  signal?: AbortSignal;
  /** Extra headers for the upgrade request. */
  headers?: Record<string, string>;
}

/** The `ws://` / `wss://` URL of a WebSocket operation. */
export function webSocketUrl(
  client: CloudPhone,
  operationId: WebSocketOperationId,
  params: { path?: Record<string, unknown>; query?: Record<string, unknown> } = {},
): string {
  const op = operations[operationId];
  const { origin, basePath } = clientInternals(client);
  const query = serializeQuery(params.query, op.queryParams);
  return `${origin.replace(/^http/, 'ws')}${basePath}${renderPath(operationId, op, params.path)}${query ? `?${query}` : ''}`;
}

/**
 * Opens a WebSocket operation (`openDeviceShell`, `followDeviceLogcat`, `openDeviceAdbTunnel`) with the client's
 * URL, token, `User-Agent` and default headers, and resolves once it is open. A refusal (no lease, bad token, …)
 * rejects with the same typed `APIError` as any call; a failed connection with `APIConnectionError`. `ws` is
 * imported on first use. Attach your listeners (including `error`: this helper removes its own) right after the
 * `await`: frames are held until then.
 */
export async function openWebSocket<Id extends WebSocketOperationId>(
  client: CloudPhone,
  operationId: Id,
  params: WebSocketParamsOf<Id>,
  options: WebSocketOptions = {},
): Promise<WebSocket> {
  const op = operations[operationId];
  if (!op.websocket) throw new CloudPhoneError(`${operationId} is not a WebSocket operation.`);
  const url = webSocketUrl(client, operationId, params as { path?: Record<string, unknown>; query?: Record<string, unknown> });
  const { token, userAgent, defaultHeaders, timeout: clientTimeout, refreshAfter } = clientInternals(client);
  const headers: Record<string, string> = { 'user-agent': userAgent };
  for (const [name, value] of Object.entries({ ...defaultHeaders, ...options.headers })) headers[name.toLowerCase()] = value;
  const timeout = options.timeout ?? clientTimeout;
  const { signal } = options;
  if (signal?.aborted) throw new APIUserAbortError({ cause: signal.reason });
  if (!op.authenticated || token === undefined) return connect(url, headers, timeout, signal);
  try {
    return await connect(url, { ...headers, authorization: `Bearer ${token}` }, timeout, signal);
  } catch (error) {
    // An expired access token is refreshed once, as for any other call, and the upgrade asked for again.
    if (!(error instanceof APIError && error.status === 401 && error.code === 'token_expired')) throw error;
    const fresh = await refreshAfter(token);
    if (fresh === undefined) throw error;
    return connect(url, { ...headers, authorization: `Bearer ${fresh}` }, timeout, signal);
  }
}

/** One upgrade request: the open socket, or the typed error of a refused upgrade. */
async function connect(
  url: string,
  headers: Record<string, string>,
  timeout: number,
  signal: AbortSignal | undefined,
): Promise<WebSocket> {
  const { WebSocket: WebSocketClass } = await import('ws');
  return new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocketClass(url, { headers, handshakeTimeout: timeout, perMessageDeflate: false });
    let settled = false;
    const settle = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('open', onOpen);
      socket.off('unexpected-response', onUnexpected);
      if (error === null) {
        // Frames that came with the 101 would be emitted before the caller's `await` resumes: hold them until
        // the caller has had the chance to attach its listeners.
        socket.pause();
        resolve(socket);
        setImmediate(() => {
          if (socket.isPaused && socket.readyState === socket.OPEN) socket.resume();
        });
      } else {
        socket.on('error', () => undefined);
        if (socket.readyState !== socket.CLOSED) socket.terminate();
        reject(error);
      }
    };
    const onOpen = (): void => settle(null);
    const onError = (error: Error): void => {
      if (/handshake has timed out/i.test(error.message)) settle(new APITimeoutError(timeout));
      else settle(new APIConnectionError(`Connection error: ${error.message}`, { cause: error }));
    };
    const onAbort = (): void => settle(new APIUserAbortError({ cause: signal?.reason }));
    const onUnexpected = (request: ClientRequest, response: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', (error) => settle(new APIConnectionError(`Connection error: ${error.message}`, { cause: error })));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const responseHeaders: Record<string, string> = {};
        for (const [name, value] of Object.entries(response.headers)) {
          if (value !== undefined) responseHeaders[name] = Array.isArray(value) ? value.join(', ') : value;
        }
        let body: unknown = text;
        if (/\bjson\b/i.test(responseHeaders['content-type'] ?? '')) {
          try {
            body = JSON.parse(text);
          } catch {
            body = text;
          }
        }
        settle(APIError.from(response.statusCode ?? 0, body, responseHeaders));
        request.destroy();
      });
    };
    socket.on('open', onOpen);
    socket.on('error', onError);
    socket.on('unexpected-response', onUnexpected);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
