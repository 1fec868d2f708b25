import { randomBytes } from 'node:crypto';
import { execute, INSTALL_HINT, startCluster, type Cluster } from '../../server/test/helpers/postgres.js';

/** A tool the benchmarks need is not installed; the message is one line saying what to install. */
export class MissingToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingToolError';
  }
}

export interface BenchPostgres {
  /** A new empty database on the private cluster, as a URL with its password. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * A private PostgreSQL for one benchmark: the tests' throwaway cluster (initdb into a temp directory, loopback
 * only), stopped and removed by `stop`. Without initdb, one line saying what to install.
 */
export async function startPostgres(): Promise<BenchPostgres> {
  let cluster: Cluster;
  try {
    cluster = await startCluster();
  } catch (error) {
    if ((error as Error).message === INSTALL_HINT) {
      throw new MissingToolError('the PostgreSQL benchmarks need initdb, which was not found: apt-get install -y postgresql');
    }
    throw error;
  }
  return {
    async createDatabase() {
      const name = `cloudphone_bench_${randomBytes(4).toString('hex')}`;
      await execute(cluster.url, `create database ${name}`);
      const url = new URL(cluster.url);
      url.pathname = `/${name}`;
      return url.href;
    },
    stop: () => cluster.stop(),
  };
}

/**
 * Runs `measure` on SQLite, then on a private PostgreSQL (a fresh one, stopped afterwards); a PostgreSQL that fails
 * becomes a line in `failures` rather than the benchmark's end, so the SQLite figures are still recorded.
 */
export async function onEngines<T>(
  measure: (engine: 'sqlite' | 'postgres', postgres: BenchPostgres | undefined) => Promise<T>,
): Promise<{ measured: T[]; failures: string[] }> {
  const measured: T[] = [];
  const failures: string[] = [];
  process.stderr.write('  SQLite…\n');
  measured.push(await measure('sqlite', undefined));
  let postgres: BenchPostgres | undefined;
  try {
    process.stderr.write('  PostgreSQL…\n');
    postgres = await startPostgres();
    measured.push(await measure('postgres', postgres));
  } catch (error) {
    failures.push(`PostgreSQL: failed, ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`);
  } finally {
    await postgres?.stop();
  }
  return { measured, failures };
}
