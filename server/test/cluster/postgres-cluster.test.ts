import { afterEach, describe, expect, it } from 'vitest';
import { PostgresCluster } from '../../src/cluster/postgres.js';
import { createTestSchema, execute, type TestDatabase } from '../helpers/postgres.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Resolves with the value once `probe` returns it (not undefined), or fails after `ms`. */
async function eventually<T>(probe: () => T | undefined | Promise<T | undefined>, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('PostgresCluster', () => {
  const open: PostgresCluster[] = [];
  const schemas: TestDatabase[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((node) => node.close()));
    await Promise.all(schemas.splice(0).map((schema) => schema.drop()));
  });

  async function nodes(count: number, database?: TestDatabase): Promise<PostgresCluster[]> {
    const schema = database ?? (await createTestSchema());
    if (database === undefined) schemas.push(schema);
    const started = Array.from({ length: count }, (_, i) => new PostgresCluster({ node: `n${i + 1}`, url: schema.url, log: quiet }));
    open.push(...started);
    await Promise.all(started.map((node) => node.start()));
    return started;
  }

  it('delivers a message to every other node of the schema, in order, and never to its sender', async () => {
    const [a, b, c] = await nodes(3);
    const [other] = await nodes(1);
    const got: Record<string, string[]> = { a: [], b: [], c: [], other: [] };
    a!.subscribe('wake', ({ key }) => got.a!.push(key));
    b!.subscribe('wake', ({ key }) => got.b!.push(key));
    c!.subscribe('wake', ({ key }) => got.c!.push(key));
    other!.subscribe('wake', ({ key }) => got.other!.push(key));
    for (const key of ['k1', 'k2', 'k3']) a!.publish('wake', { waiters: 'leases', key });
    await eventually(() => (got.b!.length === 3 && got.c!.length === 3 ? true : undefined));
    expect(got.b).toEqual(['k1', 'k2', 'k3']);
    expect(got.c).toEqual(['k1', 'k2', 'k3']);
    expect(got.a).toEqual([]);
    // Another schema is another farm.
    expect(got.other).toEqual([]);
  });

  it('has exactly one leader, names it, and hands over at once when it leaves', async () => {
    const cluster = await nodes(3);
    const leader = await eventually(() => {
      const leaders = cluster.filter((node) => node.isLeader());
      return leaders.length === 1 ? leaders[0] : undefined;
    });
    for (const node of cluster) expect(await node.leader()).toBe(leader.node);
    await leader.close();
    const rest = cluster.filter((node) => node !== leader);
    const next = await eventually(() => rest.find((node) => node.isLeader()), 2000);
    expect(rest.filter((node) => node.isLeader())).toHaveLength(1);
    expect(await rest[0]!.leader()).toBe(next.node);
  });

  it('a leader whose database session is killed steps down and another takes over within seconds', async () => {
    const schema = await createTestSchema();
    schemas.push(schema);
    const cluster = await nodes(2, schema);
    const leader = await eventually(() => cluster.find((node) => node.isLeader()));
    const changes: boolean[] = [];
    leader.onLeadership((leads) => changes.push(leads));
    await execute(
      schema.url,
      `select pg_terminate_backend(l.pid) from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and a.application_name = 'cloudphone:${leader.node}'`,
    );
    const other = cluster.find((node) => node !== leader)!;
    await eventually(() => (other.isLeader() ? true : undefined), 5000);
    expect(changes[0]).toBe(false);
    // The old leader campaigns again and waits its turn.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(cluster.filter((node) => node.isLeader())).toHaveLength(1);
  });

  it('is not ready before it joins, ready once it hears the others, and resyncs after its message connection breaks', async () => {
    const schema = await createTestSchema();
    schemas.push(schema);
    const node = new PostgresCluster({ node: 'solo', url: schema.url, log: quiet });
    open.push(node);
    expect(node.notReady()).toMatch(/joining/);
    await node.start();
    expect(node.notReady()).toBeNull();
    let resynced = 0;
    node.onResync(() => resynced++);
    await execute(
      schema.url,
      `select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = 'cloudphone:solo' and query ilike 'listen%'`,
    );
    await eventually(() => (resynced === 1 ? true : undefined), 5000);
    expect(node.notReady()).toBeNull();
  });
});
