import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { operations, type OperationId } from '../generated/operations.js';
import { requireAccess, type Authenticator } from './auth.js';
import { requestSchemas } from '../generated/request-schemas.js';
import { routePath } from './contract.js';
import type { HandlerInput, Handlers, RequestContext } from './handler.js';
import type { IdempotencyStore, OperationResponse } from './idempotency.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The contract operation a route serves; absent on infrastructure routes. */
    operationId?: OperationId;
  }
}

type AnyHandler = (
  input: HandlerInput<OperationId>,
) => Promise<OperationResponse & { headers?: Record<string, string> }>;

const IDEMPOTENCY_KEY = 'Idempotency-Key';

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

function send(reply: FastifyReply, response: OperationResponse, headers: Record<string, string> = {}): FastifyReply {
  reply.code(response.status).headers(headers);
  if (response.body === undefined) return reply.send();
  return reply.type(response.status >= 400 ? 'application/problem+json' : 'application/json').send(response.body);
}

export interface OperationRoutesOptions {
  handlers: Handlers;
  authenticator: Authenticator;
  idempotency: IdempotencyStore;
}

/**
 * Registers one route per contract operation: the path and method from the contract, request validation from
 * its schemas, authentication and the operation's `x-access` before anything is read, `Idempotency-Key` handling
 * for operations that declare it, and the operation's handler.
 */
export function registerOperations(app: FastifyInstance, options: OperationRoutesOptions): void {
  assertHandlersMatchContract(options.handlers);
  for (const operationId of Object.keys(operations) as OperationId[]) {
    const meta = operations[operationId];
    const { schemas, headerNames } = requestSchemas[operationId];
    const handler = options.handlers[operationId] as unknown as AnyHandler;

    app.route({
      method: meta.method,
      url: routePath(meta.path),
      schema: schemas,
      config: { operationId },
      ...(meta.access ? { onRequest: requireAccess(options.authenticator, meta.access) } : {}),
      handler: async (request, reply) => {
        const headers = Object.fromEntries(
          headerNames.flatMap((name) => {
            const value = request.headers[name.toLowerCase()];
            return typeof value === 'string' ? [[name, value]] : [];
          }),
        );
        const input = {
          params: request.params,
          query: request.query,
          headers,
          body: request.body,
          ctx: contextOf(request),
        } as HandlerInput<OperationId>;

        const key = headers[IDEMPOTENCY_KEY];
        if (!meta.idempotent || key === undefined || !request.principal) {
          const output = await handler(input);
          return send(reply, output, output.headers);
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
