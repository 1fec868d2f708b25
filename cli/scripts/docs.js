// Renders the generated docs from the built packages (run it after `tsc -b` and scripts/manifest.js):
//   docs/cli.md        every command's help, from the built CLI (cli-doc.js)
//   docs/reference.md  operations by domain, event types, error codes and commands by kind (reference-doc.js)
// With --check it writes nothing and exits 1 naming every file that differs: `npm test` runs that, so a stale doc
// fails the tests instead of being rewritten by the build. --docs-dir <dir> renders into or checks another folder.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core';
import { loadSpec } from '../../openapi/dist/generate/spec.js';
import { errorCatalogue } from '../../server/dist/http/errors.js';
import { loadOptions } from '../dist/load-options.js';
import { renderReferenceDoc } from './reference-doc.js';
import { renderCliDoc } from './cli-doc.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const repository = resolve(root, '..');
const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const args = process.argv.slice(2);
const check = args.includes('--check');
const dirIndex = args.indexOf('--docs-dir');
const docsDir = dirIndex >= 0 ? resolve(args[dirIndex + 1] ?? '') : join(repository, 'docs');

const config = await Config.load(loadOptions(root, pjson));
const spec = loadSpec(join(repository, 'openapi', 'cloudphone.yaml'));
const docs = {
  'cli.md': renderCliDoc(config, pjson),
  'reference.md': renderReferenceDoc({ spec, errors: errorCatalogue, commands: config.commands, bin: config.bin, cliName: pjson.name }),
};

const stale = [];
for (const [name, content] of Object.entries(docs)) {
  const path = join(docsDir, name);
  let current;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === content) continue;
  stale.push(relative(repository, path));
  if (!check) writeFileSync(path, content);
}
if (check && stale.length > 0) {
  process.stderr.write(
    `Generated docs are stale (the contract, the error catalogue or the CLI changed). Run \`npm run build\` and commit:\n  ${stale.join('\n  ')}\n`,
  );
  process.exit(1);
}
process.stdout.write(
  check ? `docs up to date (${Object.keys(docs).length})\n` : `docs: ${Object.keys(docs).length} rendered, ${stale.length} changed\n`,
);
