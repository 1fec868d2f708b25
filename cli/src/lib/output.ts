/** Rendering of API data for people (tables, key/value blocks) and for programs (JSON). */

export interface RenderOptions {
  /** Bold headers and keys. */
  color: boolean;
}

/** Colour only on a terminal, and never when `NO_COLOR` is set to anything (https://no-color.org). */
export function useColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined> = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR;
}

export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** The value at a dotted path (`actor.username`), or `undefined`. */
export function valueAt(object: unknown, path: string): unknown {
  let node = object;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** How many items of an array a table cell shows before `… (+n)`. */
export const TABLE_ARRAY_ITEMS = 3;

/**
 * One value as table or key/value text: `-` for null, `true`/`false`, arrays joined with commas (with `maxItems`,
 * the first ones and `… (+n)` for the rest), maps of scalars (labels) as `key=value` pairs.
 */
export function formatCell(value: unknown, maxItems = Number.POSITIVE_INFINITY): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'string') return value.replace(/\s*\n\s*/g, ' ');
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return '-';
    const scalars = value.every((v) => v === null || typeof v !== 'object');
    if (!scalars && value.length <= maxItems) return JSON.stringify(value);
    const shown = value.slice(0, maxItems).map((v) => (scalars ? formatCell(v) : JSON.stringify(v)));
    const rest = value.length - shown.length;
    const text = [...shown, ...(rest > 0 ? [`… (+${rest})`] : [])].join(', ');
    return scalars ? text : `[${text}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '-';
  if (entries.every(([, v]) => v === null || typeof v !== 'object')) {
    return entries.map(([key, v]) => `${key}=${formatCell(v)}`).join(', ');
  }
  return JSON.stringify(value);
}

const headerWords = (parts: readonly string[]): string =>
  parts
    .map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1 $2'))
    .join(' ')
    .toUpperCase();

/**
 * Table headers naming each column's field: `displayName` → `DISPLAY NAME`, `properties.model` → `MODEL`. Only
 * columns whose field names collide keep their full path: `type` and `subject.type` → `TYPE`, `SUBJECT TYPE`.
 */
export function columnHeaders(paths: readonly string[]): string[] {
  const short = paths.map((path) => headerWords([path.split('.').at(-1)!]));
  return paths.map((path, i) =>
    short.filter((header) => header === short[i]).length > 1 ? headerWords(path.split('.')) : short[i]!,
  );
}

const bold = (text: string, options: RenderOptions): string => (options.color ? `\u001B[1m${text}\u001B[22m` : text);

/** A plain table: a header row, then one row per item, columns padded to their widest cell. */
export function renderTable(rows: readonly unknown[], columns: readonly string[], options: RenderOptions): string {
  const headers = columnHeaders(columns);
  const cells = rows.map((row) => columns.map((column) => formatCell(valueAt(row, column), TABLE_ARRAY_ITEMS)));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]): string =>
    values
      .map((value, i) => (i === values.length - 1 ? value : value.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const headerLine = headers.map((h, i) => (i === headers.length - 1 ? h : h.padEnd(widths[i]!))).join('  ');
  return [bold(headerLine.trimEnd(), options), ...cells.map(line)].join('\n') + '\n';
}

/** Every leaf of an object as `[dotted.path, value]`; arrays and empty objects are leaves. */
export function flatten(object: unknown, prefix = ''): [string, unknown][] {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) return [[prefix, object]];
  const entries = Object.entries(object as Record<string, unknown>);
  if (entries.length === 0) return [[prefix, object]];
  return entries.flatMap(([key, value]) => flatten(value, prefix ? `${prefix}.${key}` : key));
}

/** One resource as `key  value` lines: the preferred columns first, then every other field. */
export function renderKeyValue(resource: unknown, columns: readonly string[], options: RenderOptions): string {
  if (resource === null || typeof resource !== 'object') return `${formatCell(resource)}\n`;
  const fields = flatten(resource);
  const preferred = columns.map((column): [string, unknown] => [column, valueAt(resource, column)]);
  // A preferred column shows its value whole (a label map as `pool=ci`): its nested fields are not repeated.
  const rest = fields.filter(([path]) => !columns.some((column) => path === column || path.startsWith(`${column}.`)));
  const entries = [...preferred, ...rest];
  const width = Math.max(...entries.map(([path]) => path.length));
  const lines = entries.map(([path, value]) => `${bold(path.padEnd(width), options)}  ${formatCell(value)}`.trimEnd());
  return `${lines.join('\n')}\n`;
}
