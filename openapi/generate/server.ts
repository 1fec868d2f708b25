import openapiTS, { astToString, type OpenAPI3 } from 'openapi-typescript';
import type { Emitter, GeneratedFile } from './main.js';
import { renderApiReference } from './server-reference.js';
import { generatedHeader, type JsonSchema, type Operation, type Parameter, type Spec } from './spec.js';

/** openapi-typescript's rendering of the contract: `paths`, `components` and `operations` types. */
export async function contractTypes(spec: Spec): Promise<string> {
  const ast = await openapiTS(structuredClone(spec.document) as OpenAPI3, { alphabetize: true, emptyObjectsUnknown: true, defaultNonNullable: false });
  return astToString(ast);
}

function operationTable(spec: Spec): string {
  const rows = [...spec.operations]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((op) => {
      const entry = {
        method: op.method,
        path: op.path,
        tag: op.tag,
        access: op.access,
        successStatus: op.success.status,
        idempotent: op.idempotent,
        paginated: op.paginated,
        websocket: op.websocket,
        binaryBody: op.body?.binary ? op.body.contentType : null,
        binaryBodyTypes: op.body?.binary ? op.body.contentTypes : [],
        binaryResponse: op.success.binary ? op.success.contentType : null,
      };
      return `  ${op.id}: ${JSON.stringify(entry)},`;
    });
  return [
    generatedHeader(spec),
    "import type { Access } from '../http/access.js';",
    '',
    'export interface OperationMeta {',
    "  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';",
    '  /** The path as in the contract, `{param}` style. */',
    '  path: string;',
    '  tag: string;',
    '  /** `null` for public operations. */',
    '  access: Access | null;',
    '  successStatus: number;',
    '  idempotent: boolean;',
    '  paginated: boolean;',
    '  /** Upgrades to a WebSocket (`x-websocket`); `successStatus` is 101. */',
    '  websocket: boolean;',
    '  /** The request body\'s content type when it is raw bytes (the handler gets the unbuffered stream), else `null`. */',
    '  binaryBody: string | null;',
    '  /** Every content type a binary request body may have (`binaryBody` first); empty for other operations. */',
    '  binaryBodyTypes: readonly string[];',
    '  /** The success response\'s content type when it is raw bytes (the handler returns a stream or buffer), else `null`. */',
    '  binaryResponse: string | null;',
    '}',
    '',
    'export const operations = {',
    ...rows,
    '} as const satisfies Record<string, OperationMeta>;',
    '',
    'export type OperationId = keyof typeof operations;',
    '',
  ].join('\n');
}

function objectSchema(
  parameters: Parameter[],
  closed: boolean,
  key: (name: string) => string = (name) => name,
): JsonSchema | undefined {
  if (parameters.length === 0) return undefined;
  const required = parameters.filter((p) => p.required).map((p) => key(p.name));
  return {
    type: 'object',
    properties: Object.fromEntries(parameters.map((p) => [key(p.name), p.schema])),
    ...(required.length > 0 ? { required } : {}),
    ...(closed ? { additionalProperties: false } : {}),
  };
}

/**
 * The Fastify request schemas of one operation, every `$ref` resolved. Unknown path and query parameters are
 * rejected (a mistyped filter must not silently list everything); headers stay open, since clients and proxies add
 * their own, and are keyed in lower case as Node gives them. An optional body may also be absent (`null`).
 */
function requestOf(op: Operation): { schemas: Record<string, JsonSchema>; headerNames: string[] } {
  const located = (where: Parameter['in']) => op.parameters.filter((p) => p.in === where);
  const schemas: Record<string, JsonSchema> = {};
  const params = objectSchema(located('path'), true);
  const querystring = objectSchema(located('query'), true);
  const headers = objectSchema(located('header'), false, (name) => name.toLowerCase());
  if (params) schemas.params = params;
  if (querystring) schemas.querystring = querystring;
  if (headers) schemas.headers = headers;
  if (op.body && op.body.binary) {
    // Raw bytes reach the handler as a stream; there is nothing to validate.
  } else if (op.body) {
    if (op.body.contentType !== 'application/json') {
      throw new Error(`${op.id}: only application/json and binary request bodies are supported`);
    }
    schemas.body = op.body.required ? op.body.schema : { anyOf: [{ type: 'null' }, op.body.schema] };
  }
  return { schemas, headerNames: located('header').map((p) => p.name) };
}

function requestSchemasModule(spec: Spec): string {
  const entries = [...spec.operations]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((op) => [op.id, requestOf(op)] as const);
  return [
    generatedHeader(spec),
    "import type { OperationRequest } from '../http/contract.js';",
    "import type { OperationId } from './operations.js';",
    '',
    '/** What the contract says a request to each operation looks like, as Fastify route schemas. */',
    `export const requestSchemas: Record<OperationId, OperationRequest> = ${JSON.stringify(Object.fromEntries(entries), null, 2)};`,
    '',
  ].join('\n');
}

function documentModule(spec: Spec): string {
  return [
    generatedHeader(spec),
    '/** The contract as a JSON document: served at /openapi.json and the source of request validation. */',
    `export const openapiDocument: Record<string, unknown> = ${JSON.stringify(spec.document, null, 2)};`,
    '',
  ].join('\n');
}

function apiReferenceModule(spec: Spec): string {
  const lines = renderApiReference(spec).split('\n');
  return [
    generatedHeader(spec),
    '/** The API reference page served at /docs: self-contained HTML rendered from the contract. */',
    'export const apiReferenceHtml: string = [',
    ...lines.map((line) => `  ${JSON.stringify(line)},`),
    "].join('\\n');",
    '',
  ].join('\n');
}

export const emitServer: Emitter = {
  owns: ['server/src/generated'],
  async emit(spec: Spec): Promise<GeneratedFile[]> {
    return [
      { path: 'server/src/generated/types.ts', content: `${generatedHeader(spec)}\n${await contractTypes(spec)}` },
      { path: 'server/src/generated/operations.ts', content: operationTable(spec) },
      { path: 'server/src/generated/openapi.ts', content: documentModule(spec) },
      { path: 'server/src/generated/request-schemas.ts', content: requestSchemasModule(spec) },
      { path: 'server/src/generated/api-reference.ts', content: apiReferenceModule(spec) },
    ];
  },
};
