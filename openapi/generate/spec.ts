import { createHash } from 'node:crypto';
import { bundle } from './bundle.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type Role = 'viewer' | 'member' | 'admin';
export type Scope = 'read' | 'write' | 'admin';
export type JsonSchema = Record<string, unknown>;

export interface Access {
  role: Role;
  scope: Scope;
}

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  description: string;
  /** The parameter's schema with every `$ref` resolved. */
  schema: JsonSchema;
  example: unknown;
  /** Arrays in the query string are sent as repeated keys (`type=a&type=b`). */
  explode: boolean;
  /** `x-cli-flag`: the CLI also takes this (path) parameter as `--<flag>`, making the positional argument optional. */
  cliFlag?: string;
  /** `x-cli-env`: the CLI falls back to this environment variable (after the argument and the flag). */
  cliEnv?: string;
  /** `x-cli-char`: the one-letter form of the `x-cli-flag` flag (`s` for `-s`, as adb has it). */
  cliChar?: string;
}

export interface Body {
  required: boolean;
  /** The first content type the contract lists: the one clients send. */
  contentType: string;
  /** Every content type the contract lists, the first one first: those the server takes. */
  contentTypes: string[];
  /** The schema as written, `$ref`s intact (for type names). */
  schemaRef: JsonSchema;
  /** The schema with every `$ref` resolved and `allOf` left as written. */
  schema: JsonSchema;
  example: unknown;
  /** Not JSON (`application/octet-stream`, …): sent and received as raw bytes, never validated against `schema`. */
  binary: boolean;
}

export interface CliHints {
  /** A full command id overriding `<topic> <verb>`, words separated by spaces (`whoami`). */
  command?: string;
  hidden?: boolean;
  aliases?: string[];
  /** Dotted property paths shown as table columns. */
  columns?: string[];
  /**
   * The array property of a response that is not a list (its operation is not `list…`) that the table shows as its
   * rows, with `columns` (`preferences` of the notification preferences).
   */
  rows?: string;
  /** The command asks for confirmation on a TTY unless `--yes`. */
  destructive?: boolean;
  /** The CLI command is handwritten (`cli/src/commands/...`): no command is generated. */
  handwritten?: boolean;
}

export interface Operation {
  id: string;
  method: HttpMethod;
  /** The path as in the contract: `/v1/users/{userId}`. */
  path: string;
  tag: string;
  summary: string;
  description: string;
  /** `null` for public operations (`security: []`). */
  access: Access | null;
  parameters: Parameter[];
  body: Body | null;
  /**
   * The first 2xx response (101 for WebSocket operations). `binary` when its content type is not JSON: the body is a
   * byte stream (`contentType` says which), not a JSON document.
   */
  success: { status: number; contentType: string | null; schemaRef: JsonSchema | null; example: unknown; binary: boolean };
  /** `x-websocket: true`: a GET that upgrades to a WebSocket (success status 101). */
  websocket: boolean;
  /** Every documented error status. */
  errorStatuses: number[];
  /** Takes an `Idempotency-Key` header. */
  idempotent: boolean;
  /** Takes `cursor` and answers `{ data, nextCursor }`. */
  paginated: boolean;
  sdk: { namespace: string; method: string };
  cli: CliHints & { id: string };
}

export interface Spec {
  /** The bundled contract: one self-contained document (see bundle.ts). */
  document: Record<string, any>;
  /** sha256 of the bundled document as JSON, hex: a change in any contract file that changes its meaning changes it. */
  hash: string;
  /** The root file. */
  sourcePath: string;
  /** Every contract file the root reaches, the root first (absolute paths). */
  files: string[];
  operations: Operation[];
  tags: { name: string; description: string }[];
  resolve<T = JsonSchema>(value: T): T;
}

const METHODS: HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

function pointer(document: Record<string, any>, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
  let node: any = document;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node == null || !(key in node)) throw new Error(`unresolvable $ref ${ref}`);
    node = node[key];
  }
  return node;
}

/** Resolves every `$ref` below `value`, deeply. The contract has no recursive schemas. */
export function deref<T>(document: Record<string, any>, value: T, seen: string[] = []): T {
  if (Array.isArray(value)) return value.map((v) => deref(document, v, seen)) as T;
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  if (typeof obj.$ref === 'string') {
    const ref = obj.$ref;
    if (seen.includes(ref)) throw new Error(`recursive $ref ${ref}`);
    const { $ref: _ignored, ...siblings } = obj;
    const target = deref(document, pointer(document, ref), [...seen, ref]) as Record<string, unknown>;
    return (Object.keys(siblings).length ? { ...target, ...deref(document, siblings, seen) } : target) as T;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = deref(document, v, seen);
  return out as T;
}

function kebab(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

function firstWord(camel: string): string {
  return camel.match(/^[a-z]+/)?.[0] ?? camel;
}

function exampleOf(node: Record<string, any> | undefined, document: Record<string, any>): unknown {
  if (!node) return undefined;
  if ('example' in node) return deref(document, node.example);
  const examples = node.examples as Record<string, any> | undefined;
  if (examples) {
    const first = deref(document, Object.values(examples)[0]);
    return first?.value;
  }
  return undefined;
}

/** `application/json` and `application/*+json` are JSON; everything else is bytes. */
export function isJson(contentType: string): boolean {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.+-]*\+json$/.test(type);
}

function isPage(schema: JsonSchema | null): boolean {
  const props = schema?.properties as Record<string, unknown> | undefined;
  return Boolean(props && 'data' in props && 'nextCursor' in props);
}

export function loadSpec(sourcePath: string): Spec {
  const { document, files } = bundle(sourcePath);
  const resolve = <T>(value: T): T => deref(document, value);
  const operations: Operation[] = [];

  for (const [path, rawItem] of Object.entries<Record<string, any>>(document.paths ?? {})) {
    const item = resolve(rawItem);
    const shared: any[] = item.parameters ?? [];
    for (const method of METHODS) {
      const op = item[method.toLowerCase()];
      if (!op) continue;
      const rawOp = rawItem[method.toLowerCase()];
      const id: string = op.operationId;
      if (!id) throw new Error(`${method} ${path} has no operationId`);
      const tags: string[] = op.tags ?? [];
      if (tags.length !== 1) throw new Error(`${id} must have exactly one tag`);
      const tag = tags[0]!;

      const byKey = new Map<string, any>();
      for (const p of [...shared, ...(op.parameters ?? [])]) byKey.set(`${p.in}:${p.name}`, p);
      const parameters: Parameter[] = [...byKey.values()].map((p) => ({
        name: p.name,
        in: p.in,
        required: Boolean(p.required),
        description: p.description ?? '',
        schema: p.schema ?? {},
        example: exampleOf(p, document),
        explode: p.explode ?? true,
        ...(typeof p['x-cli-flag'] === 'string' ? { cliFlag: p['x-cli-flag'] as string } : {}),
        ...(typeof p['x-cli-env'] === 'string' ? { cliEnv: p['x-cli-env'] as string } : {}),
        ...(typeof p['x-cli-char'] === 'string' ? { cliChar: p['x-cli-char'] as string } : {}),
      }));

      let body: Body | null = null;
      if (op.requestBody) {
        const [contentType, media] = Object.entries<any>(op.requestBody.content)[0]!;
        const rawMedia = deref(document, rawOp.requestBody).content[contentType];
        body = {
          required: Boolean(op.requestBody.required),
          contentType,
          contentTypes: Object.keys(op.requestBody.content),
          schemaRef: (rawOp.requestBody.$ref ? rawMedia : rawOp.requestBody.content[contentType]).schema ?? {},
          schema: media.schema ?? {},
          example: exampleOf(media, document),
          binary: !isJson(contentType),
        };
      }

      const websocket = op['x-websocket'] === true;
      if (websocket && method !== 'GET') throw new Error(`${id}: x-websocket operations must be GETs`);
      if (websocket && op.requestBody) throw new Error(`${id}: x-websocket operations take no request body`);
      const statuses = Object.keys(op.responses ?? {});
      const successKey = websocket ? statuses.find((s) => s === '101') : statuses.find((s) => /^2\d\d$/.test(s));
      if (!successKey) throw new Error(websocket ? `${id} (x-websocket) has no 101 response` : `${id} has no 2xx response`);
      if (websocket && statuses.some((s) => /^2\d\d$/.test(s))) throw new Error(`${id} (x-websocket) must not have a 2xx response`);
      const successResponse = op.responses[successKey];
      const rawSuccess = rawOp.responses[successKey];
      const successContent = successResponse.content ? Object.entries<any>(successResponse.content)[0] : undefined;
      const rawSuccessSchema = rawSuccess.content ? Object.values<any>(rawSuccess.content)[0]?.schema ?? null : null;
      const success = {
        status: Number(successKey),
        contentType: successContent?.[0] ?? null,
        schemaRef: rawSuccessSchema,
        example: successContent ? exampleOf(successContent[1], document) : undefined,
        binary: successContent !== undefined && !isJson(successContent[0]),
      };

      const xcli: CliHints = op['x-cli'] ?? {};
      const sdkMethod: string = op['x-sdk-method'] ?? firstWord(id);
      const cliId = xcli.command ?? `${tag} ${kebab(sdkMethod)}`;
      const security = op.security ?? document.security;
      const isPublic = Array.isArray(security) && security.length === 0;
      if (!isPublic && !op['x-access']) throw new Error(`${id} needs x-access`);

      operations.push({
        id,
        method,
        path,
        tag,
        summary: op.summary ?? id,
        description: op.description ?? '',
        access: isPublic ? null : (op['x-access'] as Access),
        parameters,
        body,
        success,
        websocket,
        errorStatuses: statuses.filter((s) => /^[45]\d\d$/.test(s)).map(Number),
        idempotent: parameters.some((p) => p.in === 'header' && p.name === 'Idempotency-Key'),
        paginated:
          parameters.some((p) => p.in === 'query' && p.name === 'cursor') &&
          isPage(rawSuccessSchema ? resolve(rawSuccessSchema) : null),
        sdk: { namespace: tag, method: sdkMethod },
        cli: { ...xcli, id: cliId },
      });
    }
  }

  const seen = new Map<string, string>();
  // Several operations may share one handwritten command (`devices shell` runs and streams); a generated command
  // is one operation's alone.
  const handwrittenIds = new Set(operations.filter((op) => op.cli.handwritten).map((op) => op.cli.id));
  for (const op of operations) {
    if (!op.cli.handwritten && handwrittenIds.has(op.cli.id)) {
      throw new Error(`${op.id} maps to the handwritten command ${op.cli.id}; set x-cli.command`);
    }
  }
  for (const op of operations) {
    const keys = [`sdk ${op.sdk.namespace}.${op.sdk.method}`, ...(op.cli.handwritten ? [] : [`cli ${op.cli.id}`])];
    for (const key of keys) {
      const other = seen.get(key);
      if (other) throw new Error(`${op.id} and ${other} both map to ${key}; set x-sdk-method or x-cli.command`);
      seen.set(key, op.id);
    }
  }

  return {
    document,
    hash: createHash('sha256').update(JSON.stringify(document)).digest('hex'),
    sourcePath,
    files,
    operations,
    tags: (document.tags ?? []).map((t: any) => ({ name: t.name, description: t.description ?? '' })),
    resolve,
  };
}

/** The first line of every generated file. */
export function generatedHeader(spec: Spec, comment: '//' | '#' | 'html' = '//'): string {
  const text = `DO NOT EDIT. Generated by openapi/generate from openapi/cloudphone.yaml (sha256 ${spec.hash.slice(0, 16)}). Run \`npm run generate\`.`;
  return comment === 'html' ? `<!-- ${text} -->` : `${comment} ${text}`;
}

export { kebab };
