import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchApiThroughput } from './api-throughput.js';
import { benchAppInstall, benchAppUpload } from './apps.js';
import { benchLeaseBurstBilling, benchUsageReport } from './billing.js';
import { benchCliStartup } from './cli-startup.js';
import { benchDevicePush, benchDeviceRss, benchDeviceShell, benchLeaseBurst } from './devices.js';
import { benchApiThroughputEngines, benchLeaseBurstEngines } from './engines.js';
import { benchEventStreamFanout, benchWebhookDelivery } from './notifications.js';
import { benchVirtualDevice } from './virtual-device.js';
import { MissingToolError } from './lib/postgres.js';
import { loadResults, renderBenchmarksDoc, repoRoot, type BenchResult } from './lib/results.js';

const benches: Record<string, () => BenchResult | Promise<BenchResult>> = {
  'cli-startup': benchCliStartup,
  'api-throughput': benchApiThroughput,
  'api-throughput-engines': benchApiThroughputEngines,
  'virtual-device': benchVirtualDevice,
  'device-push': benchDevicePush,
  'device-shell': benchDeviceShell,
  'lease-burst': benchLeaseBurst,
  'lease-burst-engines': benchLeaseBurstEngines,
  'lease-burst-billing': benchLeaseBurstBilling,
  'usage-report': benchUsageReport,
  'device-rss': benchDeviceRss,
  'app-upload': benchAppUpload,
  'app-install': benchAppInstall,
  'webhook-delivery': benchWebhookDelivery,
  'event-stream-fanout': benchEventStreamFanout,
};

/** `npm run bench [-- name…]`: runs the named benchmarks (all by default) and re-renders docs/benchmarks.md. */
async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((n) => !(n in benches));
  if (unknown.length) throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}`);
  let failed = 0;
  for (const [name, run] of Object.entries(benches)) {
    if (wanted.length && !wanted.includes(name)) continue;
    process.stderr.write(`bench ${name}…\n`);
    const result = await run();
    if (!result.pass) failed++;
    for (const row of result.rows) {
      const vs = row.ratio === undefined ? '' : ` (${row.ratio}x of ${row.baseline})`;
      process.stdout.write(`  ${row.metric}: ${row.value} ${row.unit}${vs}\n`);
    }
    process.stdout.write(`  target ${result.pass ? 'met' : 'NOT met'}: ${result.target}\n`);
  }
  writeFileSync(join(repoRoot, 'docs', 'benchmarks.md'), renderBenchmarksDoc(loadResults()));
  if (failed) process.exitCode = 1;
}

main().catch((error: unknown) => {
  const said = error instanceof MissingToolError ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`bench: ${said}\n`);
  process.exit(1);
});
