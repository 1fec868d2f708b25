import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importCycles, importsOf, isInside, typeScriptFiles, type ImportEdge } from '../helpers/imports.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const SRC = join(REPO, 'server/src');
const VIRTUAL_DEVICE = join(SRC, 'virtual-device');
const ADB_PROTOCOL = join(SRC, 'adb-protocol');
const DEVICES = join(SRC, 'devices');

/** Where code outside a module may live: the server's sources and tests, the other packages' tests, examples, bench. */
const CALLERS = ['server/src', 'server/test', 'cli/test', 'sdk/test', 'examples', 'bench'].flatMap((dir) =>
  typeScriptFiles(join(REPO, dir)),
);

function repoPath(file: string): string {
  return relative(REPO, file).split(sep).join('/');
}

/** The imports into `module` from files outside it and outside `ownTests`, its white-box tests. */
function importsInto(module: string, ownTests: string): ImportEdge[] {
  return CALLERS.filter((file) => !isInside(file, module) && !isInside(file, ownTests))
    .flatMap(importsOf)
    .filter(({ target }) => target !== undefined && isInside(target, module));
}

describe('import cycles', () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  it('finds a circle through type-only and dynamic imports, and none in a chain', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'imports-'));
    dirs.push(dir);
    await writeFile(join(dir, 'a.ts'), "import type { B } from './b.js';\nexport type A = B;\n");
    await writeFile(join(dir, 'b.ts'), "export type B = number;\nexport const c = () => import('./c.js');\n");
    await writeFile(join(dir, 'c.ts'), "export { type A } from './a.js';\n// import './d.js';\n");
    await writeFile(join(dir, 'd.ts'), "import './a.js';\nconst text = \"import './d.js'\";\nexport { text };\n");
    const files = ['a.ts', 'b.ts', 'c.ts', 'd.ts'].map((name) => join(dir, name));
    expect(importCycles(files, dir)).toEqual([['a.ts', 'b.ts', 'c.ts']]);
    expect(importCycles(files.slice(0, 2), dir)).toEqual([]);
  });

  it('has none in server/src, type-only imports included', () => {
    expect(importCycles(typeScriptFiles(SRC), SRC)).toEqual([]);
  });
});

describe('module boundaries', () => {
  it.each([
    ['the virtual device', VIRTUAL_DEVICE, 'server/test/virtual-device'],
    ['the ADB protocol', ADB_PROTOCOL, 'server/test/adb-protocol'],
  ])('code outside %s imports it only through its index', (_name, module, ownTests) => {
    const edges = importsInto(module, join(REPO, ownTests));
    expect(edges.length).toBeGreaterThan(0);
    const bypassing = edges.filter(({ target }) => target !== join(module, 'index.ts'));
    expect(bypassing.map(({ from, specifier }) => `${repoPath(from)}: ${specifier}`)).toEqual([]);
  });

  it("the virtual device's entry point starts devices and names profiles, nothing more", async () => {
    const entry = await import('../../src/virtual-device/index.js');
    expect(Object.keys(entry).sort()).toEqual([
      'BUILT_IN_PROFILES',
      'builtInProfile',
      'defaultProfile',
      'instantiate',
      'runVirtualDevices',
      'startVirtualDevice',
      'startVirtualDevices',
    ]);
  });

  it('under server/src/devices only the in-process virtual device source imports the virtual device', () => {
    const importers = typeScriptFiles(DEVICES).filter((file) =>
      importsOf(file).some(({ target }) => target !== undefined && isInside(target, VIRTUAL_DEVICE)),
    );
    expect(importers.map(repoPath)).toEqual(['server/src/devices/sources/virtual.ts']);
  });

  it('the ADB protocol imports neither the virtual device nor the device layer', () => {
    const imported = typeScriptFiles(ADB_PROTOCOL)
      .flatMap(importsOf)
      .filter(({ target }) => target !== undefined && !isInside(target, ADB_PROTOCOL));
    expect(imported.map(({ from, specifier }) => `${repoPath(from)}: ${specifier}`)).toEqual([]);
  });

  it('the virtual device reaches the rest of the server only through the ADB protocol', () => {
    const imported = typeScriptFiles(VIRTUAL_DEVICE)
      .flatMap(importsOf)
      .filter(({ target }) => target !== undefined && !isInside(target, VIRTUAL_DEVICE));
    expect(new Set(imported.map(({ target }) => target))).toEqual(new Set([resolve(ADB_PROTOCOL, 'index.ts')]));
  });
});
