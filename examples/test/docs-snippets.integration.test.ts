/**
 * The code in README.md and docs/*.md works as written.
 *
 * - Every TypeScript or JavaScript block is run, twice (a reader runs a snippet again), against a real server with
 *   virtual devices, with the environment the README tells the reader to set (`CLOUDPHONE_API_URL`, and an admin's
 *   API token in `CLOUDPHONE_TOKEN`), from a project folder that holds the APKs at the paths the docs name. A block
 *   that is deliberately incomplete says so in its info string (```ts fragment) and is only parsed for that mark.
 * - Every `cloudphone …` command line in a console transcript or shell block names a command that exists, with
 *   flags that command takes (checked against the CLI's oclif manifests). Shell blocks are not run: they need a
 *   shell, jq and a build tree, and their commands are what can drift.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/src/index.js';
import { APKS } from '../../server/test/helpers/apk-fixtures.js';
import { CloudPhone } from '../../sdk/src/index.js';
import { runNode, TSX_CLI } from './run-node.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const ADMIN_PASSWORD = 'admin-password-for-docs';

const SCRIPT_LANGUAGES = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);
const SHELL_LANGUAGES = new Set(['sh', 'bash', 'shell', 'console']);

/** The files the docs' snippets read, relative to the reader's project folder, and what they are here. */
const PROJECT_FILES: Record<string, string> = {
  'app-debug.apk': APKS.settings,
  'app/build/outputs/apk/debug/app-debug.apk': APKS.settings,
  'app/build/outputs/apk/androidTest/debug/app-debug-androidTest.apk': APKS.uiautomator2Test,
};

interface Block {
  /** `README.md:163`: where the block opens. */
  where: string;
  language: string;
  fragment: boolean;
  code: string;
}

function documents(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

/** The fenced code blocks of a Markdown file, with their info strings. */
function codeBlocks(file: string, text: string): Block[] {
  const blocks: Block[] = [];
  let open: { line: number; info: string[]; lines: string[] } | undefined;
  text.split('\n').forEach((line, index) => {
    if (open === undefined) {
      const fence = /^```(.*)$/.exec(line);
      if (fence) open = { line: index + 1, info: fence[1]!.trim().split(/\s+/).filter(Boolean), lines: [] };
    } else if (line === '```') {
      const [language = '', ...words] = open.info;
      blocks.push({
        where: `${file}:${open.line}`,
        language,
        fragment: words.includes('fragment'),
        code: `${open.lines.join('\n')}\n`,
      });
      open = undefined;
    } else {
      open.lines.push(line);
    }
  });
  return blocks;
}

const BLOCKS = documents().flatMap((file) => codeBlocks(file, readFileSync(join(ROOT, file), 'utf8')));
const SCRIPTS = BLOCKS.filter((block) => SCRIPT_LANGUAGES.has(block.language) && !block.fragment);

// ---------------------------------------------------------------------------------------------------------------
// Command lines

interface Flag {
  char?: string;
  type: 'boolean' | 'option';
}
interface ManifestCommand {
  flags: Record<string, Flag>;
}

function manifestCommands(): Map<string, ManifestCommand> {
  const cli = JSON.parse(readFileSync(join(ROOT, 'cli/package.json'), 'utf8')) as { oclif: { plugins?: string[] } };
  const manifests = [
    join(ROOT, 'cli/oclif.manifest.json'),
    ...(cli.oclif.plugins ?? []).map((plugin) => join(ROOT, 'node_modules', plugin, 'oclif.manifest.json')),
  ];
  const commands = new Map<string, ManifestCommand>();
  for (const file of manifests) {
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { commands: Record<string, ManifestCommand> };
    for (const [id, command] of Object.entries(manifest.commands)) commands.set(id.replaceAll(':', ' '), command);
  }
  return commands;
}

/** Splits a command line into words as `sh` would, for the quoting the docs use (no expansions). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (const char of line) {
    if (quote) {
      if (char === quote) quote = undefined;
      else word = (word ?? '') + char;
    } else if (char === '"' || char === "'") {
      quote = char;
      word ??= '';
    } else if (/\s/.test(char)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + char;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * The `cloudphone …` invocations of a shell block: in a console transcript, the `$ ` lines; in a script, every
 * line. A command starts a line or follows a pipe, `;`, `&&`, `||` or `$(`, after any `NAME=value` assignments and
 * an optional `npx` (so `createdb cloudphone` names a database, not the CLI), and ends at a comment or the next of
 * those separators.
 */
function cloudphoneCommands(block: Block): string[] {
  const lines = block.code.split('\n');
  const commandLines =
    block.language === 'console' ? lines.filter((l) => l.startsWith('$ ')).map((l) => l.slice(2)) : lines;
  return commandLines.flatMap((line) => {
    const withoutComment = line.replace(/(^|\s)#.*$/, '');
    return withoutComment.split(/[|;&()]/).flatMap((command) => {
      const match = /^\s*(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:npx\s+)?cloudphone(?=\s|$)(.*)$/.exec(command);
      return match === null ? [] : [match[1]!.trim()];
    });
  });
}

/** Why a command line does not match the CLI, or undefined when it does. */
function commandProblem(commands: Map<string, ManifestCommand>, line: string): string | undefined {
  const words = shellWords(line);
  if (words.length === 1 && words[0] === '--version') return undefined;
  let id: string | undefined;
  for (let n = Math.min(words.length, 3); n >= 1; n -= 1) {
    const candidate = words.slice(0, n).join(' ');
    if (commands.has(candidate)) {
      id = candidate;
      break;
    }
  }
  if (id === undefined) return `no command "${words.slice(0, 2).join(' ')}"`;
  const { flags } = commands.get(id)!;
  const rest = words.slice(id.split(' ').length);
  for (let i = 0; i < rest.length; i += 1) {
    const word = rest[i]!;
    if (word === '--') break;
    let flag: Flag | undefined;
    let name = word;
    if (word.startsWith('--')) {
      name = word.slice(2).split('=', 1)[0]!;
      flag = flags[name];
    } else if (/^-[A-Za-z]$/.test(word)) {
      flag = Object.values(flags).find((f) => f.char === word.slice(1));
    } else {
      continue;
    }
    if (flag === undefined) return `"${id}" has no flag ${word}`;
    if (flag.type === 'option' && !word.includes('=')) i += 1;
  }
  return undefined;
}

describe('command lines in the docs', () => {
  const commands = manifestCommands();
  const shellBlocks = BLOCKS.filter((block) => SHELL_LANGUAGES.has(block.language));
  const lines = shellBlocks.flatMap((block) => cloudphoneCommands(block).map((line) => ({ where: block.where, line })));

  it('are found', () => {
    expect(lines.length).toBeGreaterThan(30);
    expect(lines).toContainEqual({ where: expect.stringMatching(/^README\.md:/), line: 'devices list' });
  });

  it('name commands that exist, with flags they take', () => {
    const problems = lines.flatMap(({ where, line }) => {
      const problem = commandProblem(commands, line);
      return problem === undefined ? [] : [`${where}: cloudphone ${line}: ${problem}`];
    });
    expect(problems).toEqual([]);
  });

  it('refuse a command or a flag the CLI lacks', () => {
    expect(commandProblem(commands, 'devices lst')).toBe('no command "devices lst"');
    expect(commandProblem(commands, 'leases create --count 1 --pool ci')).toBe('"leases create" has no flag --pool');
    expect(commandProblem(commands, 'leases create -n 1 -l pool=ci --json')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Scripts

describe('TypeScript in the docs', () => {
  let dataDir: string;
  let project: string;
  let server: RunningServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-docs-'));
    server = await startServer({
      port: 0,
      dataDir,
      adminPassword: ADMIN_PASSWORD,
      virtualDevices: 2,
      logStream: { write: () => undefined },
    });
    // As the README says: an admin's API token, created while logged in as admin.
    const anonymous = new CloudPhone({ baseUrl: server.url });
    const pair = await anonymous.auth.login({ username: 'admin', password: ADMIN_PASSWORD });
    const token = await anonymous.withOptions({ token: pair.accessToken }).tokens.create({ name: 'docs', scopes: ['admin'] });
    env = { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token.secret };

    // A reader's project: the APKs where the docs look for them, and the SDK installed.
    project = mkdtempSync(join(tmpdir(), 'cloudphone-docs-project-'));
    for (const [path, source] of Object.entries(PROJECT_FILES)) {
      mkdirSync(dirname(join(project, path)), { recursive: true });
      copyFileSync(source, join(project, path));
    }
    writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'), 'dir');
  });

  afterAll(async () => {
    await server?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('are found, and the incomplete ones are marked', () => {
    expect(SCRIPTS.map((block) => block.where)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^README\.md:/), expect.stringMatching(/^docs\/apps\.md:/)]),
    );
    expect(BLOCKS.filter((block) => block.fragment).map((block) => block.where)).toEqual([
      expect.stringMatching(/^docs\/virtual-device\.md:/),
    ]);
  });

  /** The block as a file of the reader's project. */
  function scriptFile(block: Block): string {
    const file = join(project, `${block.where.replace(/[^A-Za-z0-9]+/g, '-')}.ts`);
    writeFileSync(file, block.code);
    return file;
  }

  it('type-check against the SDK, strictly', async () => {
    for (const block of SCRIPTS) scriptFile(block);
    const compilerOptions = {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: 'nodenext',
      target: 'es2022',
      types: ['node'],
    };
    writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['*.ts'] }));
    const check = await runNode([TSC, '-p', project], project);
    expect({ code: check.code, errors: check.stdout }).toEqual({ code: 0, errors: '' });
  }, 60_000);

  it.each(SCRIPTS.map((block) => [block.where, block] as const))('%s runs as written, twice', async (_where, block) => {
    const file = scriptFile(block);
    for (const attempt of [1, 2]) {
      const run = await runNode([TSX_CLI, file], project, env);
      expect({ attempt, code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({
        attempt,
        code: 0,
        stderr: '',
      });
    }
  }, 120_000);
});
