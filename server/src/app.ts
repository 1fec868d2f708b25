import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { ServerConfig } from './config.js';
import type { Database } from './db/database.js';
import { AllowedMethods } from './http/allowed-methods.js';
import type { Authenticator } from './http/auth.js';
import type { Handlers } from './http/handler.js';
import { registerEncodingChecks } from './http/encoding.js';
import { HEALTH_PATHS, registerHealth } from './http/health.js';
import { IdempotencyStore } from './http/idempotency.js';
import { registerMetrics } from './http/metrics.js';
import { ApiError } from './http/errors.js';
import { assertHandlersMatchContract, longestPathParameter, registerOperations } from './http/operations.js';
import { clientErrorHandler, frameworkErrorHandler, registerProblemHandling } from './http/problems.js';
import { registerReference } from './http/reference.js';
import { requestIdOf } from './http/request-id.js';
import { RequestLogController } from './http/request-log.js';
import { contractValidatorCompiler } from './http/validation.js';
import { WebSocketSessionLog } from './http/websocket-log.js';
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
  /**
   * Settles when the rest of the server has started (it listens first): requests wait for it, and are answered 503
   * `service_unavailable` if the start fails. `/readyz` answers 503 until then, `/healthz` at once.
   */
  started?: Promise<void>;
  /**
   * Why this node cannot serve yet, beyond its own start and its database (one sentence, the detail of `/readyz`'s
   * 503), or null once it can.
   */
  readiness?: () => string | null;
}

/**
 * The HTTP application: the contract's operations bound to the domains' handlers, plus `/healthz`, `/readyz`,
 * `/metrics`, `/openapi.json` and `/docs`. Every error is an `application/problem+json` response and every
 * response carries `X-Request-Id`. Throws if the handlers do not match the contract.
 */
export function buildApp(options: AppOptions): FastifyInstance {
  const { config, database, domains, clock } = options;
  const routes = new AllowedMethods();
  const webSocketSessions = new WebSocketSessionLog();
  let draining = false;
  const { started } = options;
  let start: 'starting' | 'started' | 'failed' = started === undefined ? 'started' : 'starting';
  started?.then(
    () => {
      start = 'started';
    },
    () => {
      start = 'failed';
    },
  );

  const app = Fastify({
    loggerInstance: options.logger ?? createLogger({ level: config.logLevel, node: config.nodeName }),
    logController: new RequestLogController(),
    genReqId: requestIdOf,
    requestIdHeader: false,
    bodyLimit: config.bodyLimitBytes,
    routerOptions: { maxParamLength: longestPathParameter() },
    trustProxy: config.trustProxy,
    // During shutdown, requests still arriving on open connections are served (and told to close the
    // connection) while /readyz answers 503, rather than Fastify answering them all with a bare 503.
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler(config.bodyLimitBytes),
    clientErrorHandler: clientErrorHandler((path) => routes.for(path)),
  });

  app.decorateRequest('principal', null);
  app.setValidatorCompiler(contractValidatorCompiler());
  // JSON is the only request body the API takes; anything else is 415 rather than a string to validate.
  app.removeContentTypeParser('text/plain');
  registerEncodingChecks(app);

  app.addHook('onRoute', (route) => routes.add(route.url, route.method));
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (draining) reply.header('connection', 'close');
    if (request.headers.upgrade !== undefined) webSocketSessions.upgrading(request);
    if (start !== 'started' && !HEALTH_PATHS.has(request.routeOptions.url ?? '')) {
      await started!.catch(() => {
        throw new ApiError('service_unavailable', 'The server failed to start.');
      });
    }
  });
  app.addHook('preClose', async () => {
    draining = true;
  });

  registerProblemHandling(app, {
    bodyLimitBytes: config.bodyLimitBytes,
    allowedMethods: (path) => routes.for(path),
  });
  database.onIdleConnectionError((error) => app.log.warn({ err: error }, 'an idle database connection failed'));
  registerHealth(app, {
    db: database.db,
    draining: () => draining,
    notReady: () => {
      if (start === 'starting') return 'The server is starting.';
      if (start === 'failed') return 'The server failed to start.';
      return options.readiness?.() ?? null;
    },
  });
  registerMetrics(app, { authenticator: domains.authenticator, node: config.nodeName });
  registerReference(app);
  assertHandlersMatchContract(domains.handlers);
  app.register(fastifyWebsocket, {
    errorHandler: closeOnError,
    preClose: closeWebSockets,
    options: { maxPayload: WEBSOCKET_MAX_PAYLOAD },
  });
  app.addHook('onReady', async function () {
    webSocketSessions.follow(this.websocketServer);
  });
  // In a child scope so that @fastify/websocket's route hook (it loads with the plugin) sees the routes.
  app.register(async (scope) => {
    registerOperations(scope, {
      handlers: domains.handlers,
      authenticator: domains.authenticator,
      idempotency: new IdempotencyStore(database.db, clock, config.idempotencyTtlSeconds),
      binaryBodyLimits: { uploadApp: config.maxAppBytes, pushDeviceFile: config.maxPushBytes },
    });
  });
  return app;
}

/** The largest WebSocket message accepted (shell input, ADB packets are far smaller). */
const WEBSOCKET_MAX_PAYLOAD = 16 * 1024 * 1024;
/** How long open WebSockets get to finish their closing handshake at shutdown before they are cut. */
const WEBSOCKET_CLOSE_GRACE_MS = 1000;

/** An error a WebSocket handler throws after the upgrade: an `error` frame, then close 1011. */
function closeOnError(this: FastifyInstance, error: Error, socket: WebSocket, request: { log: FastifyBaseLogger }): void {
  const known = error instanceof ApiError && error.status < 500;
  if (!known) request.log.error({ err: error }, 'websocket handler failed');
  else request.log.info({ err: error }, 'websocket handler failed');
  if (socket.readyState !== socket.OPEN) {
    socket.terminate();
    return;
  }
  const code = error instanceof ApiError ? error.code : 'internal_error';
  const detail = known ? error.message : 'The server failed; the error is logged.';
  socket.send(JSON.stringify({ type: 'error', code, detail }));
  socket.close(1011, code);
}

/** At shutdown: close every open WebSocket (1001), cutting those that do not finish the handshake in time. */
async function closeWebSockets(this: FastifyInstance): Promise<void> {
  const server = this.websocketServer;
  const closing = [...server.clients].map(
    (client) =>
      new Promise<void>((resolve) => {
        if (client.readyState === client.CLOSED) return resolve();
        client.once('close', () => resolve());
        const timer = setTimeout(() => client.terminate(), WEBSOCKET_CLOSE_GRACE_MS);
        timer.unref();
        client.once('close', () => clearTimeout(timer));
        client.close(1001, 'server shutting down');
      }),
  );
  await Promise.all(closing);
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
