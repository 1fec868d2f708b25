import { join, relative, sep } from 'node:path';
import { walk } from './files.js';
import type { Emitter, GeneratedFile } from './main.js';
import { generatedHeader, kebab, type JsonSchema, type Operation, type Spec } from './spec.js';

const GENERATED = 'cli/src/generated';
const HANDWRITTEN = 'cli/src/commands';
const BIN = '<%= config.bin %>';

/** Flags every command has (oclif's `--help`, the base command's `--json`, `--api-url`, `--profile`). */
const GLOBAL_FLAGS = ['help', 'json', 'api-url', 'profile'];

/** How one parameter or body property becomes an oclif flag. */
interface FlagShape {
  type: 'string' | 'integer' | 'boolean';
  multiple: boolean;
  options?: string[];
  min?: number;
  max?: number;
  helpValue?: string;
}

interface FlagSource {
  flag: string;
  required?: boolean;
  name: string;
  summary: string;
  shape: FlagShape;
  example: unknown;
  /** A nullable string body property: the flag value `null` is sent as JSON null. */
  nullable?: boolean;
}

function pascal(words: string[]): string {
  return words
    .flatMap((word) => word.split('-'))
    .map(capitalise)
    .join('');
}

/** A TypeScript string literal: single-quoted unless the text has single quotes and no double ones. */
function str(value: string): string {
  const escaped = value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  if (value.includes("'") && !value.includes('"')) return `"${escaped}"`;
  return `'${escaped.replace(/'/g, "\\'")}'`;
}

/** An object key: bare when it is an identifier. */
function key(value: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(value) ? value : str(value);
}

function strings(values: readonly string[]): string {
  return `[${values.map(str).join(', ')}]`;
}

/** A value as a shell word, quoted only when it has to be. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

function sentence(text: string): string {
  const line = oneLine(text);
  return /[.!?]$/.test(line) ? line : `${line}.`;
}

/** The single non-null type of a schema (`[string, 'null']` → `string`). */
function typeOf(schema: JsonSchema): string | undefined {
  const type = schema.type;
  if (Array.isArray(type)) {
    const types = type.filter((t) => t !== 'null');
    return types.length === 1 ? (types[0] as string) : undefined;
  }
  return typeof type === 'string' ? type : undefined;
}

/** The flag for a schema, or `null` when only `--data` can carry it (objects, numbers, unions). */
function flagShape(schema: JsonSchema, multiple = false): FlagShape | null {
  const type = typeOf(schema);
  if (Array.isArray(schema.enum) && schema.enum.every((v) => typeof v === 'string')) {
    return { type: 'string', multiple, options: schema.enum as string[] };
  }
  if (type === 'string') {
    const format = typeof schema.format === 'string' ? schema.format : undefined;
    return format ? { type: 'string', multiple, helpValue: `<${format}>` } : { type: 'string', multiple };
  }
  if (type === 'integer') {
    const shape: FlagShape = { type: 'integer', multiple };
    if (typeof schema.minimum === 'number') shape.min = schema.minimum;
    if (typeof schema.maximum === 'number') shape.max = schema.maximum;
    return shape;
  }
  if (type === 'boolean' && !multiple) return { type: 'boolean', multiple };
  if (type === 'array' && !multiple && schema.items && typeof schema.items === 'object') {
    return flagShape(schema.items as JsonSchema, true);
  }
  return null;
}

function flagCode(source: FlagSource): string {
  const { shape } = source;
  const options: string[] = [`summary: ${str(source.summary)}`];
  if (source.required) options.push('required: true');
  if (shape.type === 'boolean') options.push('allowNo: true');
  if (shape.multiple) options.push('multiple: true');
  if (shape.options) {
    options.push(`options: ${strings(shape.options)}`);
    if (shape.multiple) options.push("delimiter: ','");
  }
  if (shape.min !== undefined) options.push(`min: ${shape.min}`);
  if (shape.max !== undefined) options.push(`max: ${shape.max}`);
  if (shape.helpValue) options.push(`helpValue: ${str(shape.helpValue)}`);
  return `    ${key(source.flag)}: Flags.${shape.type}({ ${options.join(', ')} }),`;
}

/** `--flag value` words for an example value. */
function exampleFlag(source: FlagSource, value: unknown): string[] {
  if (source.shape.type === 'boolean') return [value ? `--${source.flag}` : `--no-${source.flag}`];
  if (Array.isArray(value)) {
    if (source.shape.options) return [`--${source.flag}`, shellWord(value.map(String).join(','))];
    return value.flatMap((v) => [`--${source.flag}`, shellWord(String(v))]);
  }
  return [`--${source.flag}`, shellWord(String(value))];
}

function words(camel: string): string {
  return kebab(camel).replace(/-/g, ' ');
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

interface CommandModel {
  op: Operation;
  file: string;
  words: string[];
  args: { name: string; param: string; description: string; example: unknown; flag?: string; char?: string; env?: string }[];
  query: FlagSource[];
  /** Query parameters the operation cannot be sent without, by flag. */
  queryRequired: string[];
  body: FlagSource[];
  bodyRequired: string[];
}

function model(spec: Spec, op: Operation): CommandModel {
  const idWords = op.cli.id.split(' ');
  const args = op.parameters
    .filter((p) => p.in === 'path')
    // In path order, except that parameters with a fallback (x-cli-flag / x-cli-env) come last: they are optional,
    // and an optional positional argument cannot precede a required one (`devices uninstall <package-name> [device-id]`).
    .sort(
      (a, b) =>
        Number(Boolean(a.cliFlag || a.cliEnv)) - Number(Boolean(b.cliFlag || b.cliEnv)) ||
        op.path.indexOf(`{${a.name}}`) - op.path.indexOf(`{${b.name}}`),
    )
    .map((p) => ({
      name: kebab(p.name),
      param: p.name,
      description: sentence(p.description || words(p.name)),
      example: p.example,
      ...(p.cliFlag ? { flag: p.cliFlag } : {}),
      ...(p.cliChar ? { char: p.cliChar } : {}),
      ...(p.cliEnv ? { env: p.cliEnv } : {}),
    }));
  for (const a of args) {
    if (a.char && (!a.flag || !/^[a-zA-Z]$/.test(a.char))) {
      throw new Error(`cli: ${op.id}: x-cli-char of ${a.param} must be one letter, next to an x-cli-flag`);
    }
  }

  const builtIn = new Set(GLOBAL_FLAGS);
  if (op.body) builtIn.add('data');
  if (op.idempotent) builtIn.add('idempotency-key');
  if (op.paginated) ['limit', 'all'].forEach((f) => builtIn.add(f));
  if (op.cli.destructive) builtIn.add('yes');
  const taken = new Map<string, string>();
  const claim = (flag: string, what: string): void => {
    if (builtIn.has(flag)) throw new Error(`cli: ${op.id}: ${what} would be --${flag}, which the command already has`);
    const other = taken.get(flag);
    if (other) throw new Error(`cli: ${op.id}: ${what} and ${other} would both be --${flag}`);
    taken.set(flag, what);
  };

  for (const a of args) if (a.flag) claim(a.flag, `path parameter ${a.param}`);
  const optionalAt = args.findIndex((a) => a.flag || a.env);
  if (optionalAt >= 0 && args.slice(optionalAt).some((a) => !a.flag && !a.env)) {
    throw new Error(`cli: ${op.id}: a path parameter with x-cli-flag/x-cli-env must come after the others`);
  }

  const pagination = op.paginated ? ['limit', 'cursor'] : [];
  const query: FlagSource[] = [];
  for (const p of op.parameters) {
    if (p.in !== 'query' || pagination.includes(p.name)) continue;
    const shape = flagShape(p.schema);
    if (!shape) throw new Error(`cli: ${op.id}: query parameter ${p.name} has no flag form`);
    const flag = kebab(p.name);
    claim(flag, `query parameter ${p.name}`);
    const summary = sentence(p.description || words(p.name));
    query.push({ flag, name: p.name, summary, shape, example: p.example, ...(p.required ? { required: true } : {}) });
  }

  const body: FlagSource[] = [];
  const schema = op.body ? spec.resolve(op.body.schema) : {};
  const required = Array.isArray(schema.required) ? (schema.required as string[]) : [];
  const example = (op.body?.example ?? {}) as Record<string, unknown>;
  for (const [name, raw] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) {
    const shape = flagShape(raw);
    if (!shape) continue;
    const flag = kebab(name);
    claim(flag, `body property ${name}`);
    const description = sentence(typeof raw.description === 'string' ? raw.description : capitalise(words(name)));
    // A string flag cannot otherwise send null (`plans assign --plan-id null`); the help shows `<value|null>`.
    const nullable =
      shape.type === 'string' && !shape.multiple && !shape.options && Array.isArray(raw.type) && raw.type.includes('null');
    body.push({
      flag,
      name,
      summary: required.includes(name) ? `(required) ${description}` : description,
      shape: nullable ? { ...shape, helpValue: `${(shape.helpValue ?? '<value>').slice(0, -1)}|null>` } : shape,
      example: example[name],
      ...(nullable ? { nullable: true } : {}),
    });
  }

  return {
    op,
    file: `${GENERATED}/commands/${idWords.join('/')}.ts`,
    words: idWords,
    args,
    query,
    queryRequired: query.filter((q) => q.required).map((q) => q.flag),
    body,
    bodyRequired: required,
  };
}

/**
 * Where a list operation's rows are: `{}` when its response is an array, `{ field }` when it is an object holding
 * one array of rows (`data` of a page or of `listHosts`, `entries` of `listDeviceFiles`), `null` for an operation
 * that answers one resource. A list is an operation whose response is an array, or one named `list…` (the
 * contract's verbNoun convention): the shape of its response then has to say which property holds the rows.
 */
export function listRows(spec: Spec, op: Operation): { field?: string } | null {
  if (op.success.binary || !op.success.schemaRef) return null;
  const schema = spec.resolve(op.success.schemaRef);
  if (typeOf(schema) === 'array') return {};
  if (op.cli.rows !== undefined) {
    if (typeOf((schema.properties as Record<string, JsonSchema> | undefined)?.[op.cli.rows] ?? {}) !== 'array') {
      throw new Error(`cli: ${op.id}: x-cli.rows names ${op.cli.rows}, which is not an array property of its response`);
    }
    return { field: op.cli.rows };
  }
  if (!/^list[A-Z]/.test(op.id)) return null;
  const properties = Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>);
  const arrays = properties.filter(([, property]) => typeOf(property) === 'array').map(([name]) => name);
  if (arrays.length !== 1) {
    throw new Error(`cli: ${op.id} is a list: its response must be an array or an object with exactly one array property`);
  }
  return { field: arrays[0]! };
}

function examples(m: CommandModel): { description: string; command: string }[] {
  const { op } = m;
  // Required query flags belong to every example: a command line without them is a usage error.
  const required = m.query.filter((q) => q.required);
  const base = [
    BIN,
    ...m.words,
    ...m.args.map((a) => shellWord(String(a.example ?? `<${a.name}>`))),
    ...required.flatMap((q) => exampleFlag(q, q.example ?? `<${q.flag}>`)),
  ];
  const bodyWords = m.body.filter((f) => f.example !== undefined).flatMap((f) => exampleFlag(f, f.example));
  const list = [{ description: sentence(op.summary), command: [...base, ...bodyWords].join(' ') }];
  for (const q of m.query) {
    if (q.example === undefined || q.required) continue;
    list.push({ description: q.summary, command: [...base, ...exampleFlag(q, q.example)].join(' ') });
  }
  if (op.paginated) list.push({ description: 'Every page, as JSON.', command: [...base, '--all', '--json'].join(' ') });
  if (op.body) {
    list.push({
      description: 'The body from a JSON file (--data - reads standard input); flags override its fields.',
      command: [...base, '--data', '@body.json'].join(' '),
    });
  }
  if (op.cli.destructive) list.push({ description: 'Without asking for confirmation.', command: [...base, '--yes'].join(' ') });
  return list;
}

function record(entries: [string, string][]): string {
  return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${key(k)}: ${str(v)}`).join(', ')} }`;
}

function commandFile(spec: Spec, m: CommandModel): string {
  const { op } = m;
  const up = '../'.repeat(m.words.length + 1);
  const fallbackArgs = m.args.filter((a) => a.flag || a.env);
  const flagLines = fallbackArgs.flatMap((a) =>
    a.flag
      ? [
          `    ${key(a.flag)}: Flags.string({ ${a.char ? `char: ${str(a.char)}, ` : ''}summary: ${str(`The ${words(a.param)} (instead of the argument${a.env ? `; default: ${a.env}` : ''}).`)}, helpValue: '<${a.flag === 'device' ? 'id' : 'value'}>' }),`,
        ]
      : [],
  );
  flagLines.push(...[...m.query, ...m.body].map(flagCode));
  if (op.body) flagLines.push('    data: operationFlags.data(),');
  if (op.idempotent) flagLines.push("    'idempotency-key': operationFlags.idempotencyKey(),");
  if (op.paginated) flagLines.push('    limit: operationFlags.limit(),', '    all: operationFlags.all(),');
  if (op.cli.destructive) flagLines.push('    yes: operationFlags.yes(),');
  const usesFlags = m.query.length + m.body.length > 0 || fallbackArgs.some((a) => a.flag);
  const oclifImports = [m.args.length > 0 && 'Args', usesFlags && 'Flags'].filter(Boolean);
  const usesOperationFlags = flagLines.some((line) => line.includes('operationFlags.'));
  const baseImports = ['OperationCommand', 'type OperationSpec', usesOperationFlags && 'operationFlags'];

  const lines = [generatedHeader(spec)];
  if (oclifImports.length > 0) lines.push(`import { ${oclifImports.join(', ')} } from '@oclif/core';`);
  lines.push(`import { ${baseImports.filter(Boolean).join(', ')} } from '${up}base/operation-command.js';`, '');
  lines.push(`export default class ${pascal(m.words)} extends OperationCommand {`);
  lines.push(`  static override summary = ${str(oneLine(op.summary))};`);
  if (op.description) lines.push(`  static override description = ${str(op.description.trim())};`);
  if (op.cli.hidden) lines.push('  static override hidden = true;');
  if (op.cli.aliases?.length) lines.push(`  static override aliases = ${strings(op.cli.aliases)};`);
  lines.push('  static override examples = [');
  for (const example of examples(m)) {
    lines.push(`    { description: ${str(example.description)}, command: ${str(example.command)} },`);
  }
  lines.push('  ];');
  if (m.args.length > 0) {
    lines.push('  static override args = {');
    for (const a of m.args) {
      const required = !(a.flag || a.env);
      // ignoreStdin: oclif would otherwise take piped input (meant for `--data -`) as a missing argument.
      lines.push(
        `    ${key(a.name)}: Args.string({ required: ${required}, description: ${str(a.description)}, ignoreStdin: true }),`,
      );
    }
    lines.push('  };');
  }
  if (flagLines.length > 0) lines.push('  static override flags = {', ...flagLines, '  };');
  lines.push('  static override operation: OperationSpec = {');
  lines.push(`    id: ${str(op.id)},`);
  lines.push(`    authenticated: ${op.access !== null},`);
  lines.push(`    path: ${record(m.args.map((a) => [a.name, a.param]))},`);
  if (fallbackArgs.length > 0) {
    const entries = fallbackArgs.map((a) => {
      const parts = [a.flag && `flag: ${str(a.flag)}`, a.char && `char: ${str(a.char)}`, a.env && `env: ${str(a.env)}`].filter(Boolean);
      return `${key(a.name)}: { ${parts.join(', ')} }`;
    });
    lines.push(`    pathFallbacks: { ${entries.join(', ')} },`);
  }
  lines.push(`    query: ${record(m.query.map((q) => [q.flag, q.name]))},`);
  if (op.body) {
    const nullable = m.body.filter((b) => b.nullable).map((b) => b.flag);
    lines.push(
      '    body: {',
      `      required: ${op.body.required},`,
      `      flags: ${record(m.body.map((b) => [b.flag, b.name]))},`,
      `      requiredProperties: ${strings(m.bodyRequired)},`,
      ...(nullable.length > 0 ? [`      nullable: ${strings(nullable)},`] : []),
      '    },',
    );
  } else {
    lines.push('    body: null,');
  }
  const rows = listRows(spec, op);
  lines.push(`    list: ${rows === null ? 'null' : rows.field ? `{ field: ${str(rows.field)} }` : '{}'},`);
  lines.push(`    paginated: ${op.paginated},`);
  lines.push(`    idempotent: ${op.idempotent},`);
  lines.push(`    destructive: ${Boolean(op.cli.destructive)},`);
  lines.push(`    columns: ${strings(op.cli.columns ?? [])},`);
  lines.push('  };');
  lines.push('}', '');
  return lines.join('\n');
}

/** Topic descriptions from the contract's tags; a topic whose commands are all hidden is hidden. */
function topicsFile(spec: Spec, models: CommandModel[]): string {
  const topics = new Map<string, boolean>();
  for (const m of models) {
    if (m.words.length < 2) continue;
    const topic = m.words[0]!;
    topics.set(topic, (topics.get(topic) ?? true) && Boolean(m.op.cli.hidden));
  }
  const descriptions = new Map(spec.tags.map((t) => [t.name, t.description]));
  const lines = [
    generatedHeader(spec),
    '/** The topics of the generated commands, with the descriptions of the contract\'s tags. */',
    'export const topics: Record<string, { description: string; hidden?: boolean }> = {',
  ];
  for (const [topic, hidden] of [...topics].sort(([a], [b]) => a.localeCompare(b))) {
    const description = str(oneLine(descriptions.get(topic) ?? `${topic} commands`));
    lines.push(`  ${key(topic)}: { description: ${description}${hidden ? ', hidden: true' : ''} },`);
  }
  lines.push('};', '');
  return lines.join('\n');
}


/** Command ids of the handwritten commands (`profiles/list.ts` → `profiles list`), by id. */
export function handwrittenCommands(root: string): Map<string, string> {
  const dir = join(root, HANDWRITTEN);
  const ids = new Map<string, string>();
  for (const file of walk(dir)) {
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
    const parts = relative(dir, file).slice(0, -'.ts'.length).split(sep);
    if (parts.at(-1) === 'index') parts.pop();
    ids.set(parts.join(' '), relative(root, file));
  }
  return ids;
}

export const emitCli: Emitter = {
  owns: [GENERATED],
  emit(spec: Spec, root: string): GeneratedFile[] {
    const handwritten = handwrittenCommands(root);
    // `x-cli.handwritten` operations get no generated command: cli/src/commands has theirs.
    const models = spec.operations.filter((op) => !op.cli.handwritten).map((op) => model(spec, op));
    for (const m of models) {
      for (const id of [m.op.cli.id, ...(m.op.cli.aliases ?? [])]) {
        const file = handwritten.get(id);
        if (file) {
          throw new Error(
            `cli: the handwritten command ${file} has the id "${id}" of the generated command for ${m.op.id}; ` +
              'rename the handwritten command or set x-cli.command',
          );
        }
      }
    }
    return [
      ...models.map((m) => ({ path: m.file, content: commandFile(spec, m) })),
      { path: `${GENERATED}/topics.ts`, content: topicsFile(spec, models) },
    ];
  },
};
