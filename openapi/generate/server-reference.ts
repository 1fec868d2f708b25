import type { JsonSchema, Operation, Parameter, Spec } from './spec.js';

/**
 * The API reference page: one self-contained HTML document (inline CSS, no scripts, fonts or other requests)
 * rendered from the contract. Every piece of contract text is escaped; descriptions get a small Markdown subset
 * (paragraphs, `code`, **bold**).
 */

function escape(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function inline(text: string): string {
  return escape(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
}

function prose(text: string): string {
  return text
    .trim()
    .split(/\n\s*\n/)
    .filter((p) => p.trim() !== '')
    .map((p) => `<p>${inline(p.replace(/\s*\n\s*/g, ' '))}</p>`)
    .join('\n');
}

/** A description followed by its constraints in muted text. */
function describe(description: string, constraints: string[]): string {
  const muted = constraints.length > 0 ? `<span class="muted">${constraints.join('; ')}</span>` : '';
  return [description, muted].filter(Boolean).join(' ');
}

function refName(ref: string): string {
  return ref.slice(ref.lastIndexOf('/') + 1);
}

function schemaLink(name: string): string {
  return `<a href="#schema-${escape(name)}">${escape(name)}</a>`;
}

class SchemaRenderer {
  constructor(private readonly spec: Spec) {}

  /** A contract node as written, with its `$ref` (if any) followed, but not those below it. */
  follow(node: JsonSchema): JsonSchema {
    while (typeof node.$ref === 'string') {
      node = node.$ref
        .slice(2)
        .split('/')
        .reduce<any>((n, key) => n[key], this.spec.document) as JsonSchema;
    }
    return node;
  }

  /** A readable type: `string (date-time)`, `array of Scope`, `one of: admin, member, viewer`, `User`. */
  type(schema: JsonSchema): string {
    if (typeof schema.$ref === 'string') {
      const link = schemaLink(refName(schema.$ref));
      const target = this.follow(schema);
      const composite = 'properties' in target || 'allOf' in target || 'oneOf' in target || 'anyOf' in target;
      return composite ? link : `${this.type(target)} <span class="muted">(${link})</span>`;
    }
    if ('const' in schema) return `<code>${escape(JSON.stringify(schema.const))}</code>`;
    if (Array.isArray(schema.enum))
      return `one of: ${schema.enum.map((v) => `<code>${escape(String(v))}</code>`).join(', ')}`;
    for (const combinator of ['oneOf', 'anyOf'] as const) {
      const parts = schema[combinator];
      if (Array.isArray(parts)) return parts.map((p) => this.type(p as JsonSchema)).join(' or ');
    }
    if (Array.isArray(schema.allOf)) return schema.allOf.map((p) => this.type(p as JsonSchema)).join(' and ');
    const types = (Array.isArray(schema.type) ? schema.type : [schema.type ?? 'any']) as string[];
    return types
      .map((t) => {
        if (t === 'array') return `array of ${schema.items ? this.type(schema.items as JsonSchema) : 'any'}`;
        if (t === 'string' && typeof schema.format === 'string') return `string (${escape(schema.format)})`;
        return escape(t);
      })
      .join(' or ');
  }

  /** Constraints worth telling a caller: lengths, ranges, patterns, defaults. */
  constraints(schema: JsonSchema): string[] {
    const s = this.follow(schema);
    const out: string[] = [];
    const range = (min: unknown, max: unknown, unit = '') => {
      const suffix = unit ? ` ${unit}` : '';
      if (min !== undefined && max !== undefined) out.push(`${min}–${max}${suffix}`);
      else if (min !== undefined) out.push(`at least ${min}${suffix}`);
      else if (max !== undefined) out.push(`at most ${max}${suffix}`);
    };
    range(s.minLength, s.maxLength, 'characters');
    range(s.minItems, s.maxItems, 'items');
    range(s.minimum, s.maximum);
    if (s.uniqueItems) out.push('no duplicates');
    if (typeof s.pattern === 'string') out.push(`pattern <code>${escape(s.pattern)}</code>`);
    if ('default' in s) out.push(`default <code>${escape(JSON.stringify(s.default))}</code>`);
    return out;
  }

  /** The properties of an object schema, merging `allOf` parts. */
  properties(schema: JsonSchema): { name: string; schema: JsonSchema; required: boolean }[] {
    const s = this.follow(schema);
    const merged = new Map<string, { schema: JsonSchema; required: boolean }>();
    for (const part of Array.isArray(s.allOf) ? (s.allOf as JsonSchema[]) : [s]) {
      const t = this.follow(part);
      const required = new Set((t.required ?? []) as string[]);
      for (const [name, prop] of Object.entries((t.properties ?? {}) as Record<string, JsonSchema>)) {
        const before = merged.get(name);
        merged.set(name, { schema: prop, required: required.has(name) || Boolean(before?.required) });
      }
      for (const name of required) {
        const before = merged.get(name);
        if (before) before.required = true;
      }
    }
    return [...merged].map(([name, p]) => ({ name, ...p }));
  }

  description(schema: JsonSchema): string {
    const own = typeof schema.description === 'string' ? schema.description : undefined;
    const target = this.follow(schema).description;
    return own ?? (typeof target === 'string' ? target : '');
  }

  propertyTable(schema: JsonSchema): string {
    const props = this.properties(schema);
    if (props.length === 0) return '';
    const rows = props.map((p) => {
      const notes = describe(inline(this.description(p.schema)), this.constraints(p.schema));
      return `<tr><td><code>${escape(p.name)}</code></td><td>${this.type(p.schema)}</td><td>${p.required ? 'yes' : ''}</td><td>${notes}</td></tr>`;
    });
    return [
      '<table>',
      '<thead><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr></thead>',
      `<tbody>${rows.join('\n')}</tbody>`,
      '</table>',
    ].join('\n');
  }
}

function example(value: unknown): string {
  return value === undefined ? '' : `<pre><code>${escape(JSON.stringify(value, null, 2))}</code></pre>`;
}

function parameterTable(parameters: Parameter[], schemas: SchemaRenderer): string {
  const rows = parameters.map((p) => {
    const notes = describe(inline(p.description), schemas.constraints(p.schema));
    return `<tr><td><code>${escape(p.name)}</code></td><td>${p.in}</td><td>${schemas.type(p.schema)}</td><td>${p.required ? 'yes' : ''}</td><td>${notes}</td></tr>`;
  });
  return [
    '<h4>Parameters</h4>',
    '<table>',
    '<thead><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th><th>Description</th></tr></thead>',
    `<tbody>${rows.join('\n')}</tbody>`,
    '</table>',
  ].join('\n');
}

function responses(op: Operation, spec: Spec, schemas: SchemaRenderer): string {
  const written = spec.document.paths[op.path][op.method.toLowerCase()].responses as Record<string, JsonSchema>;
  const rows = Object.entries(written).map(([status, value]) => {
    const response = schemas.follow(value);
    const media = Object.entries((response.content ?? {}) as Record<string, JsonSchema>)[0];
    const body = media
      ? `${media[1].schema ? schemas.type(media[1].schema as JsonSchema) : 'any'} <span class="muted">${escape(media[0])}</span>`
      : '<span class="muted">no body</span>';
    return `<tr><td><code>${escape(status)}</code></td><td>${inline(String(response.description ?? ''))}</td><td>${body}</td></tr>`;
  });
  return [
    '<h4>Responses</h4>',
    '<table>',
    '<thead><tr><th>Status</th><th>Meaning</th><th>Body</th></tr></thead>',
    `<tbody>${rows.join('\n')}</tbody>`,
    '</table>',
  ].join('\n');
}

function operationSection(op: Operation, spec: Spec, schemas: SchemaRenderer): string {
  const access = op.access
    ? `Needs role <strong>${op.access.role}</strong> or above and a credential with scope <strong>${op.access.scope}</strong>.`
    : 'Public: no credential needed.';
  const parts = [
    `<section class="operation" id="${escape(op.id)}">`,
    `<h3><span class="method ${op.method.toLowerCase()}">${op.method}</span> <code class="path">${escape(op.path)}</code></h3>`,
    `<p class="summary">${inline(op.summary)} <code class="opid">${escape(op.id)}</code></p>`,
    op.description ? prose(op.description) : '',
    `<p class="access">${access}${op.idempotent ? ' Send an <code>Idempotency-Key</code> to make retries safe.' : ''}</p>`,
    op.parameters.length > 0 ? parameterTable(op.parameters, schemas) : '',
  ];
  if (op.body) {
    const name = typeof op.body.schemaRef.$ref === 'string' ? ` (${schemaLink(refName(op.body.schemaRef.$ref))})` : '';
    parts.push(`<h4>Request body${name}</h4>`, schemas.propertyTable(op.body.schemaRef), example(op.body.example));
  }
  parts.push(responses(op, spec, schemas));
  if (op.success.example !== undefined) {
    parts.push(
      `<h4>Example response <span class="muted">${op.success.status}</span></h4>`,
      example(op.success.example),
    );
  }
  parts.push('</section>');
  return parts.filter(Boolean).join('\n');
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1d232a; --muted: #5c6670; --bg: #ffffff; --panel: #f4f6f8; --line: #dde2e7; --link: #0b5cad; }
@media (prefers-color-scheme: dark) { :root { --fg: #e3e7eb; --muted: #9aa4ae; --bg: #14181c; --panel: #1d2328; --line: #2e363d; --link: #6cb0f5; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--link); text-decoration: none; } a:hover { text-decoration: underline; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 0.75rem 1rem; overflow-x: auto; }
.layout { display: grid; grid-template-columns: 17rem 1fr; }
nav { position: sticky; top: 0; height: 100vh; overflow-y: auto; padding: 1.5rem 1rem; border-right: 1px solid var(--line); background: var(--panel); }
nav h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); margin: 1.2rem 0 0.3rem; }
nav ul { list-style: none; margin: 0; padding: 0; } nav li { margin: 0.15rem 0; font-size: 0.9rem; }
main { padding: 2rem 3rem; max-width: 62rem; }
h1 { margin-top: 0; } h2 { border-bottom: 1px solid var(--line); padding-bottom: 0.3rem; margin-top: 2.5rem; }
.operation { border: 1px solid var(--line); border-radius: 8px; padding: 0.5rem 1.25rem 1rem; margin: 1.5rem 0; }
.operation h3 { display: flex; gap: 0.6rem; align-items: center; flex-wrap: wrap; }
.method { font-size: 0.75rem; font-weight: 700; padding: 0.15rem 0.5rem; border-radius: 4px; color: #fff; }
.get { background: #1f7a4d; } .post { background: #0b5cad; } .patch { background: #9a6700; } .put { background: #8250df; } .delete { background: #b42318; }
.summary { font-weight: 600; } .opid, .muted { color: var(--muted); font-weight: normal; }
.access { font-size: 0.9rem; color: var(--muted); }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { text-align: left; vertical-align: top; padding: 0.4rem 0.6rem; border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); }
@media (max-width: 50rem) { .layout { display: block; } nav { position: static; height: auto; } main { padding: 1rem; } }
`;

export function renderApiReference(spec: Spec): string {
  const info = spec.document.info as Record<string, string>;
  const schemas = new SchemaRenderer(spec);
  const byTag = spec.tags.map((tag) => ({ ...tag, operations: spec.operations.filter((op) => op.tag === tag.name) }));
  const components = Object.entries((spec.document.components?.schemas ?? {}) as Record<string, JsonSchema>);

  const nav = [
    '<nav>',
    `<strong>${escape(info.title ?? 'API')}</strong>`,
    ...byTag.flatMap((tag) => [
      `<h2><a href="#tag-${escape(tag.name)}">${escape(tag.name)}</a></h2>`,
      '<ul>',
      ...tag.operations.map((op) => `<li><a href="#${escape(op.id)}">${inline(op.summary)}</a></li>`),
      '</ul>',
    ]),
    '<h2><a href="#schemas">schemas</a></h2>',
    '</nav>',
  ];

  const main = [
    '<main>',
    `<h1>${escape(info.title ?? 'API')} <span class="muted">${escape(info.version ?? '')}</span></h1>`,
    info.summary ? `<p class="summary">${inline(info.summary)}</p>` : '',
    prose(info.description ?? ''),
    '<p>The contract itself: <a href="/openapi.json">/openapi.json</a>.</p>',
    ...byTag.flatMap((tag) => [
      `<h2 id="tag-${escape(tag.name)}">${escape(tag.name)}</h2>`,
      prose(tag.description),
      ...tag.operations.map((op) => operationSection(op, spec, schemas)),
    ]),
    '<h2 id="schemas">Schemas</h2>',
    ...components.flatMap(([name, schema]) => [
      `<section id="schema-${escape(name)}">`,
      `<h3>${escape(name)}</h3>`,
      prose(schemas.description(schema)),
      schemas.properties(schema).length > 0 ? schemas.propertyTable(schema) : `<p>Type: ${schemas.type(schema)}</p>`,
      '</section>',
    ]),
    '</main>',
  ];

  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escape(info.title ?? 'API')} reference</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<div class="layout">',
    ...nav,
    ...main,
    '</div>',
    '</body>',
    '</html>',
  ]
    .filter(Boolean)
    .join('\n');
}
