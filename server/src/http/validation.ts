import { Ajv2020, type ErrorObject, type Options } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldError } from './errors.js';
import { escapePointer, unescapePointer } from './json-pointer.js';

/** The part of a request a schema validates, as Fastify names it. */
export type RequestPart = 'body' | 'querystring' | 'params' | 'headers';

function createAjv(options: Options): Ajv2020 {
  const ajv = new Ajv2020({
    strict: true,
    allErrors: true,
    allowUnionTypes: true,
    discriminator: true,
    keywords: ['example'],
    ...options,
  });
  formats.default(ajv);
  return ajv;
}

/** Registers the contract's `x-*` extensions found in `schema` as annotations, so strict mode accepts them. */
function allowExtensions(ajv: Ajv2020, schema: unknown): void {
  if (Array.isArray(schema)) {
    for (const item of schema) allowExtensions(ajv, item);
    return;
  }
  if (schema === null || typeof schema !== 'object') return;
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-') && !ajv.getKeyword(key)) ajv.addKeyword(key);
    allowExtensions(ajv, value);
  }
}

/**
 * Compiles the contract's request schemas (JSON Schema 2020-12). Path, query and header values arrive as strings,
 * so their validator coerces types (a single `?type=a` becomes `['a']`) and fills defaults; the body validator
 * takes the JSON as sent: a wrong type or an unknown field is an error, never silently fixed or dropped.
 */
export function contractValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const parameters = createAjv({ coerceTypes: 'array', useDefaults: true });
  const body = createAjv({ coerceTypes: false, useDefaults: false, removeAdditional: false });
  return ({ schema, httpPart }) => {
    const ajv = httpPart === 'body' ? body : parameters;
    allowExtensions(ajv, schema);
    return ajv.compile(schema as object);
  };
}

/** The JSON pointer of the value an error is about (a missing or extra property is pointed at, not its parent). */
function pointerOf(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const property =
    error.keyword === 'required' || error.keyword === 'dependentRequired'
      ? params.missingProperty
      : error.keyword === 'additionalProperties'
        ? params.additionalProperty
        : undefined;
  return typeof property === 'string' ? `${error.instancePath}/${escapePointer(property)}` : error.instancePath;
}

function messageOf(error: ErrorObject, part: RequestPart): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'dependentRequired':
      return `is required with ${String(params.property)}`;
    case 'additionalProperties':
      return part === 'body' ? 'is not allowed' : 'is not a known parameter';
    case 'enum':
      return `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}`;
    default:
      return error.message ?? 'is invalid';
  }
}

/**
 * Per-field errors from Ajv's: a JSON pointer into the body (`/role`, `/scopes/0`), or for the other parts the
 * parameter's name (`limit`, `idempotency-key`).
 */
export function fieldErrors(part: RequestPart, errors: readonly ErrorObject[]): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const error of errors) {
    const pointer = pointerOf(error);
    const field = part === 'body' ? pointer : unescapePointer(pointer.split('/')[1] ?? '');
    const message = messageOf(error, part);
    const key = `${field}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ field, message });
  }
  return out;
}

const partNames: Record<RequestPart, string> = {
  body: 'body',
  querystring: 'query parameters',
  params: 'path parameters',
  headers: 'headers',
};

/** A one-line summary for a problem's `detail`. */
export function validationDetail(part: RequestPart, errors: readonly FieldError[]): string {
  const list = errors.map((e) => (e.field ? `${e.field} ${e.message}` : e.message)).join('; ');
  return `Invalid request ${partNames[part]}: ${list}.`;
}
