import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { OperationId, operations as operationTable } from '../generated/operations.js';
import type { operations } from '../generated/types.js';
import type { Role, Scope } from './access.js';

/** Who is calling: set by the auth hook for every non-public operation. */
export interface Principal {
  userId: string;
  username: string;
  role: Role;
  scopes: Scope[];
  method: 'session' | 'api_token';
  /** The API token's id when `method` is `api_token`. */
  tokenId?: string;
  /** The session's id when `method` is `session`. */
  sessionId?: string;
}

export interface RequestContext {
  requestId: string;
  /** `null` only for public operations. */
  principal: Principal | null;
  ip: string;
  userAgent: string | null;
  log: FastifyBaseLogger;
}

type Op<Id extends OperationId> = operations[Id];
type Json<T> = T extends { content: { 'application/json': infer B } } ? B : undefined;
/** A request body: the JSON document, or for a binary (non-JSON) body the raw request stream, never buffered. */
type RequestContent<T> = T extends { content: infer C } ? ('application/json' extends keyof C ? C['application/json'] : Readable) : undefined;
/** A response body: the JSON document, or for a binary (non-JSON) response a stream or buffer to send as is. */
/** JSON as the contract types it; any other media type (a download, a CSV) as bytes. */
type ResponseContent<T> = T extends { content: infer C }
  ?
      | ('application/json' extends keyof C ? C['application/json'] : never)
      | ([Exclude<keyof C, 'application/json'>] extends [never] ? never : Readable | Buffer)
  : undefined;
type Part<Id extends OperationId, K extends 'path' | 'query' | 'header'> =
  NonNullable<Op<Id>['parameters'][K]> extends infer V ? ([V] extends [never] ? Record<string, never> : V) : never;

export type PathOf<Id extends OperationId> = Part<Id, 'path'>;
export type QueryOf<Id extends OperationId> = Part<Id, 'query'>;
export type HeadersOf<Id extends OperationId> = Part<Id, 'header'>;
export type BodyOf<Id extends OperationId> = Op<Id> extends { requestBody: infer R }
  ? RequestContent<R>
  : Op<Id> extends { requestBody?: infer R }
    ? RequestContent<NonNullable<R>> | undefined
    : undefined;

/**
 * A binary success body is sent as is; its `content-type` is the contract's unless the handler's `headers` set one
 * (set `content-length` too when known).
 */
type Success<R> = {
  [S in keyof R]: S extends 200 | 201 | 202 | 204 | 206 ? { status: S; body: ResponseContent<R[S]> } : never;
}[keyof R];

export type HandlerInput<Id extends OperationId> = {
  params: PathOf<Id>;
  query: QueryOf<Id>;
  headers: HeadersOf<Id>;
  body: BodyOf<Id>;
  ctx: RequestContext;
};

export type HandlerOutput<Id extends OperationId> = Success<Op<Id>['responses']> & {
  headers?: Record<string, string>;
};

export type Handler<Id extends OperationId> = (input: HandlerInput<Id>) => Promise<HandlerOutput<Id>>;

/** The operations that upgrade to a WebSocket (`x-websocket` in the contract). */
export type WebSocketOperationId = {
  [Id in OperationId]: (typeof operationTable)[Id]['websocket'] extends true ? Id : never;
}[OperationId];
export type HttpOperationId = Exclude<OperationId, WebSocketOperationId>;

/**
 * Serves one WebSocket operation after the upgrade. Authentication, `x-access` and parameter validation run
 * before the upgrade (failures are problem responses); so does `preUpgrade` when set: an `ApiError` it throws (no
 * lease, unknown device) is a problem response and the connection is never upgraded. Once the socket is open,
 * report failures on it (the framing is the operation's); an error thrown here closes it with 1011.
 */
export interface WebSocketHandler<Id extends OperationId> {
  (socket: WebSocket, input: HandlerInput<Id>): void | Promise<void>;
  preUpgrade?: (input: HandlerInput<Id>) => Promise<void>;
}

/** A `WebSocketHandler` with checks that run before the upgrade. */
export function webSocketHandler<Id extends OperationId>(
  handler: (socket: WebSocket, input: HandlerInput<Id>) => void | Promise<void>,
  options: { preUpgrade?: (input: HandlerInput<Id>) => Promise<void> } = {},
): WebSocketHandler<Id> {
  return Object.assign(handler, options.preUpgrade ? { preUpgrade: options.preUpgrade } : {});
}

/** Exactly one handler per operation of the contract: a `Handler` for HTTP operations, a `WebSocketHandler` for the rest. */
export type Handlers = { [Id in HttpOperationId]: Handler<Id> } & { [Id in WebSocketOperationId]: WebSocketHandler<Id> };
