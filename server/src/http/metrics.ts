import type { FastifyInstance } from 'fastify';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { requireAccess, type Authenticator } from './auth.js';
import { RequestMetrics } from './request-metrics.js';

export interface MetricsOptions {
  authenticator: Authenticator;
  /** The node's name: the `node` label of every metric. */
  node: string;
}

/**
 * Prometheus metrics at `GET /metrics`: the process defaults plus a request counter and a latency histogram by
 * route, every line labelled with the node. Each app has its own registry and its own request metrics. Scraping needs an admin credential with the read scope, because the
 * numbers reveal who uses the server how much; a scraper uses an admin API token limited to `read`.
 */
export function registerMetrics(app: FastifyInstance, options: MetricsOptions): void {
  const registry = new Registry();
  registry.setDefaultLabels({ node: options.node });
  collectDefaultMetrics({ register: registry });
  const requests = new RequestMetrics(options.node);

  app.addHook('onResponse', async (request, reply) => {
    requests.observe(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });

  app.get(
    '/metrics',
    { onRequest: requireAccess(options.authenticator, { role: 'admin', scope: 'read' }) },
    async (_, reply) => reply.type(registry.contentType).send(`${await registry.metrics()}\n${requests.render()}`),
  );
}
