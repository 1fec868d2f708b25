import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { requireAccess, type Authenticator } from './auth.js';

export interface MetricsOptions {
  authenticator: Authenticator;
}

/**
 * Prometheus metrics at `GET /metrics`: the process defaults plus a request counter and a latency histogram by
 * route. Each app has its own registry. Scraping needs an admin credential with the read scope, because the
 * numbers reveal who uses the server how much; a scraper uses an admin API token limited to `read`.
 */
export function registerMetrics(app: FastifyInstance, options: MetricsOptions): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'cloudphone_http_requests_total',
    help: 'HTTP requests answered, by method, route and status.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'cloudphone_http_request_duration_seconds',
    help: 'Time to answer HTTP requests, by method and route.',
    labelNames: ['method', 'route'],
    registers: [registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched' };
    requests.inc({ ...labels, status: String(reply.statusCode) });
    duration.observe(labels, reply.elapsedTime / 1000);
  });

  app.get(
    '/metrics',
    { onRequest: requireAccess(options.authenticator, { role: 'admin', scope: 'read' }) },
    async (_, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
}
