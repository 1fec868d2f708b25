import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { bundle } from '../generate/bundle.js';
import { loadSpec } from '../generate/spec.js';
import { contractDir, contractRoot, copyContract } from './contract-copy.js';

const ROOT_KEYS = ['openapi', 'info', 'servers', 'security', 'tags', 'paths', 'components'];

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return ['dist', 'generate', 'test', 'node_modules'].includes(entry.name) ? [] : yamlFiles(path);
    return /\.ya?ml$/.test(entry.name) && entry.name !== 'redocly.yaml' ? [path] : [];
  });
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * What is wrong with the layout of the contract rooted at `root`: the root holds info, servers, security, tags and
 * one `$ref` per path into `domains/<tag>.yaml`; each domain file holds the paths of its tag's operations, each one
 * referenced from the root; every contract file is reached from the root.
 */
function layoutProblems(root: string): string[] {
  const dir = dirname(root);
  const problems: string[] = [];
  const rootDoc = parse(readFileSync(root, 'utf8')) as Record<string, any>;
  for (const key of Object.keys(rootDoc)) if (!ROOT_KEYS.includes(key)) problems.push(`the root holds ${key}`);
  for (const kind of Object.keys(rootDoc.components ?? {})) {
    if (kind !== 'securitySchemes') problems.push(`the root defines components/${kind}; they belong in a domain file or common.yaml`);
  }
  const tags = new Set<string>((rootDoc.tags ?? []).map((t: { name: string }) => t.name));

  const referenced = new Set<string>();
  for (const [path, item] of Object.entries<Record<string, unknown>>(rootDoc.paths ?? {})) {
    const ref = Object.keys(item).length === 1 ? item.$ref : undefined;
    const match = typeof ref === 'string' ? /^domains\/([a-z][a-z0-9-]*)\.yaml#\/paths\/(.+)$/.exec(ref) : null;
    if (!match) {
      problems.push(`the root's ${path} is not one $ref into domains/<domain>.yaml#/paths/...`);
      continue;
    }
    if (match[2] !== escapePointer(path)) problems.push(`the root's ${path} points at another path (${ref})`);
    referenced.add(`${match[1]} ${path}`);
  }

  for (const file of yamlFiles(join(dir, 'domains'))) {
    const domain = basename(file).replace(/\.ya?ml$/, '');
    if (!tags.has(domain)) problems.push(`domains/${basename(file)} has no tag ${domain} in the root`);
    const doc = parse(readFileSync(file, 'utf8')) as Record<string, any>;
    for (const key of Object.keys(doc)) {
      if (key !== 'paths' && key !== 'components') problems.push(`domains/${basename(file)} holds ${key}`);
    }
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths ?? {})) {
      if (!referenced.has(`${domain} ${path}`)) problems.push(`domains/${basename(file)}: ${path} is not referenced from the root`);
      for (const op of Object.values<any>(item)) {
        if (op?.operationId && op.tags?.[0] !== domain) {
          problems.push(`domains/${basename(file)}: ${op.operationId} is tagged ${op.tags?.[0]}, not ${domain}`);
        }
      }
    }
  }
  for (const tag of tags) {
    if (!yamlFiles(join(dir, 'domains')).some((f) => basename(f) === `${tag}.yaml`)) problems.push(`tag ${tag} has no domains/${tag}.yaml`);
  }

  const reached = new Set(bundle(root).files);
  for (const file of yamlFiles(dir)) {
    if (!reached.has(file)) problems.push(`${relative(dir, file)} is not reached from the root`);
  }
  return problems;
}

function refsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refsOf);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, v]) => {
    if (key === '$ref' && typeof v === 'string') return [v];
    if (key === 'mapping' && v && typeof v === 'object') return Object.values(v as Record<string, string>);
    return refsOf(v);
  });
}

const temps: string[] = [];
function temp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cloudphone-layout-'));
  temps.push(dir);
  return dir;
}

const WIDGETS = `paths:
  /v1/widgets:
    get:
      operationId: listWidgets
      tags: [widgets]
      summary: List widgets
      x-access: { role: viewer, scope: read }
      parameters:
        - $ref: '../common.yaml#/components/parameters/Limit'
        - $ref: '../common.yaml#/components/parameters/Cursor'
      responses:
        '200':
          description: A page of widgets.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/WidgetPage'
              example: { data: [{ id: wid_1, owner: usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA }], nextCursor: null }
        '400':
          $ref: '../common.yaml#/components/responses/BadRequest'
        '401':
          $ref: '../common.yaml#/components/responses/Unauthorized'
        '403':
          $ref: '../common.yaml#/components/responses/Forbidden'
components:
  schemas:
    Widget:
      type: object
      required: [id, owner]
      properties:
        id:
          type: string
        owner:
          $ref: 'users.yaml#/components/schemas/UserIdValue'
    WidgetPage:
      type: object
      required: [data, nextCursor]
      properties:
        data:
          type: array
          items:
            $ref: '#/components/schemas/Widget'
        nextCursor:
          type: [string, 'null']
    WidgetCreatedEvent:
      allOf:
        - $ref: '../common.yaml#/components/schemas/EventBase'
        - type: object
          description: A widget was created.
          properties:
            type:
              const: widget.created
            data:
              type: object
              required: [widget]
              properties:
                widget:
                  $ref: '#/components/schemas/Widget'
`;

describe("the contract's layout", () => {
  afterEach(() => {
    for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('is a root with one $ref per path into the domain file of its tag, and every contract file is reached', () => {
    expect(layoutProblems(contractRoot)).toEqual([]);
    const spec = loadSpec(contractRoot);
    expect(spec.files.map((f) => relative(contractDir, f)).sort()).toEqual(
      ['cloudphone.yaml', 'common.yaml', ...spec.tags.map((t) => `domains/${t.name}.yaml`)].sort(),
    );
  });

  it('names a file under domains/ that the root does not reference, a path in the wrong domain, and an unknown tag', () => {
    const dir = temp();
    const root = copyContract(dir, {
      'cloudphone.yaml': (text) =>
        text.replace("'domains/hosts.yaml#/paths/~1v1~1hosts~1adb-key'", "'domains/devices.yaml#/paths/~1v1~1devices'"),
    });
    writeFileSync(join(dir, 'domains', 'orphans.yaml'), 'paths: {}\n');
    expect(layoutProblems(root)).toEqual([
      "the root's /v1/hosts/adb-key points at another path (domains/devices.yaml#/paths/~1v1~1devices)",
      'domains/hosts.yaml: /v1/hosts/adb-key is not referenced from the root',
      'domains/orphans.yaml has no tag orphans in the root',
      'domains/orphans.yaml is not reached from the root',
    ]);
  });

  it('bundles into one document whose $refs and discriminator mappings are all local, each resolving to a component', () => {
    const { document } = bundle(contractRoot);
    const refs = refsOf(document);
    expect(refs.length).toBeGreaterThan(300);
    const unresolved = refs.filter((ref) => {
      const match = /^#\/components\/(\w+)\/([\w.-]+)$/.exec(ref);
      return !match || document.components?.[match[1]!]?.[match[2]!] === undefined;
    });
    expect(unresolved).toEqual([]);
  });

  it('uses every component it defines, in whichever file', () => {
    const { document } = bundle(contractRoot);
    const used = new Set(refsOf(document));
    const unused = Object.entries<Record<string, unknown>>(document.components)
      .filter(([kind]) => kind !== 'securitySchemes')
      .flatMap(([kind, entries]) => Object.keys(entries).map((name) => `#/components/${kind}/${name}`))
      .filter((ref) => !used.has(ref));
    expect(unused).toEqual([]);
  });

  it('keeps each component in one file: a name defined in two files is an error naming both', () => {
    const dir = temp();
    const root = copyContract(dir, {
      'domains/hosts.yaml': (text) => text.replace('  schemas:\n', '  schemas:\n    Problem:\n      type: object\n'),
    });
    expect(() => bundle(root)).toThrow('components/schemas/Problem is defined in both domains/hosts.yaml and common.yaml');
  });

  it('changes the hash the generated files carry when any contract file changes', () => {
    const base = loadSpec(contractRoot);
    for (const file of base.files) {
      const path = relative(contractDir, file);
      const root = copyContract(temp(), {
        [path]: (text) => text.replace(/^(\s+description: (?![|>]).*)$/m, '$1 Edited.'),
      });
      expect(loadSpec(root).hash, path).not.toBe(base.hash);
    }
  });

  it('builds the Event union from every schema that extends the event envelope, by event type', () => {
    const { document } = bundle(contractRoot);
    const { Event: union, ...schemas } = document.components.schemas as Record<string, any>;
    const events = Object.entries(schemas)
      .filter(([, schema]) => schema.allOf?.some((part: { $ref?: string }) => part.$ref === '#/components/schemas/EventBase'))
      .map(([name, schema]) => [schema.allOf.find((part: any) => part.properties?.type?.const).properties.type.const, name])
      .sort(([a], [b]) => (a < b ? -1 : 1));
    expect(events.length).toBeGreaterThan(20);
    expect(union).toEqual({
      description: expect.any(String),
      oneOf: events.map(([, name]) => ({ $ref: `#/components/schemas/${name}` })),
      discriminator: {
        propertyName: 'type',
        mapping: Object.fromEntries(events.map(([type, name]) => [type, `#/components/schemas/${name}`])),
      },
    });
  });

  it('refuses an event schema without a type constant, two schemas of one event type, and a union listed by hand', () => {
    const noType = copyContract(temp(), {
      'domains/leases.yaml': (text) => text.replace('              const: lease.renewed\n', '              type: string\n'),
    });
    expect(() => bundle(noType)).toThrow(
      'domains/leases.yaml: components/schemas/LeaseRenewedEvent extends the event envelope (EventBase) but gives no `type` const',
    );
    const twice = copyContract(temp(), {
      'domains/leases.yaml': (text) => text.replace('const: lease.renewed', 'const: lease.granted'),
    });
    expect(() => bundle(twice)).toThrow(
      'event type lease.granted is given by both components/schemas/LeaseGrantedEvent (domains/leases.yaml) and components/schemas/LeaseRenewedEvent (domains/leases.yaml)',
    );
    const byHand = copyContract(temp(), {
      'domains/events.yaml': (text) =>
        text.replace(/(\n    Event:\n      description: .*\n)/, "$1      oneOf:\n        - $ref: 'users.yaml#/components/schemas/UserCreatedEvent'\n"),
    });
    expect(() => bundle(byHand)).toThrow(
      'domains/events.yaml: components/schemas/Event lists oneOf by hand; the bundle builds it from every schema that extends EventBase',
    );
  });

  it('takes a new domain, its events included, as one new file in domains/ plus its tag and paths in the root', () => {
    const dir = temp();
    const root = copyContract(dir, {
      'cloudphone.yaml': (text) =>
        text
          .replace('\npaths:\n', "  - name: widgets\n    description: Widgets.\n\npaths:\n")
          .replace('\ncomponents:\n', "  /v1/widgets:\n    $ref: 'domains/widgets.yaml#/paths/~1v1~1widgets'\n\ncomponents:\n"),
    });
    writeFileSync(join(dir, 'domains', 'widgets.yaml'), WIDGETS);
    expect(layoutProblems(root)).toEqual([]);
    const spec = loadSpec(root);
    expect(spec.operations.find((op) => op.id === 'listWidgets')).toMatchObject({
      tag: 'widgets',
      paginated: true,
      sdk: { namespace: 'widgets', method: 'list' },
      cli: { id: 'widgets list' },
    });
    expect(spec.document.components.schemas.Widget.properties.owner).toEqual({ $ref: '#/components/schemas/UserIdValue' });
    const union = spec.document.components.schemas.Event;
    const types = Object.keys(union.discriminator.mapping);
    expect(union.discriminator.mapping['widget.created']).toBe('#/components/schemas/WidgetCreatedEvent');
    expect(union.oneOf).toContainEqual({ $ref: '#/components/schemas/WidgetCreatedEvent' });
    expect(types).toEqual([...types].sort());
    expect(union.oneOf).toEqual(types.map((type) => ({ $ref: union.discriminator.mapping[type] })));
    const lint = spawnSync(
      join(contractDir, '..', 'node_modules', '.bin', 'redocly'),
      ['lint', root, '--config', join(contractDir, 'redocly.yaml')],
      { encoding: 'utf8' },
    );
    expect(lint.status, lint.stdout + lint.stderr).toBe(0);
  });
});
