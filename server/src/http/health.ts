import type { FastifyInstance } from 'fastify';
import { sql, type Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { ApiError } from './errors.js';
import { sendProblem } from './problems.js';

/** Seconds a load balancer is told to wait before asking a server that is not ready again. */
const NOT_READY_RETRY_AFTER = 5;

/** The paths of the health checks, which answer at once, also while the server is still starting. */
export const HEALTH_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

export interface HealthOptions {
  db: Kysely<DB>;
  /** True once shutdown has begun. */
  draining(): boolean;
  /** Why the node cannot serve yet, as one sentence for the 503's detail; null once it can. */
  notReady?: () => string | null;
}

/**
 * `GET /healthz` (the process answers) and `GET /readyz` (it can serve: not shutting down, the database answers,
 * and nothing in `notReady` holds it back). A database that does not answer is reported first, as the likely cause
 * of anything else that is not ready.
 */
export function registerHealth(app: FastifyInstance, options: HealthOptions): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    if (options.draining()) {
      return sendProblem(
        reply,
        new ApiError('service_unavailable', 'The server is shutting down.', { retryAfter: NOT_READY_RETRY_AFTER }),
      );
    }
    try {
      await sql`select 1`.execute(options.db);
    } catch (error) {
      request.log.error({ err: error }, 'readiness check: the database does not answer');
      return sendProblem(
        reply,
        new ApiError('database_unavailable', 'The database does not answer.', { retryAfter: NOT_READY_RETRY_AFTER }),
      );
    }
    const reason = options.notReady?.() ?? null;
    if (reason !== null) {
      return sendProblem(reply, new ApiError('service_unavailable', reason, { retryAfter: NOT_READY_RETRY_AFTER }));
    }
    return { status: 'ok' };
  });
}
