import type { Emitter, GeneratedFile } from './main.js';
import { contractTypes } from './server.js';
import { generatedHeader, type JsonSchema, type Operation, type Parameter, type Spec } from './spec.js';

const SCHEMA_REF = '#/components/schemas/';
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const RESERVED_ARGUMENTS = new Set(['body', 'query', 'options']);

function pascal(word: string): string {
  return word
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');
}

function camel(word: string): string {
  return word[0]!.toLowerCase() + word.slice(1);
}

/** A JSDoc block from lines of text (an empty string is a blank line), indented by `indent`. */
function docComment(lines: string[], indent = ''): string[] {
  const safe = lines.flatMap((line) => line.split('\n')).map((line) => line.replace(/\*\//g, '*\\/').trimEnd());
  while (safe.length > 0 && safe[safe.length - 1] === '') safe.pop();
  if (safe.length === 0) return [];
  if (safe.length === 1) return [`${indent}/** ${safe[0]} */`];
  return [`${indent}/**`, ...safe.map((line) => (line ? `${indent} * ${line}` : `${indent} *`)), `${indent} */`];
}

/** A TypeScript string literal. */
function str(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A JavaScript literal for an example value: single-quoted strings, bare keys where possible, wrapped when long. */
function literal(value: unknown, indent = ''): string {
  if (typeof value === 'string') return str(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const inner = `${indent}  `;
  const entries = Array.isArray(value)
    ? value.map((item) => literal(item, inner))
    : Object.entries(value).map(([key, item]) => `${IDENTIFIER.test(key) ? key : str(key)}: ${literal(item, inner)}`);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{ ', ' }'];
  if (entries.length === 0) return Array.isArray(value) ? '[]' : '{}';
  const flat = `${open}${entries.join(', ')}${close}`;
  if (flat.length + indent.length <= 80 && !flat.includes('\n')) return flat;
  return `${open.trim()}\n${entries.map((entry) => `${inner}${entry},`).join('\n')}\n${indent}${close.trim()}`;
}

/** The component schema a `$ref` names, or `null` for an inline schema. */
function schemaName(schema: JsonSchema | null | undefined): string | null {
  const ref = schema?.$ref;
  return typeof ref === 'string' && ref.startsWith(SCHEMA_REF) ? ref.slice(SCHEMA_REF.length) : null;
}

function componentSchemas(spec: Spec): Record<string, JsonSchema> {
  return (spec.document.components?.schemas ?? {}) as Record<string, JsonSchema>;
}

/** The schema of a paginated operation's `data` items, `$ref`s as written. */
function pageItemSchema(spec: Spec, op: Operation): JsonSchema | undefined {
  const name = schemaName(op.success.schemaRef);
  const page = name ? componentSchemas(spec)[name] : op.success.schemaRef;
  const data = (page?.properties as Record<string, JsonSchema> | undefined)?.data;
  return data?.items as JsonSchema | undefined;
}

function byId(spec: Spec): Operation[] {
  return [...spec.operations].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function queryParams(op: Operation): Parameter[] {
  return op.parameters.filter((p) => p.in === 'query');
}

function pathParams(op: Operation): Parameter[] {
  const byName = new Map(op.parameters.filter((p) => p.in === 'path').map((p) => [p.name, p]));
  return [...op.path.matchAll(/\{([^}]+)\}/g)].map(([, name]) => {
    const param = byName.get(name!);
    if (!param) throw new Error(`${op.id}: path parameter {${name}} is not declared`);
    if (!IDENTIFIER.test(param.name) || RESERVED_ARGUMENTS.has(param.name)) {
      throw new Error(`${op.id}: path parameter ${param.name} cannot be an SDK argument name`);
    }
    return param;
  });
}

/** A schema's description, or for an `allOf` without one, the description of its last part that has one. */
function schemaDescription(schema: JsonSchema): string[] {
  if (typeof schema.description === 'string') return [schema.description];
  const parts = Array.isArray(schema.allOf) ? (schema.allOf as JsonSchema[]) : [];
  return parts.flatMap(schemaDescription).slice(-1);
}

function modelsModule(spec: Spec): string {
  const names = Object.keys(componentSchemas(spec)).sort();
  const lines = [generatedHeader(spec), "import type { components } from './types.js';", ''];
  for (const name of names) {
    lines.push(...docComment(schemaDescription(componentSchemas(spec)[name]!)));
    lines.push(`export type ${name} = components['schemas'][${str(name)}];`);
  }
  return `${lines.join('\n')}\n`;
}

function tableEntry(op: Operation): string[] {
  const query = queryParams(op).map((p) => {
    const array = p.schema.type === 'array';
    return `{ name: ${str(p.name)}, array: ${array}, explode: ${p.explode} }`;
  });
  return [
    `  ${op.id}: {`,
    `    method: ${str(op.method)},`,
    `    path: ${str(op.path)},`,
    `    pathParams: [${pathParams(op)
      .map((p) => str(p.name))
      .join(', ')}],`,
    query.length ? `    queryParams: [\n${query.map((q) => `      ${q},`).join('\n')}\n    ],` : '    queryParams: [],',
    `    hasBody: ${op.body !== null},`,
    `    bodyRequired: ${op.body?.required ?? false},`,
    `    authenticated: ${op.access !== null},`,
    `    idempotent: ${op.idempotent},`,
    `    paginated: ${op.paginated},`,
    `    successStatus: ${op.success.status},`,
    `    websocket: ${op.websocket},`,
    `    binaryBody: ${op.body?.binary ? str(op.body.contentType) : 'null'},`,
    `    binaryResponse: ${op.success.binary && op.success.contentType ? str(op.success.contentType) : 'null'},`,
    '  },',
  ];
}

function contractPath(op: Operation): string {
  return `Contract[${str(op.id)}]`;
}

function paramsType(op: Operation): string {
  const c = contractPath(op);
  const fields: string[] = [];
  if (pathParams(op).length) fields.push(`path: ${c}['parameters']['path'];`);
  const query = queryParams(op);
  if (query.length) {
    fields.push(`query${query.some((p) => p.required) ? '' : '?'}: ${c}['parameters']['query'];`);
  }
  const headers = op.parameters.filter((p) => p.in === 'header');
  if (headers.length) {
    fields.push(`headers${headers.some((p) => p.required) ? '' : '?'}: ${c}['parameters']['header'];`);
  }
  if (op.body?.binary) {
    fields.push(op.body.required ? 'body: BinaryBody;' : 'body?: BinaryBody;');
  } else if (op.body) {
    const ct = str(op.body.contentType);
    fields.push(
      op.body.required
        ? `body: ${c}['requestBody']['content'][${ct}];`
        : `body?: NonNullable<${c}['requestBody']>['content'][${ct}];`,
    );
  }
  if (fields.length === 0) return 'Record<string, never>';
  return `{\n${fields.map((f) => `      ${f}`).join('\n')}\n    }`;
}

function resultType(op: Operation): string {
  const { status, contentType } = op.success;
  if (op.websocket) return 'never';
  if (op.success.binary) return 'BinaryResponse';
  return contentType ? `${contractPath(op)}['responses'][${status}]['content'][${str(contentType)}]` : 'void';
}

function operationsModule(spec: Spec): string {
  const ops = byId(spec);
  const paginated = ops.filter((op) => op.paginated);
  return [
    generatedHeader(spec),
    "import type { BinaryBody, BinaryResponse } from '../core/binary.js';",
    "import type { operations as Contract } from './types.js';",
    '',
    '/** How one query parameter is sent. */',
    'export interface QueryParamMeta {',
    '  name: string;',
    '  /** The value is an array. */',
    '  array: boolean;',
    '  /** Arrays go as repeated keys (`type=a&type=b`) when true, comma-joined (`type=a,b`) when false. */',
    '  explode: boolean;',
    '}',
    '',
    '/** What the client needs to know to send an operation and handle its response. */',
    'export interface OperationMeta {',
    "  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';",
    '  /** The path as in the contract, `{param}` style. */',
    '  path: string;',
    '  /** Path parameter names, in path order. */',
    '  pathParams: readonly string[];',
    '  queryParams: readonly QueryParamMeta[];',
    '  hasBody: boolean;',
    '  bodyRequired: boolean;',
    "  /** Sends `Authorization`; false for public operations (logging in, refreshing, logging out). */",
    '  authenticated: boolean;',
    '  /** Takes an `Idempotency-Key` header, so retrying it is safe. */',
    '  idempotent: boolean;',
    '  /** Takes `cursor` and answers `{ data, nextCursor }`. */',
    '  paginated: boolean;',
    '  successStatus: number;',
    '  /** Upgrades to a WebSocket (`x-websocket`): open it with `openWebSocket`, not `request`. */',
    '  websocket: boolean;',
    '  /** The request body\'s content type when the body is raw bytes (`BinaryBody`), else `null`. */',
    '  binaryBody: string | null;',
    '  /** The success response\'s content type when it is raw bytes (a `BinaryResponse`), else `null`. */',
    '  binaryResponse: string | null;',
    '}',
    '',
    '/** Every operation of the contract, by operationId. */',
    'export const operations = {',
    ...ops.flatMap(tableEntry),
    '} as const satisfies Record<string, OperationMeta>;',
    '',
    'export type OperationId = keyof typeof operations;',
    '',
    '/** The parameters (`path`, `query`, `headers`, `body`) and the result of each operation. */',
    'export interface OperationTypes {',
    ...ops.flatMap((op) => [
      `  ${op.id}: {`,
      `    params: ${paramsType(op)};`,
      `    result: ${resultType(op)};`,
      '  };',
    ]),
    '}',
    '',
    '/** The parameters `request` takes for an operation. */',
    "export type ParamsOf<Id extends OperationId> = OperationTypes[Id]['params'];",
    '',
    '/** What an operation resolves to (`void` for 204 responses). */',
    "export type ResultOf<Id extends OperationId> = OperationTypes[Id]['result'];",
    '',
    '/** The query parameters of an operation. */',
    'export type QueryOf<Id extends OperationId> = ParamsOf<Id> extends { query?: infer Query } ? NonNullable<Query> : never;',
    '',
    '/** The request body of an operation. */',
    'export type BodyOf<Id extends OperationId> = ParamsOf<Id> extends { body?: infer Body } ? Body : never;',
    '',
    '/** The item type of each paginated operation. */',
    'export interface PaginatedOperations {',
    ...paginated.map(
      (op) => `  ${op.id}: ${contractPath(op)}['responses'][${op.success.status}]['content'][${str(op.success.contentType ?? '')}]['data'][number];`,
    ),
    '}',
    '',
    'export type PaginatedOperationId = keyof PaginatedOperations;',
    '',
    '/** The type of the items on the pages of a paginated operation. */',
    'export type PageItemOf<Id extends PaginatedOperationId> = PaginatedOperations[Id];',
    '',
  ].join('\n');
}

interface Argument {
  name: string;
  type: string;
  optional: boolean;
  doc: string;
  example: string | null;
}

interface Method {
  op: Operation;
  args: Argument[];
  returns: string;
  /** The model the method resolves to (or yields, for lists), naming the variable in its example. */
  resultModel: string | null;
  models: string[];
}

function pathParamType(op: Operation, param: Parameter): string {
  if (param.schema.type === 'string') return 'string';
  if (param.schema.type === 'integer' || param.schema.type === 'number') return 'number';
  return `ParamsOf<${str(op.id)}>['path'][${str(param.name)}]`;
}

function resourceMethod(spec: Spec, op: Operation): Method {
  const models: string[] = [];
  const named = (schema: JsonSchema | null | undefined, fallback: string): string => {
    const name = schemaName(schema);
    if (!name) return fallback;
    models.push(name);
    return name;
  };

  const args: Argument[] = pathParams(op).map((p) => ({
    name: p.name,
    type: pathParamType(op, p),
    optional: false,
    doc: p.description,
    example: literal(p.example ?? `<${p.name}>`),
  }));
  if (op.body?.binary) {
    args.push({
      name: 'body',
      type: 'BinaryBody',
      optional: !op.body.required,
      doc: `The ${op.body.contentType} body: bytes, a string, or a stream (a streamed call is not retried).`,
      example: "createReadStream('./file')",
    });
  } else if (op.body) {
    const type = named(op.body.schemaRef, `BodyOf<${str(op.id)}>`);
    args.push({
      name: 'body',
      type,
      optional: !op.body.required,
      doc: 'The request body.',
      example: literal(op.body.example ?? {}),
    });
  }
  const query = queryParams(op);
  if (query.length) {
    const filter = query.find((p) => p.name !== 'cursor' && p.name !== 'limit' && p.example !== undefined);
    args.push({
      name: 'query',
      type: `QueryOf<${str(op.id)}>`,
      optional: !query.some((p) => p.required),
      doc: `Query parameters: ${query.map((p) => `\`${p.name}\``).join(', ')}.`,
      example: filter ? literal({ [filter.name]: filter.example }) : query.some((p) => p.required) ? '{}' : null,
    });
  }
  args.push({
    name: 'options',
    type: 'RequestOptions',
    optional: true,
    doc: 'Per-request timeout, abort signal, retries, idempotency key and headers.',
    example: null,
  });
  let laterRequired = false;
  for (const arg of [...args].reverse()) {
    if (laterRequired) arg.optional = false;
    laterRequired ||= !arg.optional;
  }

  const resultSchema = op.paginated ? pageItemSchema(spec, op) : op.success.schemaRef;
  const resultModel = op.success.binary ? null : op.paginated || op.success.contentType ? schemaName(resultSchema) : null;
  let returns = 'Promise<void>';
  if (op.success.binary) returns = 'Promise<BinaryResponse>';
  else if (op.paginated) returns = `PagePromise<${named(resultSchema, `PageItemOf<${str(op.id)}>`)}>`;
  else if (op.success.contentType) returns = `Promise<${named(resultSchema, `ResultOf<${str(op.id)}>`)}>`;
  return { op, args, returns, resultModel, models };
}

function exampleCall(m: Method): string[] {
  const { op } = m;
  const call = `cp.${op.sdk.namespace}.${op.sdk.method}(${m.args
    .flatMap((a) => (a.example === null ? [] : [a.example]))
    .join(', ')})`;
  if (op.paginated) {
    const item = m.resultModel ? camel(m.resultModel) : 'item';
    return [`for await (const ${item} of ${call}) {`, `  console.log(${item});`, '}'];
  }
  if (!op.success.contentType) return [`await ${call};`];
  if (op.success.binary) return [`const response = await ${call};`, "await response.toFile('./out');"];
  return [`const ${m.resultModel ? camel(m.resultModel) : 'result'} = await ${call};`];
}

function methodSource(m: Method): string[] {
  const { op } = m;
  const doc = [op.summary];
  if (op.description) doc.push('', op.description.trim());
  doc.push('');
  for (const arg of m.args) doc.push(`@param ${arg.name} ${arg.doc}`.trimEnd());
  doc.push('', '@example', '```ts', ...exampleCall(m), '```');

  const signature = m.args.map((a) => `${a.name}${a.optional ? '?' : ''}: ${a.type}`).join(', ');
  const params: string[] = [];
  const path = pathParams(op).map((p) => p.name);
  if (path.length) params.push(`path: { ${path.join(', ')} }`);
  if (op.body) params.push('body');
  if (queryParams(op).length) params.push('query');
  const call = op.paginated ? 'paginate' : 'request';
  const paramsLiteral = params.length ? `{ ${params.join(', ')} }` : '{}';
  return [
    ...docComment(doc, '  '),
    `  ${op.sdk.method}(${signature}): ${m.returns} {`,
    `    return this.client.${call}(${str(op.id)}, ${paramsLiteral}, options);`,
    '  }',
  ];
}

/** An `import type` of `names`, one name a line when it would be long. */
function importLine(names: string[], from: string): string {
  const flat = `import type { ${names.join(', ')} } from '${from}';`;
  return flat.length <= 120 ? flat : `import type {\n${names.map((n) => `  ${n},`).join('\n')}\n} from '${from}';`;
}

function resourcesModule(spec: Spec): string {
  const tags = spec.tags.filter((tag) => spec.operations.some((op) => op.sdk.namespace === tag.name));
  for (const op of spec.operations) {
    if (!tags.some((tag) => tag.name === op.sdk.namespace)) throw new Error(`${op.id}: tag ${op.tag} is not declared`);
    if (!IDENTIFIER.test(op.sdk.namespace) || !IDENTIFIER.test(op.sdk.method)) {
      throw new Error(`${op.id}: ${op.sdk.namespace}.${op.sdk.method} is not a valid SDK method name`);
    }
  }
  const classes = tags.map((tag) => ({
    tag,
    className: `${pascal(tag.name)}Resource`,
    // WebSocket operations have no method: `openWebSocket` (and handwritten helpers) open them.
    methods: spec.operations
      .filter((op) => op.sdk.namespace === tag.name && !op.websocket)
      .map((op) => resourceMethod(spec, op)),
  }));
  const methods = classes.flatMap((c) => c.methods);
  const models = [...new Set(methods.flatMap((m) => m.models))].sort();
  const source = methods.flatMap((m) => [...m.args.map((a) => a.type), m.returns]).join(' ');
  const helpers = ['BodyOf', 'PageItemOf', 'ParamsOf', 'QueryOf', 'ResultOf'].filter((h) => source.includes(`${h}<`));
  const paginated = methods.some((m) => m.op.paginated);
  const binary = ['BinaryBody', 'BinaryResponse'].filter((name) => source.includes(name));

  const lines = [
    generatedHeader(spec),
    "import type { RequestOptions } from '../client.js';",
    ...(binary.length ? [`import type { ${binary.join(', ')} } from '../core/binary.js';`] : []),
    ...(paginated ? ["import type { PagePromise } from '../core/pagination.js';"] : []),
    "import { APIResource } from '../core/resource.js';",
    ...(models.length ? [importLine(models, './models.js')] : []),
    ...(helpers.length ? [`import type { ${helpers.join(', ')} } from './operations.js';`] : []),
    '',
  ];
  for (const c of classes) {
    lines.push(...docComment([c.tag.description || `The ${c.tag.name} operations.`]));
    lines.push(`export class ${c.className} extends APIResource {`);
    c.methods.forEach((m, i) => {
      if (i > 0) lines.push('');
      lines.push(...methodSource(m));
    });
    lines.push('}', '');
  }
  lines.push(
    '/** The resource classes, by the client property they are attached to (one per tag of the contract). */',
    'export const resources = {',
    ...classes.map((c) => `  ${c.tag.name}: ${c.className},`),
    '} as const;',
    '',
    '/** The resource namespaces of a client: `cp.users`, `cp.tokens`, … */',
    'export type Resources = { readonly [Name in keyof typeof resources]: InstanceType<(typeof resources)[Name]> };',
    '',
  );
  return lines.join('\n');
}

export const emitSdk: Emitter = {
  owns: ['sdk/src/generated'],
  async emit(spec: Spec): Promise<GeneratedFile[]> {
    return [
      { path: 'sdk/src/generated/types.ts', content: `${generatedHeader(spec)}\n${await contractTypes(spec)}` },
      { path: 'sdk/src/generated/models.ts', content: modelsModule(spec) },
      { path: 'sdk/src/generated/operations.ts', content: operationsModule(spec) },
      { path: 'sdk/src/generated/resources.ts', content: resourcesModule(spec) },
    ];
  },
};
