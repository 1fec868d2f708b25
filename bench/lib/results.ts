import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

export const benchDir = join(import.meta.dirname, '..');
export const repoRoot = join(benchDir, '..');
export const resultsDir = join(benchDir, 'results');

export interface Row {
  metric: string;
  value: number;
  unit: string;
  /** The same metric for the baseline measured in the same run. */
  baseline?: number;
  /** value / baseline. */
  ratio?: number;
}

export interface BenchResult {
  name: string;
  title: string;
  /** What the issue asks for, in words. */
  target: string;
  pass: boolean;
  baseline: string;
  rows: Row[];
  notes: string[];
  measuredAt: string;
  machine: { cpus: number; cpuModel: string; node: string };
}

export function saveResult(result: Omit<BenchResult, 'measuredAt' | 'machine'>): BenchResult {
  const full: BenchResult = {
    ...result,
    measuredAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version },
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${result.name}.json`), `${JSON.stringify(full, null, 2)}\n`);
  return full;
}

export function loadResults(): BenchResult[] {
  return readdirSync(resultsDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as BenchResult);
}

function cell(n: number | undefined): string {
  return n === undefined ? '' : String(n);
}

/** docs/benchmarks.md, rendered from every result file so the table always matches bench/results/. */
export function renderBenchmarksDoc(results: BenchResult[]): string {
  const lines = [
    '# Benchmarks',
    '',
    'Measured by `npm run bench`; raw figures in `bench/results/*.json`. Every benchmark runs its baseline in the',
    'same run on the same machine and reports the ratio, because absolute numbers on shared machines are noisy.',
    '',
  ];
  for (const r of results) {
    lines.push(
      `## ${r.title}`,
      '',
      `Target: ${r.target} — **${r.pass ? 'met' : 'not met'}**. Baseline: ${r.baseline}.`,
      `Measured ${r.measuredAt.slice(0, 10)} on ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}.`,
      '',
      '| metric | value | unit | baseline | ratio |',
      '|---|---:|---|---:|---:|',
      ...r.rows.map((row) => `| ${row.metric} | ${row.value} | ${row.unit} | ${cell(row.baseline)} | ${cell(row.ratio)} |`),
      '',
      ...r.notes.map((n) => `- ${n}`),
      ...(r.notes.length ? [''] : []),
    );
  }
  return lines.join('\n');
}
