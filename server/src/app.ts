import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { ServerConfig } from './config.js';
import type { Database } from './db/database.js';
import { AllowedMethods } from './http/allowed-methods.js';
import type { Authenticator } from './http/auth.js';
import type { Handlers } from './http/handler.js';
import { registerHealth } from './http/health.js';
import { IdempotencyStore } from './http/idempotency.js';
import { registerMetrics } from './http/metrics.js';
import { registerOperations } from './http/operations.js';
import { frameworkErrorHandler, registerProblemHandling } from './http/problems.js';
import { registerReference } from './http/reference.js';
import { requestIdOf } from './http/request-id.js';
import { RequestLogController } from './http/request-log.js';
import { contractValidatorCompiler } from './http/validation.js';
import { createLogger } from './logger.js';

/** What the HTTP layer needs from the domains: one handler per operation and a way to authenticate callers. */
export interface AppDomains {
  handlers: Handlers;
  authenticator: Authenticator;
}

export interface AppOptions {
  config: ServerConfig;
  database: Database;
  domains: AppDomains;
  clock: () => Date;
  /** Defaults to JSON lines on standard output at `config.logLevel`. */
  logger?: FastifyBaseLogger;
}

/**
 * The HTTP application: the contract's operations bound to the domains' handlers, plus `/healthz`, `/readyz`,
 * `/metrics`, `/openapi.json` and `/docs`. Every error is an `application/problem+json` response and every
 * response carries `X-Request-Id`. Throws if the handlers do not match the contract.
 */
export function buildApp(options: AppOptions): FastifyInstance {
  const { config, database, domains, clock } = options;
  const routes = new AllowedMethods();
  let draining = false;

  const app = Fastify({
    loggerInstance: options.logger ?? createLogger({ level: config.logLevel }),
    logController: new RequestLogController(),
    genReqId: requestIdOf,
    requestIdHeader: false,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    // During shutdown, requests still arriving on open connections are served (and told to close the
    // connection) while /readyz answers 503, rather than Fastify answering them all with a bare 503.
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler(config.bodyLimitBytes),
  });

  app.decorateRequest('principal', null);
  app.setValidatorCompiler(contractValidatorCompiler());
  // JSON is the only request body the API takes; anything else is 415 rather than a string to validate.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRoute', (route) => routes.add(route.url, route.method));
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (draining) reply.header('connection', 'close');
  });
  app.addHook('preClose', async () => {
    draining = true;
  });

  registerProblemHandling(app, {
    bodyLimitBytes: config.bodyLimitBytes,
    allowedMethods: (path) => routes.for(path),
  });
  registerHealth(app, { db: database.db, draining: () => draining });
  registerMetrics(app, { authenticator: domains.authenticator });
  registerReference(app);
  registerOperations(app, {
    handlers: domains.handlers,
    authenticator: domains.authenticator,
    idempotency: new IdempotencyStore(database.db, clock, config.idempotencyTtlSeconds),
  });
  return app;
}
