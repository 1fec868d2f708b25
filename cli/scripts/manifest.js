// Writes oclif.manifest.json for the compiled commands of dist/commands (handwritten) and
// dist/generated/commands (generated from the contract). scripts/docs.js renders the docs from it.
//
// oclif discovers commands in one folder only; the manifest lets it find both: every entry carries the
// `relativePath` of its command's own file, which @oclif/core 4 loads directly (see `cachedCommandCanBeUsed`
// in @oclif/core/lib/config/plugin.js). The entries are made by oclif itself: a Plugin loaded without a
// manifest builds them for the folder it is pointed at.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Plugin, settings } from '@oclif/core';

const root = fileURLToPath(new URL('..', import.meta.url));
const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// The manifest describes the compiled files, even when NODE_ENV asks oclif to prefer TypeScript sources.
settings.enableAutoTranspile = false;

/** The manifest entries of the commands compiled into `dir`, each with its file's `relativePath`. */
async function commandsIn(dir) {
  const plugin = new Plugin({
    root,
    isRoot: true,
    ignoreManifest: true,
    errorOnManifestCreate: true,
    pjson: { ...pjson, oclif: { ...pjson.oclif, commands: dir } },
  });
  await plugin.load();
  return plugin.manifest.commands;
}

/** A compiled command whose TypeScript source is gone (a removed operation) is left out. */
function hasSource(command) {
  const [dist, ...rest] = command.relativePath;
  const source = join(root, dist === 'dist' ? 'src' : dist, ...rest).replace(/\.js$/, '.ts');
  if (existsSync(source)) return true;
  process.stderr.write(`manifest: skipping ${command.relativePath.join('/')}: no source ${source}\n`);
  return false;
}

/** The commands compiled into `dir` whose sources still exist (stale compiled files are left out). */
const current = async (dir) => Object.fromEntries(Object.entries(await commandsIn(dir)).filter(([, command]) => hasSource(command)));
const handwritten = await current('./dist/commands');
const generated = await current('./dist/generated/commands');
for (const id of Object.keys(generated)) {
  if (handwritten[id]) {
    throw new Error(`manifest: "${id.replaceAll(':', ' ')}" is both a handwritten and a generated command`);
  }
}
const commands = Object.fromEntries(
  Object.entries({ ...handwritten, ...generated })
    .sort(([a], [b]) => a.localeCompare(b)),
);
// Written aside and renamed into place: a CLI starting meanwhile (a rebuild while tests run) never reads half a file.
const manifest = join(root, 'oclif.manifest.json');
writeFileSync(`${manifest}.${process.pid}.tmp`, `${JSON.stringify({ commands, version: pjson.version }, null, 2)}\n`);
renameSync(`${manifest}.${process.pid}.tmp`, manifest);
process.stdout.write(`oclif.manifest.json: ${Object.keys(commands).length} commands\n`);
