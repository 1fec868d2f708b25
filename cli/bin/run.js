#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { arch, platform, release } from 'node:os';
import { fileURLToPath } from 'node:url';

const pjson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const argv = process.argv.slice(2);

/**
 * oclif's platform word, when it is cheap to know: it reports `wsl` under Windows' Linux subsystem, which is
 * left to oclif itself.
 */
function simplePlatform() {
  const name = platform();
  if (name !== 'linux') return name;
  if (release().toLowerCase().includes('microsoft')) return undefined;
  if (existsSync('/proc/sys/fs/binfmt_misc/WSLInterop') || existsSync('/run/WSL')) return undefined;
  try {
    if (readFileSync('/proc/version', 'utf8').toLowerCase().includes('microsoft')) return undefined;
  } catch {
    return undefined;
  }
  return name;
}

// `--version` is answered without loading oclif, in oclif's own format, to keep it close to bare node start-up.
const fastPlatform = argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v') ? simplePlatform() : undefined;
if (fastPlatform) {
  const cpu = arch() === 'ia32' ? 'x86' : arch();
  process.stdout.write(`${pjson.name}/${pjson.version} ${fastPlatform}-${cpu} node-${process.version}\n`);
} else {
  const [{ execute, settings }, { loadOptions }] = await Promise.all([
    import('@oclif/core'),
    import('../dist/load-options.js'),
  ]);
  // The shipped commands are compiled: never look for TypeScript sources.
  settings.enableAutoTranspile = false;
  await execute({ loadOptions: loadOptions(fileURLToPath(new URL('..', import.meta.url)), pjson) });
}
