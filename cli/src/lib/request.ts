import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { OperationId } from '@cloudphone/sdk';
import { UsageError } from './errors.js';

/** What a generated command knows about its operation, all taken from the contract. */
export interface OperationSpec {
  /** The operationId, as the SDK's `request` and `paginate` take it. */
  id: OperationId;
  /** Sends credentials (every operation except the public ones: logging in, refreshing, logging out). */
  authenticated: boolean;
  /** Argument name → path parameter, in path order. */
  path: Readonly<Record<string, string>>;
  /**
   * Argument name → where else the value may come from (`x-cli-flag`, `x-cli-env`): such an argument is optional
   * and resolves argument > flag > environment variable.
   */
  pathFallbacks?: Readonly<Record<string, PathFallback>>;
  /** Flag name → query parameter. */
  query: Readonly<Record<string, string>>;
  /** The JSON request body, or `null` when the operation takes none. */
  body: BodySpec | null;
  /**
   * The operation lists things: the rows are the response (an array) or its `field` (`data`, `entries`). Tables
   * show the rows and `--json` prints them as one array, whatever wraps them.
   */
  list: { field?: string } | null;
  /** Answers `{ data, nextCursor }` pages. */
  paginated: boolean;
  /** Takes an `Idempotency-Key`. */
  idempotent: boolean;
  /** Asks for confirmation unless `--yes`. */
  destructive: boolean;
  /** Table columns, dotted paths into each item. */
  columns: readonly string[];
}

export interface PathFallback {
  /** A flag that also gives the value (`device` for `--device`). */
  flag?: string;
  /** The flag's one-letter form (`s` for `-s`). */
  char?: string;
  /** An environment variable read last (`CLOUDPHONE_DEVICE`). */
  env?: string;
}

/**
 * A path value from its positional argument, else its flag, else its environment variable (like adb's `-s` and
 * `ANDROID_SERIAL`). Missing everywhere: a usage error (exit 2) naming all three.
 */
export function resolvePathValue(
  name: string,
  sources: { arg?: unknown; flagValue?: unknown },
  fallback: PathFallback,
  env: NodeJS.ProcessEnv = process.env,
): string {
  for (const value of [sources.arg, sources.flagValue, fallback.env ? env[fallback.env] : undefined]) {
    if (typeof value === 'string' && value !== '') return value;
  }
  const flag = fallback.flag && `${fallback.char ? `-${fallback.char}/` : ''}--${fallback.flag}`;
  const ways = [`the argument <${name}>`, flag, fallback.env && `the ${fallback.env} environment variable`]
    .filter(Boolean)
    .join(', ')
    .replace(/, ([^,]*)$/, ' or $1');
  throw new UsageError(`Missing ${name}: give it as ${ways}`);
}

export interface BodySpec {
  /** The operation cannot be sent without a body. */
  required: boolean;
  /** Flag name → top-level body property. */
  flags: Readonly<Record<string, string>>;
  /** Properties the body must have, from flags or `--data`. */
  requiredProperties: readonly string[];
  /** Flags of nullable properties, whose value `null` is sent as JSON null (`--plan-id null`). */
  nullable?: readonly string[];
}

export interface RequestParts {
  path?: Record<string, string>;
  query?: Record<string, unknown>;
  body?: unknown;
}

export interface DataSources {
  stdin: Readable;
  readFile: (path: string) => Promise<string>;
}

const defaultSources = (): DataSources => ({ stdin: process.stdin, readFile: (path) => readFile(path, 'utf8') });

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads standard input to its end, without the final newline. */
export async function readStdin(stream: Readable = process.stdin): Promise<string> {
  return (await readAll(stream)).replace(/\r?\n$/, '');
}

/** The value of `--data`: inline JSON, `@file.json`, or `-` for standard input. */
export async function readData(value: string, sources: DataSources = defaultSources()): Promise<unknown> {
  let text: string;
  let origin: string;
  if (value === '-') {
    text = await readAll(sources.stdin);
    origin = 'standard input';
  } else if (value.startsWith('@')) {
    const path = value.slice(1);
    try {
      text = await sources.readFile(path);
    } catch (error) {
      throw new UsageError(`Cannot read --data file ${path}: ${(error as Error).message}`);
    }
    origin = path;
  } else {
    text = value;
    origin = '--data';
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`${origin} is not valid JSON: ${(error as Error).message}`);
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function flagList(names: string[]): string {
  return names.map((name) => `--${name}`).join(', ');
}

/**
 * The path, query and body of a request from parsed arguments and flags. Body flags override the
 * same fields of `--data`.
 */
export function buildRequest(
  op: OperationSpec,
  args: Record<string, unknown>,
  flags: Record<string, unknown>,
  data?: unknown,
): RequestParts {
  const parts: RequestParts = {};

  const path: Record<string, string> = {};
  for (const [arg, param] of Object.entries(op.path)) {
    const fallback = op.pathFallbacks?.[arg];
    path[param] = fallback
      ? resolvePathValue(arg, { arg: args[arg], flagValue: fallback.flag ? flags[fallback.flag] : undefined }, fallback)
      : String(args[arg]);
  }
  if (Object.keys(path).length > 0) parts.path = path;

  const query: Record<string, unknown> = {};
  for (const [flag, param] of Object.entries(op.query)) {
    if (flags[flag] !== undefined) query[param] = flags[flag];
  }
  if (Object.keys(query).length > 0) parts.query = query;

  if (!op.body) return parts;
  const fromFlags: Record<string, unknown> = {};
  for (const [flag, property] of Object.entries(op.body.flags)) {
    if (flags[flag] === undefined) continue;
    fromFlags[property] = flags[flag] === 'null' && op.body.nullable?.includes(flag) ? null : flags[flag];
  }
  const flagsGiven = Object.keys(fromFlags).length > 0;
  if (data !== undefined && !isObject(data) && flagsGiven) {
    throw new UsageError('--data must be a JSON object when combined with body flags');
  }
  if (data === undefined && !flagsGiven) {
    if (!op.body.required) return parts;
    const flagNames = Object.keys(op.body.flags);
    const options = flagNames.length > 0 ? `${flagList(flagNames)} or --data` : '--data';
    throw new UsageError(`This command needs a request body: give ${options}`);
  }
  const body = isObject(data) || data === undefined ? { ...(data ?? {}), ...fromFlags } : data;
  if (isObject(body)) {
    const missing = op.body.requiredProperties.filter((property) => body[property] === undefined);
    if (missing.length > 0) {
      const byProperty = new Map(Object.entries(op.body.flags).map(([flag, property]) => [property, flag]));
      const names = missing.map((property) => (byProperty.has(property) ? `--${byProperty.get(property)}` : property));
      const pronoun = missing.length === 1 ? 'it' : 'them';
      throw new UsageError(`Missing ${names.join(', ')} (give ${pronoun} as flags or in --data)`);
    }
  }
  parts.body = body;
  return parts;
}
