import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, saveResult, type BenchResult } from './lib/results.js';
import { median, round } from './lib/stats.js';

const RUNS = 21;
const bin = join(repoRoot, 'cli', 'bin', 'run.js');

function timeOnce(args: string[], env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return elapsed;
}

/** Cold start of `cloudphone --version` and `--help` against bare `node -e 0`, interleaved so drift hits all alike. */
export function benchCliStartup(): BenchResult {
  const config = mkdtempSync(join(tmpdir(), 'cloudphone-bench-cli-'));
  const env = { ...process.env, XDG_CONFIG_HOME: config, NO_COLOR: '1' };
  const cases = { node: ['-e', '0'], version: [bin, '--version'], help: [bin, '--help'] };
  const times: Record<keyof typeof cases, number[]> = { node: [], version: [], help: [] };
  try {
    for (const args of Object.values(cases)) timeOnce(args, env);
    for (let i = 0; i < RUNS; i++) {
      for (const [name, args] of Object.entries(cases) as [keyof typeof cases, string[]][]) {
        times[name].push(timeOnce(args, env));
      }
    }
  } finally {
    rmSync(config, { recursive: true, force: true });
  }
  const node = median(times.node);
  const version = median(times.version);
  const help = median(times.help);
  const versionRatio = round(version / node);
  return saveResult({
    name: 'cli-startup',
    title: 'CLI start-up',
    target: '`cloudphone --version` within 2.5x of bare `node -e 0` (median of at least 15 runs)',
    pass: versionRatio <= 2.5,
    baseline: '`node -e 0`',
    rows: [
      { metric: 'node -e 0 (median)', value: round(node, 1), unit: 'ms' },
      { metric: 'cloudphone --version (median)', value: round(version, 1), unit: 'ms', baseline: round(node, 1), ratio: versionRatio },
      { metric: 'cloudphone --help (median)', value: round(help, 1), unit: 'ms', baseline: round(node, 1), ratio: round(help / node) },
    ],
    notes: [`${RUNS} interleaved runs of each command after one warm-up run each.`],
  });
}
