import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));

interface LockedPackage {
  version?: string;
  engines?: Record<string, string> | string[];
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(`${root}/${file}`, 'utf8')) as T;
}

/** The `engines.node` range a locked package declares, if any (old packages list engines as strings). */
function nodeRange(entry: LockedPackage): string | undefined {
  const engines = entry.engines;
  if (engines === undefined) return undefined;
  if (Array.isArray(engines)) {
    const declared = engines.find((engine) => /^node\b/.test(engine));
    return declared?.replace(/^node\s*/, '');
  }
  return engines.node;
}

describe('dependencies', () => {
  it('all support the oldest Node.js the workspace promises', () => {
    const promised = readJson<{ engines: { node: string } }>('package.json').engines.node;
    const oldest = semver.minVersion(promised)!;
    expect(oldest.version).toBe('20.19.0');

    const lock = readJson<{ packages: Record<string, LockedPackage> }>('package-lock.json');
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path.includes('node_modules/'))
      .flatMap(([path, entry]) => {
        const range = nodeRange(entry);
        return range === undefined || semver.satisfies(oldest, range, { includePrerelease: true })
          ? []
          : [`${path.replace(/^.*node_modules\//, '')}@${entry.version} (node ${range})`];
      });
    expect(refusing).toEqual([]);
  });
});
