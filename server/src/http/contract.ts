type JsonObject = Record<string, unknown>;

/** Fastify route schemas for one operation, each a JSON Schema with every `$ref` resolved. */
export interface RequestSchemas {
  params?: JsonObject;
  querystring?: JsonObject;
  headers?: JsonObject;
  body?: JsonObject;
}

export interface OperationRequest {
  schemas: RequestSchemas;
  /** The contract's header parameters, as it spells them (`Idempotency-Key`). */
  headerNames: string[];
}

/** `/v1/users/{userId}` → `/v1/users/:userId`. */
export function routePath(contractPath: string): string {
  return contractPath.replace(/\{([^}]+)\}/g, ':$1');
}
