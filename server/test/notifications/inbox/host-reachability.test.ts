import { describe, expect, it, vi } from 'vitest';
import { LoneNode } from '../../../src/cluster/cluster.js';
import { HostService } from '../../../src/devices/hosts.js';
import type { HostLiveStatus } from '../../../src/devices/types.js';
import { inventoryFixture, silent } from '../../devices/inventory-fixture.js';

async function reachabilityFixture(options: { leader?: boolean } = {}) {
  const f = await inventoryFixture();
  const listeners = new Set<(hostId: string, status: HostLiveStatus) => void>();
  Object.assign(f.live, {
    onHostStatus(listener: (hostId: string, status: HostLiveStatus) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  });
  const cluster = new LoneNode('node-a');
  if (options.leader !== false) await cluster.start();
  const hosts = new HostService({
    db: f.db,
    clock: f.clock.now,
    live: f.live,
    config: { adbServers: [], adbDevices: [], localAdb: 'off', virtualDevices: 0 },
    log: silent,
    inventory: f.inventory,
    endLeasesForHost: async () => ({ afterCommit: () => undefined }),
    cluster,
  });
  const hostId = await f.host('hst_rack2', { name: 'rack-2' });
  await hosts.start();
  const report = (status: HostLiveStatus['status'], lastError: string | null = null) => {
    for (const listener of listeners) listener(hostId, { status, lastError, nextRetryAt: null });
  };
  const reachability = async () =>
    (await f.events()).filter((event) => event.type.startsWith('host.')).map((event) => [event.type, event.subjectId, event.data]);
  return { ...f, hostId, report, reachability };
}

describe('host reachability events', () => {
  it('records a host going from connected to unreachable and back, once per transition', async () => {
    const f = await reachabilityFixture();
    const host = { id: f.hostId, name: 'rack-2', address: 'hst_rack2:5037', type: 'adb_server' };
    // Never connected yet: failing to connect at first is not a change.
    f.report('connecting');
    f.report('unreachable', 'connect ECONNREFUSED 127.0.0.1:5037');
    f.report('connecting');
    f.report('connected');
    f.report('connecting');
    f.report('unreachable', 'connect ECONNREFUSED 127.0.0.1:5037');
    f.report('connecting');
    f.report('unreachable', 'connect ETIMEDOUT');
    await vi.waitFor(async () => expect(await f.reachability()).toHaveLength(1));
    f.report('connecting');
    f.report('connected');
    f.report('connected');
    await vi.waitFor(async () => expect(await f.reachability()).toHaveLength(2));
    f.report('unreachable', 'closed');
    await vi.waitFor(async () => expect(await f.reachability()).toHaveLength(3));
    expect(await f.reachability()).toEqual([
      ['host.unreachable', f.hostId, { host, error: 'connect ECONNREFUSED 127.0.0.1:5037' }],
      ['host.reachable', f.hostId, { host }],
      ['host.unreachable', f.hostId, { host, error: 'closed' }],
    ]);
    const actors = (await f.events()).filter((event) => event.type.startsWith('host.')).map((event) => event.actorType);
    expect(new Set(actors)).toEqual(new Set(['system']));
  });

  it('leaves the recording to the leader', async () => {
    const f = await reachabilityFixture({ leader: false });
    f.report('connected');
    f.report('unreachable', 'closed');
    f.report('connected');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await f.reachability()).toEqual([]);
  });
});
