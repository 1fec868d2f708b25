import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { operations, type OperationId } from '../generated/operations.js';
import { requireAccess, type Authenticator } from './auth.js';
import { requestSchemas } from '../generated/request-schemas.js';
import { routePath, type RequestSchemas } from './contract.js';
import { ApiError } from './errors.js';
import { FORM_OVERHEAD_BYTES, filePartOf, isMultipart } from './multipart.js';
import type { HandlerInput, Handlers, RequestContext, WebSocketHandler } from './handler.js';
import type { IdempotencyStore, OperationResponse } from './idempotency.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The contract operation a route serves; absent on infrastructure routes. */
    operationId?: OperationId;
  }
  interface FastifyRequest {
    /** A WebSocket operation's input, built (and checked by `preUpgrade`) before the upgrade. */
    webSocketInput?: HandlerInput<OperationId>;
  }
}

type AnyHandler = (
  input: HandlerInput<OperationId>,
) => Promise<OperationResponse & { headers?: Record<string, string> }>;
type AnyWebSocketHandler = WebSocketHandler<OperationId>;

/** The raw request stream is the body of binary operations: a parser that reads nothing. */
export const BINARY_CONTENT_TYPE = 'application/octet-stream';

const IDEMPOTENCY_KEY = 'Idempotency-Key';

/** The router's default limit on the length of one path parameter. */
const ROUTER_MAX_PARAM_LENGTH = 100;

/** The longest path parameter the contract allows (a package name: 255), so the router never refuses one first. */
export function longestPathParameter(): number {
  const lengths = Object.values(requestSchemas).flatMap(({ schemas }) =>
    Object.values((schemas.params?.properties ?? {}) as Record<string, { maxLength?: number }>).map((p) => p.maxLength ?? 0),
  );
  return Math.max(ROUTER_MAX_PARAM_LENGTH, ...lengths);
}

/** Throws unless `handlers` has exactly one handler per operation of the contract. */
export function assertHandlersMatchContract(handlers: Record<string, unknown>): void {
  const expected = Object.keys(operations);
  const missing = expected.filter((id) => typeof handlers[id] !== 'function');
  const unknown = Object.keys(handlers).filter((id) => !Object.hasOwn(operations, id));
  const problems = [
    ...(missing.length > 0 ? [`no handler for ${missing.join(', ')}`] : []),
    ...(unknown.length > 0 ? [`handlers for operations not in the contract: ${unknown.join(', ')}`] : []),
  ];
  if (problems.length > 0) throw new Error(`Handlers do not match the contract: ${problems.join('; ')}.`);
}

function contextOf(request: FastifyRequest): RequestContext {
  return {
    requestId: request.id,
    principal: request.principal,
    ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    log: request.log,
  };
}

function send(
  reply: FastifyReply,
  response: OperationResponse,
  headers: Record<string, string> = {},
  binaryType: string | null = null,
): FastifyReply {
  reply.code(response.status).headers(headers);
  if (response.body === undefined) return reply.send();
  if ((binaryType !== null || headers['content-type'] !== undefined) && response.status < 400) {
    // A stream, buffer or text, sent as is; the handler's content-type wins over the contract's.
    if (binaryType !== null && !reply.hasHeader('content-type')) reply.type(binaryType);
    return reply.send(response.body);
  }
  return reply.type(response.status >= 400 ? 'application/problem+json' : 'application/json').send(response.body);
}

function inputOf(request: FastifyRequest, headerNames: string[]): HandlerInput<OperationId> {
  const headers = Object.fromEntries(
    headerNames.flatMap((name) => {
      const value = request.headers[name.toLowerCase()];
      return typeof value === 'string' ? [[name, value]] : [];
    }),
  );
  return {
    params: request.params,
    query: request.query,
    headers,
    body: request.body,
    ctx: contextOf(request),
  } as HandlerInput<OperationId>;
}

/**
 * The content types of binary operations' bodies (`application/octet-stream` and those the contract adds, such as
 * `multipart/form-data`) reach those operations as the raw, unbuffered request stream (the handler enforces its own
 * size limit); an operation that does not list the content type answers 415 for it, as for every non-JSON body.
 */
function registerBinaryBodies(app: FastifyInstance): void {
  const contentTypes = new Set([BINARY_CONTENT_TYPE, ...Object.values(operations).flatMap((meta) => meta.binaryBodyTypes)]);
  for (const contentType of contentTypes) {
    app.addContentTypeParser(contentType, (request, payload, done) => {
      const operationId = request.routeOptions.config.operationId;
      const accepted: readonly string[] = operationId === undefined ? [] : operations[operationId].binaryBodyTypes;
      if (!accepted.includes(contentType)) {
        const expected = accepted.length === 0 ? 'application/json' : accepted.join(' or ');
        done(new ApiError('unsupported_media_type', `Send the body as ${expected}, not ${contentType}.`), undefined);
        return;
      }
      done(null, payload);
    });
  }
}

/**
 * Binary operations take only their own content types; a JSON (or absent) body is 415 (an empty body is empty). A
 * `multipart/form-data` body is the stream of its file part.
 */
async function binaryBodyOf(request: FastifyRequest, contentTypes: readonly string[]): Promise<Readable> {
  if (request.body instanceof Readable) {
    return isMultipart(request.headers['content-type']) ? filePartOf(request.body, request.headers) : request.body;
  }
  if (request.body === undefined && !hasBody(request)) return Readable.from([]);
  throw new ApiError('unsupported_media_type', `Send the body as ${contentTypes.join(' or ')}.`);
}

export interface OperationRoutesOptions {
  handlers: Handlers;
  authenticator: Authenticator;
  idempotency: IdempotencyStore;
  /** The largest body each binary operation takes (its handler enforces it on the stream too). */
  binaryBodyLimits: Partial<Record<OperationId, number>>;
}

/** Whether a request carries a body (a length above zero, or chunks), before any of it is read. */
function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Checks of the body that come before it is read: a body sent to an operation that takes none is 400, and a binary
 * body whose `Content-Length` already says it is over the operation's limit is 413 at once, not after reading it.
 */
function bodyChecks(operationId: OperationId, schemas: RequestSchemas, limit: number | undefined) {
  const meta = operations[operationId];
  const takesBody = schemas.body !== undefined || meta.binaryBody !== null;
  return async (request: FastifyRequest): Promise<void> => {
    if (!takesBody) {
      // A GET's body has no meaning in HTTP and is never read; other methods say what they take.
      if (meta.method !== 'GET' && hasBody(request)) {
        throw new ApiError('validation_failed', 'This operation takes no request body.', {
          errors: [{ field: '', message: 'must be absent' }],
        });
      }
      return;
    }
    const length = Number(request.headers['content-length']);
    const overhead = isMultipart(request.headers['content-type']) ? FORM_OVERHEAD_BYTES : 0;
    if (limit !== undefined && length > limit + overhead) {
      throw new ApiError('payload_too_large', `The request body is larger than the limit of ${limit} bytes.`);
    }
  };
}

/**
 * An optional JSON body may be absent (Fastify validates absence as `null`, so the generated schema admits `null`),
 * but a body that is the JSON `null` is not an object the contract describes.
 */
async function refuseNullBody(request: FastifyRequest): Promise<void> {
  if (request.body === null) {
    throw new ApiError('validation_failed', 'Invalid request body: must be object.', {
      errors: [{ field: '', message: 'must be object' }],
    });
  }
}

/**
 * Registers one route per contract operation: the path and method from the contract, request validation from
 * its schemas, authentication and the operation's `x-access` before anything is read, `Idempotency-Key` handling
 * for operations that declare it, and the operation's handler.
 */
export function registerOperations(app: FastifyInstance, options: OperationRoutesOptions): void {
  assertHandlersMatchContract(options.handlers);
  registerBinaryBodies(app);
  for (const operationId of Object.keys(operations) as OperationId[]) {
    const meta = operations[operationId];
    const { schemas, headerNames } = requestSchemas[operationId];
    const onRequest = meta.access ? { onRequest: requireAccess(options.authenticator, meta.access) } : {};

    if (meta.websocket) {
      registerWebSocketOperation(app, operationId, headerNames, schemas, onRequest, options.handlers[operationId] as unknown as AnyWebSocketHandler);
      continue;
    }

    const handler = options.handlers[operationId] as unknown as AnyHandler;
    const binaryBody = meta.binaryBody;
    const binaryResponse = meta.binaryResponse;
    if (meta.method !== 'GET' && binaryBody !== null && options.binaryBodyLimits[operationId] === undefined) {
      throw new Error(`No body limit for the binary operation ${operationId}.`);
    }
    app.route({
      method: meta.method,
      url: routePath(meta.path),
      schema: schemas,
      config: { operationId },
      ...onRequest,
      preParsing: bodyChecks(operationId, schemas, options.binaryBodyLimits[operationId]),
      ...(schemas.body === undefined ? {} : { preValidation: refuseNullBody }),
      handler: async (request, reply) => {
        const input = inputOf(request, headerNames);
        if (binaryBody !== null) input.body = (await binaryBodyOf(request, meta.binaryBodyTypes)) as never;
        const headers = input.headers as Record<string, string>;

        const key = headers[IDEMPOTENCY_KEY];
        if (!meta.idempotent || key === undefined || !request.principal) {
          const output = await handler(input);
          return send(reply, output, output.headers, binaryResponse);
        }
        const outcome = await options.idempotency.run(
          {
            userId: request.principal.userId,
            key,
            operationId,
            input: { params: request.params, query: request.query, body: request.body },
            requestId: request.id,
          },
          () => handler(input),
        );
        if (outcome.replayed) return send(reply, outcome.response, { 'idempotent-replayed': 'true' });
        return send(reply, outcome.response, outcome.response.headers);
      },
    });
  }
}

/**
 * A WebSocket operation (`x-websocket`, via @fastify/websocket, which must be registered first). The upgrade
 * request goes through the same `onRequest` auth and parameter validation as any route, then the handler's
 * `preUpgrade` (a `preHandler` hook): a failure in any of them is an ordinary problem response and the
 * connection is not upgraded. A plain GET without `Upgrade: websocket` is 400.
 */
function registerWebSocketOperation(
  app: FastifyInstance,
  operationId: OperationId,
  headerNames: string[],
  schemas: RequestSchemas,
  onRequest: object,
  handler: AnyWebSocketHandler,
): void {
  const meta = operations[operationId];
  app.route({
    method: 'GET',
    url: routePath(meta.path),
    schema: schemas,
    config: { operationId },
    ...onRequest,
    preHandler: async (request) => {
      if (!request.ws) return;
      const input = inputOf(request, headerNames);
      await handler.preUpgrade?.(input);
      request.webSocketInput = input;
    },
    handler: async () => {
      throw new ApiError('validation_failed', 'This operation is a WebSocket: send the request with Upgrade: websocket.');
    },
    wsHandler: (socket: WebSocket, request: FastifyRequest) => handler(socket, request.webSocketInput!),
  });
}
