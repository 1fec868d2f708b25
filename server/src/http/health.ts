import type { FastifyInstance } from 'fastify';
import { sql, type Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { ApiError } from './errors.js';
import { sendProblem } from './problems.js';

/** Seconds a load balancer is told to wait before asking a server that is not ready again. */
const NOT_READY_RETRY_AFTER = 5;

export interface HealthOptions {
  db: Kysely<DB>;
  /** True once shutdown has begun. */
  draining(): boolean;
}

/** `GET /healthz` (the process answers) and `GET /readyz` (it can serve: the database answers, not shutting down). */
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
        new ApiError('service_unavailable', 'The database does not answer.', { retryAfter: NOT_READY_RETRY_AFTER }),
      );
    }
    return { status: 'ok' };
  });
}
