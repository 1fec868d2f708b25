import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestServer, type TestServer } from './fixtures/server.js';

/*
 * The SDK and the CLI as someone outside the checkout gets them: `npm pack` both (their prepack builds them),
 * install the tarballs into an empty project, then use them from there against the real server. The install is
 * offline: the dependencies come from the npm cache that installing the checkout filled, pinned by a lockfile
 * made from the checkout's own (the cache holds their tarballs, not necessarily the registry's package lists that
 * an install without a lockfile would need).
 */

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..', '..');
/** The workspaces packed, by folder. */
const WORKSPACES = { sdk: '@cloudphone/sdk', cli: '@cloudphone/cli' } as const;

type LockEntry = Record<string, unknown> & {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  link?: boolean;
};

let server: TestServer;
let work: string;
let project: string;
let token: string;
/** What `npm pack` printed: the tarball names, after the output of each package's scripts. */
let packOutput: string;

/** The lock paths where node would look for `name` from the package at lock path `from`, nearest first. */
function* lookups(from: string, name: string): Generator<string> {
  let dir = from;
  for (;;) {
    yield dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (dir === '') return;
    const at = dir.lastIndexOf('node_modules/');
    dir = at <= 0 ? '' : dir.slice(0, at - 1);
  }
}

/**
 * A lockfile for a project depending on the packed tarballs: their entries, and the entries of everything they
 * need at run time copied from the checkout's lockfile (a workspace's own nested folder moved under its package).
 */
function projectLock(tarballs: Record<keyof typeof WORKSPACES, { spec: string; integrity: string }>): unknown {
  const checkout = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packages: Record<string, unknown> = {};
  const target = (path: string): string => {
    for (const [dir, name] of Object.entries(WORKSPACES)) if (path.startsWith(`${dir}/`)) return `node_modules/${name}/${path.slice(dir.length + 1)}`;
    return path;
  };
  const queue: string[] = [];
  for (const [dir, name] of Object.entries(WORKSPACES) as [keyof typeof WORKSPACES, string][]) {
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as Record<string, unknown>;
    const { spec, integrity } = tarballs[dir];
    packages[`node_modules/${name}`] = {
      version: pkg.version,
      resolved: spec,
      integrity,
      license: pkg.license,
      dependencies: pkg.dependencies,
      engines: pkg.engines,
      ...(pkg.bin ? { bin: pkg.bin } : {}),
    };
    queue.push(dir);
  }
  const seen = new Set<string>();
  while (queue.length > 0) {
    const from = queue.shift()!;
    const entry = checkout.packages[from]!;
    const optionalPeers = Object.entries(entry.peerDependenciesMeta ?? {}).filter(([, meta]) => meta.optional).map(([name]) => name);
    const needs = [
      ...Object.keys(entry.dependencies ?? {}),
      ...Object.keys(entry.optionalDependencies ?? {}),
      ...Object.keys(entry.peerDependencies ?? {}).filter((name) => !optionalPeers.includes(name)),
    ];
    for (const name of needs) {
      const found = [...lookups(from, name)].find((path) => checkout.packages[path] !== undefined);
      if (found === undefined) {
        if (entry.optionalDependencies?.[name] !== undefined) continue;
        throw new Error(`package-lock.json has no ${name} for ${from}`);
      }
      if (checkout.packages[found]!.link || seen.has(found)) continue;
      seen.add(found);
      const { dev: _dev, devOptional: _devOptional, peer: _peer, ...copy } = checkout.packages[found]!;
      packages[target(found)] = copy;
      queue.push(found);
    }
  }
  const dependencies = Object.fromEntries(
    Object.entries(WORKSPACES).map(([dir, name]) => [name, tarballs[dir as keyof typeof WORKSPACES].spec]),
  );
  return { name: 'packaging-check', lockfileVersion: 3, requires: true, packages: { '': { name: 'packaging-check', dependencies }, ...packages } };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'cloudphone-packaging-'));
  server = await startTestServer('packaging');
  token = server.adminToken;

  const packs = join(work, 'packs');
  mkdirSync(packs);
  const packed = await run('npm', ['pack', ...Object.values(WORKSPACES).flatMap((name) => ['-w', name]), '--pack-destination', packs, '--loglevel=error'], {
    cwd: root,
    timeout: 120_000,
  });
  packOutput = packed.stdout;
  const files = readdirSync(packs);
  const tarball = (dir: string) => {
    const file = files.find((name) => name.startsWith(`cloudphone-${dir}-`) && name.endsWith('.tgz'));
    if (!file) throw new Error(`npm pack wrote no tarball for ${dir}: ${files.join(', ')}`);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(join(packs, file))).digest('base64')}`;
    return { spec: `file:../packs/${file}`, integrity };
  };
  const tarballs = { sdk: tarball('sdk'), cli: tarball('cli') };

  project = join(work, 'project');
  mkdirSync(project);
  const dependencies = { '@cloudphone/sdk': tarballs.sdk.spec, '@cloudphone/cli': tarballs.cli.spec };
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'packaging-check', private: true, type: 'module', dependencies }));
  writeFileSync(join(project, 'package-lock.json'), JSON.stringify(projectLock(tarballs), null, 2));
  await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project, timeout: 120_000 });
}, 240_000);

afterAll(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed SDK and CLI, installed into an empty project', () => {
  test('npm pack builds each package before packing it (prepack)', () => {
    for (const name of Object.values(WORKSPACES)) expect(packOutput).toMatch(new RegExp(`^> ${name}@\\S+ prepack$`, 'm'));
    expect(packOutput).toContain('oclif.manifest.json: ');
  });

  test('install as packages of their own: the CLI depends on the SDK by version, nothing links to the checkout', () => {
    const installed = (name: string) => JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8')) as Record<string, any>;
    const sdk = installed('@cloudphone/sdk');
    const cli = installed('@cloudphone/cli');
    expect(cli.dependencies['@cloudphone/sdk']).toBe(sdk.version);
    const sdkFiles = readdirSync(join(project, 'node_modules', '@cloudphone', 'sdk'));
    expect(sdkFiles).toContain('dist');
    expect(sdkFiles).not.toContain('src');
    expect(readdirSync(join(project, 'node_modules', '@cloudphone', 'cli'))).toContain('oclif.manifest.json');
  });

  test('an SDK script imports @cloudphone/sdk and calls the server', async () => {
    const script = join(project, 'whoami.js');
    writeFileSync(
      script,
      [
        "import { CloudPhone, NotFoundError } from '@cloudphone/sdk';",
        'const cp = new CloudPhone({ baseUrl: process.env.CLOUDPHONE_API_URL, token: process.env.CLOUDPHONE_TOKEN });',
        'const me = await cp.me.get();',
        'const health = await fetch(new URL("/healthz", process.env.CLOUDPHONE_API_URL));',
        'console.log(JSON.stringify({ username: me.username, healthz: health.status, errors: typeof NotFoundError }));',
      ].join('\n'),
    );
    const { stdout } = await run(process.execPath, [script], {
      cwd: project,
      env: { PATH: process.env.PATH, CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token },
      timeout: 30_000,
    });
    expect(JSON.parse(stdout)).toEqual({ username: 'admin', healthz: 200, errors: 'function' });
  });

  test('the cloudphone command answers --version and runs commands against the server', async () => {
    const bin = join(project, 'node_modules', '.bin', 'cloudphone');
    const env = { PATH: process.env.PATH, HOME: work, XDG_CONFIG_HOME: work, NO_COLOR: '1', CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: token };
    const version = await run(bin, ['--version'], { cwd: project, env, timeout: 30_000 });
    const cli = JSON.parse(readFileSync(join(root, 'cli', 'package.json'), 'utf8')) as { version: string };
    expect(version.stdout).toMatch(new RegExp(`^@cloudphone/cli/${cli.version.replaceAll('.', '\\.')} `));
    const whoami = await run(bin, ['whoami', '--json'], { cwd: project, env, timeout: 30_000 });
    expect(JSON.parse(whoami.stdout)).toMatchObject({ username: 'admin', role: 'admin' });
  });
});
