import type { FastifyInstance } from 'fastify';
import { apiReferenceHtml } from '../generated/api-reference.js';
import { openapiDocument } from '../generated/openapi.js';

/** The page is self-contained: it may load nothing, and only its own inline styles apply. */
const DOCS_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/** `GET /openapi.json` (the contract) and `GET /docs` (the API reference rendered from it). */
export function registerReference(app: FastifyInstance): void {
  const contract = JSON.stringify(openapiDocument);
  app.get('/openapi.json', async (_, reply) => reply.type('application/json').send(contract));
  app.get('/docs', async (_, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', DOCS_POLICY).send(apiReferenceHtml),
  );
}
