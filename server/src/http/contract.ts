import { openapiDocument } from '../generated/openapi.js';
import { operations, type OperationId } from '../generated/operations.js';

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

interface ParameterObject {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonObject;
}

function pointer(ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`Only local $refs are supported: ${ref}`);
  let node: unknown = openapiDocument;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(key in node)) throw new Error(`Unresolvable $ref ${ref}`);
    node = (node as JsonObject)[key];
  }
  return node;
}

/** Resolves every `$ref` below `value`, deeply. The contract has no recursive schemas; a cycle is an error. */
function deref<T>(value: T, seen: readonly string[] = []): T {
  if (Array.isArray(value)) return value.map((v: unknown) => deref(v, seen)) as T;
  if (value === null || typeof value !== 'object') return value;
  const { $ref, ...rest } = value as JsonObject;
  if (typeof $ref === 'string') {
    if (seen.includes($ref)) throw new Error(`Recursive $ref ${$ref}`);
    const target = deref(pointer($ref), [...seen, $ref]) as JsonObject;
    return (Object.keys(rest).length > 0 ? { ...target, ...deref(rest, seen) } : target) as T;
  }
  return Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, deref(v, seen)])) as T;
}

function objectSchema(
  parameters: ParameterObject[],
  closed: boolean,
  key: (name: string) => string = (name) => name,
): JsonObject | undefined {
  if (parameters.length === 0) return undefined;
  const required = parameters.filter((p) => p.required).map((p) => key(p.name));
  return {
    type: 'object',
    properties: Object.fromEntries(parameters.map((p) => [key(p.name), p.schema ?? {}])),
    ...(required.length > 0 ? { required } : {}),
    ...(closed ? { additionalProperties: false } : {}),
  };
}

/**
 * What the contract says a request to `operationId` looks like. Path-level parameters apply unless the operation
 * redefines them. Unknown query parameters are rejected (a mistyped filter must not silently list everything);
 * headers are open, since clients and proxies add their own.
 */
export function operationRequest(operationId: OperationId): OperationRequest {
  const meta = operations[operationId];
  const paths = openapiDocument.paths as Record<string, JsonObject>;
  const item = deref(paths[meta.path]!);
  const operation = item[meta.method.toLowerCase()] as JsonObject;

  const byKey = new Map<string, ParameterObject>();
  for (const p of [
    ...((item.parameters ?? []) as ParameterObject[]),
    ...((operation.parameters ?? []) as ParameterObject[]),
  ]) {
    byKey.set(`${p.in}:${p.name}`, p);
  }
  const parameters = [...byKey.values()];
  const located = (where: ParameterObject['in']) => parameters.filter((p) => p.in === where);
  if (located('cookie').length > 0) throw new Error(`${operationId}: cookie parameters are not supported`);

  const schemas: RequestSchemas = {};
  const params = objectSchema(located('path'), true);
  const querystring = objectSchema(located('query'), true);
  // Node gives header names in lower case.
  const headers = objectSchema(located('header'), false, (name) => name.toLowerCase());
  if (params) schemas.params = params;
  if (querystring) schemas.querystring = querystring;
  if (headers) schemas.headers = headers;

  const requestBody = operation.requestBody as
    { required?: boolean; content: Record<string, { schema?: JsonObject }> } | undefined;
  if (requestBody) {
    const media = requestBody.content['application/json'];
    if (!media || Object.keys(requestBody.content).length !== 1) {
      throw new Error(`${operationId}: only application/json request bodies are supported`);
    }
    const schema = media.schema ?? {};
    schemas.body = requestBody.required ? schema : { anyOf: [{ type: 'null' }, schema] };
  }

  return { schemas, headerNames: located('header').map((p) => p.name) };
}

/** `/v1/users/{userId}` → `/v1/users/:userId`. */
export function routePath(contractPath: string): string {
  return contractPath.replace(/\{([^}]+)\}/g, ':$1');
}
