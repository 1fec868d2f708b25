import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { startCluster, type Cluster } from './postgres.js';

/**
 * Vitest global setup: a broker on loopback that hands the tests the URL of one PostgreSQL cluster for the whole
 * run. The cluster starts on the first request only, so a run without PostgreSQL tests starts nothing, and it is
 * stopped and removed at teardown. With CLOUDPHONE_TEST_POSTGRES_URL set, that server is used instead.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.CLOUDPHONE_TEST_POSTGRES_URL;
  let cluster: Promise<Cluster> | undefined;
  const answer = async (): Promise<{ url: string } | { error: string }> => {
    if (given) return { url: given };
    cluster ??= startCluster();
    try {
      return { url: (await cluster).url };
    } catch (error) {
      return { error: (error as Error).message };
    }
  };
  const broker: Server = createServer((_request, response) => {
    void answer().then((body) => {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
  project.provide('postgresBroker', `http://127.0.0.1:${(broker.address() as AddressInfo).port}/`);
  return async () => {
    await new Promise((resolve) => broker.close(resolve));
    const started = await cluster?.catch(() => undefined);
    await started?.stop();
  };
}
