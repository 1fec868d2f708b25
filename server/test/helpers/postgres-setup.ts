import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { randomBytes } from 'node:crypto';
import { execute, startCluster, type Cluster } from './postgres.js';

interface Broker {
  url: string;
  users: number;
  stop(): Promise<void>;
}

/**
 * The run's one broker, shared by the projects: their global setups run in this one process but each imports this
 * module afresh, so it is kept on the global object.
 */
const SHARED = Symbol.for('cloudphone.test.postgresBroker');
const global = globalThis as { [SHARED]?: Promise<Broker> | undefined };

async function startBroker(): Promise<Broker> {
  const given = process.env.CLOUDPHONE_TEST_POSTGRES_URL;
  // The databases of this run, so that a shared server given by URL is left as it was found.
  const prefix = `cloudphone_test_${randomBytes(4).toString('hex')}_`;
  let cluster: Promise<Cluster> | undefined;
  const answer = async (): Promise<{ url: string; prefix: string } | { error: string }> => {
    if (given) return { url: given, prefix };
    cluster ??= startCluster();
    try {
      return { url: (await cluster).url, prefix };
    } catch (error) {
      return { error: (error as Error).message };
    }
  };
  const server = createServer((_request, response) => {
    void answer().then((body) => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    users: 0,
    async stop() {
      await new Promise((resolve) => server.close(resolve));
      if (given) {
        const rows = await execute(given, `select datname from pg_database where datname like '${prefix}%'`);
        for (const { datname } of rows) await execute(given, `drop database if exists ${String(datname)} with (force)`);
      }
      const started = await cluster?.catch(() => undefined);
      await started?.stop();
    },
  };
}

/**
 * Vitest global setup: a broker on loopback that hands the tests the URL of one PostgreSQL cluster for the whole
 * run, whichever project a test belongs to. The cluster starts on the first request only, so a run without
 * PostgreSQL tests starts nothing, and it is stopped and removed when the last project tears down. With
 * CLOUDPHONE_TEST_POSTGRES_URL set, that server is used instead.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  global[SHARED] ??= startBroker();
  const broker = await global[SHARED];
  broker.users += 1;
  project.provide('postgresBroker', broker.url);
  return async () => {
    broker.users -= 1;
    if (broker.users === 0) {
      global[SHARED] = undefined;
      await broker.stop();
    }
  };
}
