import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import type { components } from '../../src/generated/types.js';
import { openapiDocument } from '../../src/generated/openapi.js';
import { operations, type OperationId } from '../../src/generated/operations.js';

/**
 * Validates response bodies against the contract (JSON Schema 2020-12): the schema the contract declares for an
 * operation's status and content type, or a named component schema. Failures throw with every schema error listed.
 */

const CONTRACT_ID = 'https://cloudphone.dev/contract';

const ajv = new Ajv2020({ allErrors: true, allowUnionTypes: true, strict: false });
formats.default(ajv);
ajv.addSchema(openapiDocument, CONTRACT_ID);

type JsonObject = Record<string, unknown>;

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

function at(pointer: string): unknown {
  let node: unknown = openapiDocument;
  for (const segment of pointer.slice(2).split('/')) {
    const key = segment.replace(/~1/g, '/').replace(/~0/g, '~');
    node = (node as JsonObject | undefined)?.[key];
  }
  return node;
}

const validators = new Map<string, ValidateFunction>();

function validatorAt(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (validate === undefined) {
    validate = ajv.compile({ $ref: `${CONTRACT_ID}${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}

function check(validate: ValidateFunction, value: unknown, what: string): void {
  if (validate(value)) return;
  const errors = (validate.errors ?? []).map(
    (e) => `  ${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
  );
  throw new Error(
    `${what} does not match the contract:\n${errors.join('\n')}\nvalue: ${JSON.stringify(value, null, 2)}`,
  );
}

export type SchemaName = keyof components['schemas'];

/** Throws unless `value` is valid against `components.schemas[name]`. */
export function expectSchema(name: SchemaName, value: unknown): void {
  check(validatorAt(`#/components/schemas/${name}`), value, name);
}

/** What the contract declares for one status of an operation: the content type and the body's schema pointer. */
export interface DeclaredResponse {
  contentType: string | null;
  schemaPointer: string | null;
}

/**
 * The contract's response for `status` of `operationId`, following a `$ref` to `components.responses`: the content
 * of `mediaType` when the status declares several (a report as JSON or CSV), else its first.
 */
export function declaredResponse(operationId: OperationId, status: number, mediaType?: string | null): DeclaredResponse | undefined {
  const meta = operations[operationId];
  let pointer = `#/paths/${escapePointer(meta.path)}/${meta.method.toLowerCase()}/responses/${status}`;
  let response = at(pointer) as JsonObject | undefined;
  if (response === undefined) return undefined;
  if (typeof response.$ref === 'string') {
    pointer = response.$ref;
    response = at(pointer) as JsonObject;
  }
  const content = response.content as JsonObject | undefined;
  const types = content === undefined ? [] : Object.keys(content);
  const contentType = types.find((type) => type === mediaType) ?? types[0];
  if (contentType === undefined) return { contentType: null, schemaPointer: null };
  return { contentType, schemaPointer: `${pointer}/content/${escapePointer(contentType)}/schema` };
}

/**
 * Throws unless a response is one the contract declares for `operationId`: the status is listed, the content type
 * matches (none for an empty response) and the body is valid against the declared schema.
 */
export function expectContractResponse(
  operationId: OperationId,
  response: { status: number; contentType: string | null; body: unknown },
): void {
  const mediaType = response.contentType?.split(';')[0]?.trim() ?? null;
  const declared = declaredResponse(operationId, response.status, mediaType);
  const what = `${operationId} ${response.status}`;
  if (declared === undefined) throw new Error(`${what}: the contract declares no such status`);
  if (mediaType !== declared.contentType) {
    throw new Error(`${what}: content type ${String(mediaType)}, the contract says ${String(declared.contentType)}`);
  }
  // A binary body (a file, a PNG) has no JSON to validate: its content type is all the contract says.
  const json = declared.contentType === null || /\bjson\b/.test(declared.contentType);
  if (declared.schemaPointer !== null && json) check(validatorAt(declared.schemaPointer), response.body, what);
}
