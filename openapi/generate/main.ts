import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { emitCli } from './cli.js';
import { walk } from './files.js';
import { emitSdk } from './sdk.js';
import { emitServer } from './server.js';
import { loadSpec, type Spec } from './spec.js';

export interface GeneratedFile {
  /** Path relative to the repository root. */
  path: string;
  content: string;
}

export interface Emitter {
  /** Folders (relative to the root) this emitter owns wholly: any other file in them is stale. */
  owns: string[];
  emit(spec: Spec, root: string): Promise<GeneratedFile[]> | GeneratedFile[];
}

const emitters: Emitter[] = [emitSdk, emitCli, emitServer];


export interface GenerateOutcome {
  /** Generated files, by path relative to the root. */
  files: number;
  /** What differed from the tree: `missing <path>`, `differs <path>`, `extra <path>`. */
  stale: string[];
}

/**
 * Generates every file from the contract under `root`. With `check`, writes nothing and reports what is stale;
 * otherwise brings the tree up to date (writing changed files, removing files no emitter produces any more).
 */
export async function generate(root: string, options: { check: boolean }): Promise<GenerateOutcome> {
  const spec = loadSpec(join(root, 'openapi', 'cloudphone.yaml'));
  const wanted = new Map<string, string>();
  const owned: string[] = [];
  for (const emitter of emitters) {
    owned.push(...emitter.owns);
    for (const file of await emitter.emit(spec, root)) {
      if (wanted.has(file.path)) throw new Error(`two emitters write ${file.path}`);
      wanted.set(file.path, file.content.endsWith('\n') ? file.content : `${file.content}\n`);
    }
  }

  const stale: string[] = [];
  for (const [path, content] of wanted) {
    const full = join(root, path);
    let current: string | undefined;
    try {
      current = readFileSync(full, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === content) continue;
    stale.push(current === undefined ? `missing ${path}` : `differs ${path}`);
    if (!options.check) {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  }
  for (const dir of owned) {
    for (const full of walk(join(root, dir))) {
      const path = relative(root, full);
      if (wanted.has(path)) continue;
      stale.push(`extra ${path}`);
      if (!options.check) rmSync(full);
    }
  }
  return { files: wanted.size, stale };
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const { files, stale } = await generate(root, { check });
  if (check && stale.length > 0) {
    process.stderr.write(
      `Generated files are stale (the contract or a generator changed). Run \`npm run generate\` and commit:\n  ${stale.join('\n  ')}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(check ? `generated files up to date (${files})\n` : `generated ${files} files, ${stale.length} changed\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`generate: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
