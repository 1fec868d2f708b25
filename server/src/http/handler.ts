import type { FastifyBaseLogger } from 'fastify';
import type { OperationId } from '../generated/operations.js';
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
type Part<Id extends OperationId, K extends 'path' | 'query' | 'header'> =
  NonNullable<Op<Id>['parameters'][K]> extends infer V ? ([V] extends [never] ? Record<string, never> : V) : never;

export type PathOf<Id extends OperationId> = Part<Id, 'path'>;
export type QueryOf<Id extends OperationId> = Part<Id, 'query'>;
export type HeadersOf<Id extends OperationId> = Part<Id, 'header'>;
export type BodyOf<Id extends OperationId> = Op<Id> extends { requestBody: infer R }
  ? Json<R>
  : Op<Id> extends { requestBody?: infer R }
    ? Json<NonNullable<R>> | undefined
    : undefined;

type Success<R> = {
  [S in keyof R]: S extends 200 | 201 | 202 | 204 ? { status: S; body: Json<R[S]> } : never;
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

/** Exactly one handler per operation of the contract. */
export type Handlers = { [Id in OperationId]: Handler<Id> };
