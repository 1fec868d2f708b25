import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { parse } from 'yaml';

/** The contract as one document, and the files it was read from. */
export interface Bundled {
  /** Self-contained: every `$ref` is local (`#/components/...`). */
  document: Record<string, any>;
  /** Every file the root reaches through `$ref`s, the root first, as absolute paths in the order first reached. */
  files: string[];
}

function unescapePointer(segment: string): string {
  return decodeURIComponent(segment).replace(/~1/g, '/').replace(/~0/g, '~');
}

/** The event envelope, which every event schema extends (`allOf`), and the union of every event schema. */
const ENVELOPE = 'EventBase';
const UNION = 'Event';

/**
 * Builds the `Event` union of the bundled `schemas`: `oneOf` and a `type` discriminator mapping with every schema
 * that extends the envelope, sorted by event type. Extending the envelope is what makes a schema an event, so no
 * event can be left out of the union. `home` names the file a schema is defined in, for errors.
 */
function buildEventUnion(schemas: Record<string, any>, home: (schema: string) => string): void {
  const envelope = `#/components/schemas/${ENVELOPE}`;
  const events = new Map<string, string>();
  for (const [schema, value] of Object.entries(schemas)) {
    const parts: any[] = Array.isArray(value?.allOf) ? value.allOf : [];
    if (!parts.some((part) => part?.$ref === envelope)) continue;
    const types = parts.map((part) => part?.properties?.type?.const).filter((type) => type !== undefined);
    if (types.length !== 1 || typeof types[0] !== 'string') {
      throw new Error(
        `${home(schema)}: components/schemas/${schema} extends the event envelope (${ENVELOPE}) but gives no \`type\` ` +
          'const (one string, in one part of its allOf)',
      );
    }
    const other = events.get(types[0]);
    if (other) {
      throw new Error(
        `event type ${types[0]} is given by both components/schemas/${other} (${home(other)}) and components/schemas/${schema} (${home(schema)})`,
      );
    }
    events.set(types[0], schema);
  }
  if (events.size === 0) return;
  const union = schemas[UNION];
  if (!union) throw new Error(`the contract has event schemas but no components/schemas/${UNION} to hold their union`);
  for (const key of ['oneOf', 'discriminator']) {
    if (key in union) {
      throw new Error(
        `${home(UNION)}: components/schemas/${UNION} lists ${key} by hand; the bundle builds it from every schema ` +
          `that extends ${ENVELOPE}`,
      );
    }
  }
  const sorted = [...events].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  union.oneOf = sorted.map(([, schema]) => ({ $ref: `#/components/schemas/${schema}` }));
  union.discriminator = {
    propertyName: 'type',
    mapping: Object.fromEntries(sorted.map(([type, schema]) => [type, `#/components/schemas/${schema}`])),
  };
}

/**
 * Bundles the contract into one document. Paths and anything else a `$ref` points to outside `components` are
 * inlined; components keep their names: a component of any file becomes `#/components/<kind>/<name>` of the bundle,
 * so generated types are named as in the file that defines them. Every component of every file reached is kept,
 * file by file (the root, the files its paths point into in the root's order, then the others as reached), and a
 * `<kind>/<name>` defined in two files is an error. The `Event` union is built here from the event schemas of every
 * file (`buildEventUnion`), never listed by hand.
 */
export function bundle(rootPath: string): Bundled {
  const root = resolve(rootPath);
  const parsed = new Map<string, Record<string, any>>();
  const files: string[] = [];
  /** Which file defines each component: `<kind>/<name>` (`schemas/Device`) to an absolute path. */
  const homes = new Map<string, string>();
  const components: Record<string, Record<string, unknown>> = {};
  const pending: { file: string; kind: string; name: string }[] = [];

  const name = (file: string) => relative(dirname(root), file);

  function load(file: string): Record<string, any> {
    let doc = parsed.get(file);
    if (doc) return doc;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new Error(`${name(file)} (a $ref target) cannot be read`);
    }
    doc = (parse(text) ?? {}) as Record<string, any>;
    parsed.set(file, doc);
    files.push(file);
    for (const [kind, entries] of Object.entries<Record<string, unknown>>(doc.components ?? {})) {
      for (const component of Object.keys(entries ?? {})) {
        const key = `${kind}/${component}`;
        const other = homes.get(key);
        if (other) throw new Error(`components/${key} is defined in both ${name(other)} and ${name(file)}`);
        homes.set(key, file);
        pending.push({ file, kind, name: component });
      }
    }
    return doc;
  }

  function target(ref: string, from: string): { file: string; path: string[] } {
    const hash = ref.indexOf('#');
    const location = hash === -1 ? ref : ref.slice(0, hash);
    const fragment = hash === -1 ? '' : ref.slice(hash + 1);
    if (fragment !== '' && !fragment.startsWith('/')) throw new Error(`${name(from)}: unsupported $ref ${ref}`);
    const file = location === '' ? from : resolve(dirname(from), location);
    return { file, path: fragment === '' ? [] : fragment.slice(1).split('/').map(unescapePointer) };
  }

  function at(file: string, path: string[], ref: string, from: string): unknown {
    let node: any = load(file);
    for (const key of path) {
      if (node == null || typeof node !== 'object' || !(key in node)) throw new Error(`${name(from)}: unresolvable $ref ${ref}`);
      node = node[key];
    }
    return node;
  }

  /** A reference as it reads in the bundle: local for components (which are carried over), else `null`. */
  function localRef(ref: string, from: string): string | null {
    const { file, path } = target(ref, from);
    at(file, path, ref, from);
    if (path[0] !== 'components' || path.length < 3) return null;
    return `#/${path.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
  }

  function walk(value: unknown, from: string, trail: string[]): unknown {
    if (Array.isArray(value)) return value.map((v) => walk(v, from, trail));
    if (value === null || typeof value !== 'object') return value;
    const obj = value as Record<string, unknown>;
    if (typeof obj.$ref === 'string') {
      const ref = obj.$ref;
      const { $ref: _ref, ...siblings } = obj;
      const local = localRef(ref, from);
      if (local !== null) return { $ref: local, ...(walk(siblings, from, trail) as object) };
      if (trail.includes(ref)) throw new Error(`${name(from)}: recursive $ref ${ref}`);
      const { file, path } = target(ref, from);
      const inlined = walk(at(file, path, ref, from), file, [...trail, ref]) as Record<string, unknown>;
      return Object.keys(siblings).length ? { ...inlined, ...(walk(siblings, from, trail) as object) } : inlined;
    }
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(obj)) {
      if (key === 'discriminator' && v && typeof v === 'object' && (v as any).mapping) {
        const { mapping, ...rest } = v as { mapping: Record<string, string> };
        out[key] = {
          ...rest,
          mapping: Object.fromEntries(Object.entries(mapping).map(([k, ref]) => [k, localRef(ref, from) ?? ref])),
        };
      } else {
        out[key] = walk(v, from, trail);
      }
    }
    return out;
  }

  const rootDoc = load(root);
  // The domain files first, in the root's order, so components come grouped by domain and the shared ones last.
  for (const item of Object.values<Record<string, unknown>>(rootDoc.paths ?? {})) {
    if (typeof item?.$ref === 'string') load(target(item.$ref, root).file);
  }
  const { components: _components, ...rest } = rootDoc;
  const document = walk(rest, root, []) as Record<string, any>;
  for (let i = 0; i < pending.length; i++) {
    const { file, kind, name: component } = pending[i]!;
    (components[kind] ??= {})[component] = walk(parsed.get(file)!.components[kind][component], file, []);
  }
  if (components.schemas) buildEventUnion(components.schemas, (schema) => name(homes.get(`schemas/${schema}`)!));
  if (Object.keys(components).length > 0) document.components = components;
  return { document, files };
}
