import { CloudPhone } from '@cloudphone/sdk';
import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort, startCloudphoneServer, stop, waitForHttp } from './lib/processes.js';
import { benchDir, saveResult, type BenchResult } from './lib/results.js';
import { round } from './lib/stats.js';

const CONNECTIONS = 50;
const DURATION_S = 8;
const ROUNDS = 2;

export interface Load {
  rps: number;
  /** Requests answered in the run. */
  total: number;
  p50: number;
  p99: number;
  non2xx: number;
}

export async function load(url: string, headers: Record<string, string>, duration = DURATION_S): Promise<Load> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration, headers });
  return { rps: result.requests.average, total: result.requests.total, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx + result.errors };
}

export function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Authenticated `GET /v1/me` with an API token against a bare Fastify hello-world, both in their own process,
 * same load tool and connection count, rounds interleaved.
 */
export async function benchApiThroughput(): Promise<BenchResult> {
  const server = await startCloudphoneServer();
  const barePort = await freePort();
  const loggedPort = await freePort();
  const fixture = join(benchDir, 'lib', 'bare-fastify.mjs');
  const bare = spawn(process.execPath, [fixture, String(barePort)], { stdio: 'ignore' });
  const logged = spawn(process.execPath, [fixture, String(loggedPort), '--logged'], { stdio: 'ignore' });
  try {
    const bareUrl = `http://127.0.0.1:${barePort}/`;
    const loggedUrl = `http://127.0.0.1:${loggedPort}/`;
    await waitForHttp(bareUrl, bare);
    await waitForHttp(loggedUrl, logged);
    const anonymous = new CloudPhone({ baseUrl: server.url });
    const session = await anonymous.auth.login({ username: 'admin', password: server.adminPassword });
    const token = await anonymous.withOptions({ token: session.accessToken }).tokens.create({ name: 'bench', scopes: ['read'] });
    const meUrl = `${server.url}/v1/me`;
    const auth = { authorization: `Bearer ${token.secret}` };

    await load(bareUrl, {}, 2);
    await load(loggedUrl, {}, 2);
    await load(meUrl, auth, 2);
    const bareRuns: Load[] = [];
    const loggedRuns: Load[] = [];
    const meRuns: Load[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      bareRuns.push(await load(bareUrl, {}));
      loggedRuns.push(await load(loggedUrl, {}));
      meRuns.push(await load(meUrl, auth));
    }
    const failures = meRuns.reduce((n, r) => n + r.non2xx, 0);
    if (failures > 0) throw new Error(`${failures} requests to /v1/me failed during the benchmark`);

    const bareRps = mean(bareRuns.map((r) => r.rps));
    const loggedRps = mean(loggedRuns.map((r) => r.rps));
    const meRps = mean(meRuns.map((r) => r.rps));
    const meP99 = Math.max(...meRuns.map((r) => r.p99));
    const ratio = round(meRps / bareRps);
    return saveResult({
      name: 'api-throughput',
      title: 'API throughput: authenticated GET /v1/me',
      target: 'at least 50% of bare Fastify throughput, p99 under 25 ms at 50 connections',
      pass: ratio >= 0.5 && meP99 < 25,
      baseline: 'Fastify hello-world (no logger) in its own process',
      rows: [
        { metric: 'bare Fastify GET /', value: Math.round(bareRps), unit: 'req/s' },
        {
          metric: 'Fastify GET / with its default request logging',
          value: Math.round(loggedRps),
          unit: 'req/s',
          baseline: Math.round(bareRps),
          ratio: round(loggedRps / bareRps),
        },
        { metric: 'cloudphone GET /v1/me (API token)', value: Math.round(meRps), unit: 'req/s', baseline: Math.round(bareRps), ratio },
        { metric: 'cloudphone p50 latency', value: round(mean(meRuns.map((r) => r.p50))), unit: 'ms' },
        { metric: 'cloudphone p99 latency (worst round)', value: meP99, unit: 'ms' },
        { metric: 'bare Fastify p99 latency (worst round)', value: Math.max(...bareRuns.map((r) => r.p99)), unit: 'ms' },
      ],
      notes: [
        `Against Fastify with its own default request logging, cloudphone reaches ${round(meRps / loggedRps)}x: per-request logging alone costs Fastify about half its bare throughput, and each cloudphone request also authenticates by a database lookup, reads the user, counts metrics and validates against the contract.`,
        `autocannon, ${CONNECTIONS} connections, ${ROUNDS} interleaved rounds of ${DURATION_S} s each after a 2 s warm-up; the load generator shares the machine with the server.`,
        'cloudphone runs with its production defaults: request logging on (to a discarded stdout), SQLite in WAL mode, token looked up by hash on every request.',
      ],
    });
  } finally {
    await stop(bare);
    await stop(logged);
    await server.close();
  }
}
