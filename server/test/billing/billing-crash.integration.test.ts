import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../devices/helpers.js';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';
import { testEngine } from '../helpers/database.js';

/**
 * The built `cloudphone-server`, killed with SIGKILL while leases run and started again on the same data directory
 * and database: each lease is metered once, for every second from its grant to its end (for a lease that expired
 * while the server was down, to its expiry), with nothing lost or counted twice.
 */

type Json = Record<string, any>;

const PASSWORD = 'correct-horse-battery-staple';
/** The shortest lease there is: it expires while the server is down. */
const SHORT_TTL = 30;

async function call(node: ClusterNode, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${node.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

async function ok(node: ClusterNode, method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const { status, body: answer } = await call(node, method, path, token, body);
  if (status >= 300) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(answer)}`);
  return answer;
}

const login = async (node: ClusterNode, username: string, password: string): Promise<string> =>
  (await ok(node, 'POST', '/v1/auth/login', undefined, { username, password })).accessToken;

/** Whole seconds billed from `from` to `to`: the start floored, the end ceiled. */
const billed = (from: string, to: string) => Math.ceil(Date.parse(to) / 1000) - Math.floor(Date.parse(from) / 1000);

/** Each record follows the one before it without a gap or an overlap; their seconds add up. */
function expectContiguous(records: Json[]): number {
  const sorted = [...records].sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
  for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.startedAt).toBe(sorted[i - 1]!.endedAt);
  for (const record of sorted) expect(Date.parse(record.endedAt) - Date.parse(record.startedAt)).toBe(record.seconds * 1000);
  return sorted.reduce((sum, record) => sum + (record.seconds as number), 0);
}

describe('metering across a crash of the server (SIGKILL)', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ engine: testEngine, nodes: 1, virtualDevices: 2 });
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('meters each lease exactly once from its grant to its end, the expired one to its expiry', { timeout: 120_000 }, async () => {
    let node = cluster.nodes[0]!;
    let admin = await login(node, 'admin', cluster.adminPassword);
    const member = await ok(node, 'POST', '/v1/users', admin, { username: 'crash-member', password: PASSWORD, role: 'member' });
    let token = await login(node, 'crash-member', PASSWORD);
    const plan = await ok(node, 'POST', '/v1/plans', admin, { name: 'Per second', currency: 'EUR', defaultPrice: 60 });
    await ok(node, 'PUT', `/v1/users/${member.id}/plan`, admin, { planId: plan.id });

    const long = await ok(node, 'POST', '/v1/leases', token, { count: 1, ttlSeconds: 900 });
    const short = await ok(node, 'POST', '/v1/leases', token, { count: 1, ttlSeconds: SHORT_TTL });
    expect([long.status, short.status]).toEqual(['granted', 'granted']);
    await new Promise((resolve) => setTimeout(resolve, 1500));

    await node.kill('SIGKILL');
    // Down until the short lease has expired.
    const downUntil = Date.parse(short.expiresAt) + 2000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, downUntil - Date.now())));
    node = await cluster.startNode('node-1');
    admin = await login(node, 'admin', cluster.adminPassword);
    token = await login(node, 'crash-member', PASSWORD);

    const released = await ok(node, 'POST', `/v1/leases/${long.id}/release`, token);
    expect(released).toMatchObject({ status: 'released', endReason: 'released' });
    const expired = await eventually(async () => {
      const got = await ok(node, 'GET', `/v1/leases/${short.id}`, token);
      return got.status === 'expired' ? got : undefined;
    }, 30_000, 'the short lease expired');

    const records: Json[] = (await ok(node, 'GET', `/v1/usage/records?userId=${member.id}&limit=100`, admin)).data;
    const ofLong = records.filter((r) => r.leaseId === long.id);
    const ofShort = records.filter((r) => r.leaseId === short.id);
    expect(ofLong.length + ofShort.length).toBe(records.length);
    const longSeconds = expectContiguous(ofLong);
    const shortSeconds = expectContiguous(ofShort);
    console.log(
      `after SIGKILL on ${testEngine}: the running lease billed ${longSeconds} s (grant ${released.grantedAt} to end ${released.endedAt}), ` +
        `the lease that expired while down ${shortSeconds} s (TTL ${SHORT_TTL} s), in ${records.length} records`,
    );
    expect(longSeconds).toBe(billed(released.grantedAt, released.endedAt));
    expect(ofLong[0]!.startedAt).toBe(new Date(Math.floor(Date.parse(released.grantedAt) / 1000) * 1000).toISOString());
    // Nothing after the expiry, though the lease ended only when the server came back.
    expect(Date.parse(expired.endedAt)).toBeGreaterThan(Date.parse(expired.expiresAt));
    expect(shortSeconds).toBe(billed(expired.grantedAt, expired.expiresAt));
    expect(shortSeconds - SHORT_TTL).toBeLessThanOrEqual(1);

    // Another restart writes nothing more.
    await node.kill('SIGKILL');
    node = await cluster.startNode('node-1');
    admin = await login(node, 'admin', cluster.adminPassword);
    const again: Json[] = (await ok(node, 'GET', `/v1/usage/records?userId=${member.id}&limit=100`, admin)).data;
    expect(again).toEqual(records);
    const usage = await ok(node, 'GET', `/v1/usage?userId=${member.id}`, admin);
    expect(usage).toMatchObject({ deviceSeconds: longSeconds + shortSeconds, openLeases: 0, currency: 'EUR' });
    expect(usage.usageAmount).toBe(longSeconds + shortSeconds);
  });
});
