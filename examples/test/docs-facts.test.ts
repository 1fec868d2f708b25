/**
 * The docs cannot go stale.
 *
 * - docs/cli.md and docs/reference.md are generated (cli/scripts/docs.js, run by `npm run build`): they must be what
 *   the built CLI, the contract and the error catalogue render now, and a stale one fails the check, unrewritten.
 * - The handwritten docs state no count of operations, commands, event types, error codes or domains that
 *   disagrees with the code, and one they cannot be checked against is refused: link docs/reference.md instead.
 * - Every repository path the handwritten docs name exists, every link to a heading finds it, and every folder of
 *   server/src/ has a paragraph in docs/architecture.md.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../openapi/generate/spec.js';
import { errorCatalogue } from '../../server/src/http/errors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCS_SCRIPT = join(ROOT, 'cli', 'scripts', 'docs.js');
const spec = loadSpec(join(ROOT, 'openapi', 'cloudphone.yaml'));

/** The `.ts` files below `dir`, recursively. */
function typescriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? typescriptFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

const handwrittenCommands = typescriptFiles(join(ROOT, 'cli', 'src', 'commands')).length;
const generatedCommands = typescriptFiles(join(ROOT, 'cli', 'src', 'generated', 'commands')).length;
const eventTypes = Object.keys(
  (spec.document.components?.schemas?.Event?.discriminator?.mapping ?? {}) as Record<string, string>,
).length;
const tagNames = spec.tags.map((tag) => tag.name);

/** The number a count in prose refers to, or a reason it cannot be checked. */
function countFor(qualifiers: string[], noun: string): number | string {
  const words = qualifiers.map((word) => word.toLowerCase());
  if (/^operations?$/.test(noun)) {
    const domain = words.find((word) => tagNames.includes(word) || tagNames.includes(`${word}s`));
    if (domain) return spec.operations.filter((op) => op.tag === domain || op.tag === `${domain}s`).length;
    if (words.every((word) => ['api', 'contract', 'the'].includes(word))) return spec.operations.length;
    return `"${[...qualifiers, noun].join(' ')}" is not a count the code can confirm`;
  }
  if (/^commands?$/.test(noun)) {
    if (words.includes('handwritten')) return handwrittenCommands;
    if (words.includes('generated')) return generatedCommands;
    if (words.every((word) => ['cli', 'the'].includes(word))) return handwrittenCommands + generatedCommands;
    return `"${[...qualifiers, noun].join(' ')}" is not a count the code can confirm`;
  }
  if (/^event types?$/.test(noun)) return eventTypes;
  if (/^error codes?$/.test(noun)) return Object.keys(errorCatalogue).length;
  return tagNames.length; // domains
}

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven',
  'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty'];
const NOUNS = 'operations?|commands?|event types?|error codes?|domains';
/** A number in digits, up to two qualifying words, and a countable noun: `54 operations`, `17 handwritten CLI commands`. */
const DIGIT_COUNT = new RegExp(`\\b(\\d+)((?:\\s+[A-Za-z-]+){0,2}?)\\s+(${NOUNS})\\b`, 'g');
/**
 * A number in words before generated or handwritten commands or operations: `four handwritten CLI commands`. Other
 * numbers in words are prose (`two CLI commands sharing a profile can race`), not counts of the product.
 */
const WORD_COUNT = new RegExp(
  `\\b(${NUMBER_WORDS.slice(2).join('|')})\\s+(handwritten|generated)\\s+(?:CLI\\s+)?(operations|commands)\\b`,
  'gi',
);

interface Count {
  where: string;
  text: string;
  stated: number;
  actual: number | string;
}

/** The counts a Markdown text states, outside code blocks. */
function countsIn(file: string, text: string): Count[] {
  const counts: Count[] = [];
  let fenced = false;
  text.split('\n').forEach((line, index) => {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) return;
    for (const match of line.matchAll(DIGIT_COUNT)) {
      const qualifiers = match[2]!.trim().split(/\s+/).filter(Boolean);
      counts.push({ where: `${file}:${index + 1}`, text: match[0], stated: Number(match[1]), actual: countFor(qualifiers, match[3]!) });
    }
    for (const match of line.matchAll(WORD_COUNT)) {
      const qualifiers = [match[2]!];
      const stated = NUMBER_WORDS.indexOf(match[1]!.toLowerCase());
      counts.push({ where: `${file}:${index + 1}`, text: match[0], stated, actual: countFor(qualifiers, match[3]!.toLowerCase()) });
    }
  });
  return counts;
}

/** The handwritten Markdown files: the READMEs and docs/*.md except the generated ones. */
function handwrittenDocs(): string[] {
  const generated = new Set(['cli.md', 'reference.md']);
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md') && !generated.has(name))
    .sort()
    .map((name) => `docs/${name}`);
  const readmes = readdirSync(ROOT)
    .filter((name) => name !== 'node_modules' && existsSync(join(ROOT, name, 'README.md')))
    .sort()
    .map((name) => `${name}/README.md`);
  return ['README.md', ...readmes, ...docs];
}

/** Every file and folder of the repository (relative, `/`-separated; folders end in `/`), build output aside. */
function repositoryEntries(dir = ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (['node_modules', 'dist', '.git'].includes(entry.name)) return [];
    const path = relative(ROOT, join(dir, entry.name)).split(sep).join('/');
    return entry.isDirectory() ? [`${path}/`, ...repositoryEntries(join(dir, entry.name))] : [path];
  });
}

const PACKAGE_FOLDERS = ['openapi', 'sdk', 'cli', 'server', 'examples', 'bench', 'docs'];
const PATH_TOKEN = /(?<![\w@$~./:{},-])((?:[\w.{},-]+\/)+[\w.{},-]*)/g;
const FILE_EXTENSIONS = /\.(ts|js|json|yaml|yml|md|sql)$/;

/** `a/{b,c}.ts` → `a/b.ts`, `a/c.ts`. */
function expandBraces(path: string): string[] {
  const brace = /\{([^{}]*)\}/.exec(path);
  if (!brace) return [path];
  return brace[1]!.split(',').flatMap((part) => expandBraces(path.replace(brace[0], part.trim())));
}

/**
 * The repository paths a Markdown text names that do not exist. A file or folder (a trailing `/`) starting with a
 * package folder (`server/src/http/errors.ts`, `server/src/db/`) must exist as written; a shorter file path
 * (`http/errors.ts`, written inside a section about its folder) must be the end of some file's path. Only files
 * with a known extension count; placeholders (`<domain>`, `*`) are not checked.
 */
function missingPaths(file: string, text: string, entries: string[]): string[] {
  const missing: string[] = [];
  text.replaceAll(/https?:\/\/\S+/g, '').split('\n').forEach((line, index) => {
    for (const candidate of line.matchAll(PATH_TOKEN)) {
      // `../openapi/cloudphone.yaml` (a link from docs/) and `./server/...` name paths from the repository's root.
      const raw = candidate[1]!.replace(/[.,:;]+$/, '').replace(/^(?:\.\.?\/)+/, '');
      if (/[<*]/.test(line[candidate.index + candidate[1]!.length] ?? '')) continue;
      for (const path of expandBraces(raw)) {
        const full = PACKAGE_FOLDERS.includes(path.split('/')[0]!);
        if (!(FILE_EXTENSIONS.test(path) || (full && path.endsWith('/')))) continue;
        // A TypeScript import names the compiled file: `server/src/virtual-device/index.js` is `index.ts`.
        const forms = path.endsWith('.js') ? [path, path.replace(/\.js$/, '.ts')] : [path];
        const exists = forms.some((form) => (full ? entries.includes(form) : entries.some((entry) => entry.endsWith(`/${form}`))));
        if (!exists) missing.push(`${file}:${index + 1}: ${path}`);
      }
    }
  });
  return missing;
}

/** The folders of server/src/ that no paragraph of `text` begins by naming (`server/src/<folder>/`). */
function foldersWithoutParagraph(text: string, folders: string[]): string[] {
  const blocks = text.split(/\n\s*\n|\n(?=- )/).map((block) => block.trim());
  return folders.filter((folder) => {
    const path = `server/src/${folder}/`;
    return !blocks.some((block) => block.replace(/^(#+ |- )?[*`]*/, '').startsWith(path));
  });
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens, `-1`, `-2` for repeats. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-');
    let anchor = slug;
    for (let n = 1; anchors.has(anchor); n += 1) anchor = `${slug}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

/** The links of a Markdown file (`file` relative to the root) to a heading that its target does not have. */
function brokenAnchors(file: string, text: string): string[] {
  const broken: string[] = [];
  text.split('\n').forEach((line, index) => {
    for (const link of line.matchAll(/\]\(([^()\s#]*)#([^()\s]+)\)/g)) {
      const [, target, anchor] = link;
      if (/^[a-z]+:/.test(target!)) continue;
      const path = target ? join(ROOT, file, '..', target) : join(ROOT, file);
      const exists = existsSync(path) && anchorsOf(readFileSync(path, 'utf8')).has(anchor!);
      if (!exists) broken.push(`${file}:${index + 1}: ${target}#${anchor}`);
    }
  });
  return broken;
}

describe('generated docs', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const runDocs = (...args: string[]) => spawnSync(process.execPath, [DOCS_SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8' });

  it('docs/cli.md and docs/reference.md are what the contract, the error catalogue and the built CLI render', () => {
    const result = runDocs('--check');
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('a stale generated doc fails the check and is left as it was', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudphone-docs-'));
    dirs.push(dir);
    cpSync(join(ROOT, 'docs'), dir, { recursive: true });
    const stale = readFileSync(join(dir, 'reference.md'), 'utf8').replace(/\| Operations \| \d+/, '| Operations | 42');
    writeFileSync(join(dir, 'reference.md'), stale);
    const result = runDocs('--check', '--docs-dir', dir);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('reference.md');
    expect(result.stderr).not.toContain('cli.md');
    expect(readFileSync(join(dir, 'reference.md'), 'utf8')).toBe(stale);
  });

  it('the reference counts what the code has', () => {
    const reference = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
    expect(reference).toContain(`| Operations | ${spec.operations.length}, in ${tagNames.length} domains (tags) |`);
    expect(reference).toContain(`| Event types | ${eventTypes} |`);
    expect(reference).toContain(`| Error codes | ${Object.keys(errorCatalogue).length} |`);
    expect(reference).toContain(`### Generated from the contract (${generatedCommands})`);
    expect(reference).toContain(`### Handwritten (${handwrittenCommands})`);
    for (const op of spec.operations) expect(reference).toContain(`| \`${op.id}\`: `);
    for (const code of Object.keys(errorCatalogue)) expect(reference).toContain(`| \`${code}\` |`);
  });
});

describe('handwritten docs', () => {
  it('recognises the counts it checks and the stale ones', () => {
    const counts = countsIn('x.md', [
      `One file for now (42 operations), ${spec.operations.length} API operations, four handwritten CLI commands.`,
      `${handwrittenCommands} handwritten commands, 3 lease operations, 7 binary operations, ${eventTypes} event types.`,
      '```', '99 operations in a code block', '```',
    ].join('\n'));
    expect(counts.map(({ text, stated, actual }) => [text, stated, actual])).toEqual([
      ['42 operations', 42, spec.operations.length],
      [`${spec.operations.length} API operations`, spec.operations.length, spec.operations.length],
      ['four handwritten CLI commands', 4, handwrittenCommands],
      [`${handwrittenCommands} handwritten commands`, handwrittenCommands, handwrittenCommands],
      ['3 lease operations', 3, spec.operations.filter((op) => op.tag === 'leases').length],
      ['7 binary operations', 7, '"binary operations" is not a count the code can confirm'],
      [`${eventTypes} event types`, eventTypes, eventTypes],
    ]);
  });

  it.each(handwrittenDocs())('%s states no count that disagrees with the code', (file) => {
    const wrong = countsIn(file, readFileSync(join(ROOT, file), 'utf8'))
      .filter(({ stated, actual }) => stated !== actual)
      .map(({ where, text, actual }) => `${where}: "${text}" (the code has ${actual}; or link docs/reference.md)`);
    expect(wrong).toEqual([]);
  });

  it.each(handwrittenDocs())('%s names only paths that exist', (file) => {
    expect(missingPaths(file, readFileSync(join(ROOT, file), 'utf8'), repositoryEntries())).toEqual([]);
  });

  it.each(handwrittenDocs())('%s links only to headings that exist', (file) => {
    expect(brokenAnchors(file, readFileSync(join(ROOT, file), 'utf8'))).toEqual([]);
  });

  it('recognises the anchors GitHub gives headings', () => {
    expect([...anchorsOf('# Devices, leases and hosts (`server/src/devices/`)\n## Apps\n## Apps\n```\n# not a heading\n```')])
      .toEqual(['devices-leases-and-hosts-serversrcdevices', 'apps', 'apps-1']);
    expect(brokenAnchors('docs/x.md', '[a](architecture.md#the-contract) [b](architecture.md#apps-serverapps) [c](#nowhere)'))
      .toEqual(['docs/x.md:1: architecture.md#apps-serverapps', 'docs/x.md:1: #nowhere']);
  });

  it('recognises the paths it checks and the missing ones', () => {
    const entries = repositoryEntries();
    const text = 'see `server/src/http/errors.ts`, `http/errors.ts`, `http/nowhere.ts`, `server/src/nowhere/`, `cli/src/{help,nothing}.ts`';
    expect(missingPaths('x.md', text, entries)).toEqual([
      'x.md:1: http/nowhere.ts',
      'x.md:1: server/src/nowhere/',
      'x.md:1: cli/src/nothing.ts',
    ]);
    expect(missingPaths('x.md', "import { startVirtualDevice } from './server/src/virtual-device/index.js';", entries)).toEqual([]);
  });

  it('docs/architecture.md has a paragraph for every folder of server/src/', () => {
    const folders = readdirSync(join(ROOT, 'server', 'src')).filter((name) => statSync(join(ROOT, 'server', 'src', name)).isDirectory());
    expect(folders.length).toBeGreaterThan(0);
    expect(foldersWithoutParagraph('text\n\n`server/src/a/` does a.\n\n- **`server/src/b/`**: b', ['a', 'b', 'c'])).toEqual(['c']);
    expect(foldersWithoutParagraph(readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8'), folders)).toEqual([]);
  });
});
