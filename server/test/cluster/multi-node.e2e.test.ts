import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { operations, type OperationId } from '../../src/generated/operations.js';
import { openAdbTunnel } from '../../../cli/src/lib/adb-tunnel.js';
import { openWebSocket, record, withDeadline } from '../api/device-helpers.js';
import { startAdbHost } from '../helpers/adb-host.js';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';
import { expectContractResponse } from '../helpers/contract.js';

/**
 * Three `cloudphone-server` processes on one PostgreSQL schema, with 20 virtual devices in a process of their own
 * that every node reaches: any node answers any request, a device is never in two leases, the queue is fair across
 * nodes, and the farm survives the loss of the node that tracks the device hosts.
 */

const DEVICES = 20;
const PASSWORD = 'correct-horse-battery-staple';

interface Reply {
  status: number;
  body: any;
}

interface Call {
  path?: Record<string, string>;
  query?: Record<string, string | number | boolean | string[]>;
  body?: unknown;
  rawBody?: string;
  token?: string;
  signal?: AbortSignal;
}

/** Calls an operation on `node` over HTTP; the response must be one the contract declares. */
async function call(node: ClusterNode, operationId: OperationId, options: Call = {}): Promise<Reply> {
  const meta = operations[operationId];
  const path = meta.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(options.path![name]!));
  const query = new URLSearchParams(
    Object.entries(options.query ?? {}).flatMap(([key, value]) =>
      (Array.isArray(value) ? value : [value]).map((item): [string, string] => [key, String(item)]),
    ),
  );
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let payload: string | undefined;
  if (options.rawBody !== undefined) {
    payload = options.rawBody;
    headers['content-type'] = 'application/octet-stream';
  } else if (options.body !== undefined) {
    payload = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(`${node.url}${path}${query.size > 0 ? `?${query}` : ''}`, {
    method: meta.method,
    headers,
    ...(payload === undefined ? {} : { body: payload }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const text = await response.text();
  const contentType = text === '' ? null : response.headers.get('content-type');
  const body = text === '' ? undefined : JSON.parse(text);
  expectContractResponse(operationId, { status: response.status, contentType, body });
  return { status: response.status, body };
}

function describeReply(what: string, reply: Reply): string {
  return `${what}: ${reply.status} ${JSON.stringify(reply.body)}`;
}

async function login(node: ClusterNode, username: string, password: string): Promise<{ token: string; userId: string }> {
  const reply = await call(node, 'login', { body: { username, password } });
  if (reply.status !== 200) throw new Error(describeReply(`login as ${username}`, reply));
  return { token: reply.body.accessToken, userId: reply.body.user.id };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined, or fails after `ms`. */
async function within<T>(ms: number, what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

describe('three nodes on one PostgreSQL, 20 virtual devices', () => {
  let cluster: Cluster;
  let admin: string;
  let users = 0;

  beforeAll(async () => {
    cluster = await startCluster({ engine: 'postgres', nodes: 3, virtualDevices: DEVICES });
    admin = (await login(cluster.nodes[0]!, 'admin', cluster.adminPassword)).token;
  }, 90_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  // A test that failed half-way leaves no lease behind for the next one.
  afterEach(async () => {
    const node = cluster.nodes[0]!;
    for (;;) {
      const active = await call(node, 'listLeases', { token: admin, query: { allUsers: true, limit: 200 } });
      if (active.body.data.length === 0) return;
      for (const lease of active.body.data as { id: string }[]) {
        await call(node, 'releaseLease', { token: admin, path: { leaseId: lease.id } });
      }
    }
  });

  /** A new member, logged in. */
  async function member(stem: string): Promise<{ token: string; userId: string }> {
    users += 1;
    const username = `${stem}-${users}`;
    const created = await call(cluster.nodes[0]!, 'createUser', {
      token: admin,
      body: { username, password: PASSWORD, role: 'member' },
    });
    if (created.status !== 201) throw new Error(describeReply(`createUser ${username}`, created));
    return login(cluster.nodes[0]!, username, PASSWORD);
  }

  /** Creates a lease through `node` and, if it is queued, waits (through the same node) until it is granted. */
  async function granted(node: ClusterNode, token: string, body: Record<string, unknown>): Promise<any> {
    const created = await call(node, 'createLease', {
      token,
      body: { count: 1, ttlSeconds: 300, waitSeconds: 30, ...body },
    });
    if (created.status !== 201 && created.status !== 202) throw new Error(describeReply('createLease', created));
    let lease = created.body;
    while (lease.status === 'queued') {
      const reply = await call(node, 'getLease', { token, path: { leaseId: lease.id }, query: { waitSeconds: 30 } });
      lease = reply.body;
    }
    if (lease.status !== 'granted') throw new Error(`lease ${lease.id} ended ${lease.status} instead of being granted`);
    return lease;
  }

  it('serves 300 concurrent lease requests over three nodes: one lease per device at a time, in queue order, none lost', async () => {
    const nodes = [...cluster.nodes];
    const user = await member('burst');
    const problems: string[] = [];
    const abort = new AbortController();
    const fail = (problem: string) => {
      problems.push(problem);
      abort.abort();
    };

    const created = await Promise.all(
      Array.from({ length: 300 }, (_, index) =>
        call(nodes[index % 3]!, 'createLease', {
          token: user.token,
          body: { count: 1, ttlSeconds: 300, waitSeconds: 300 },
        }),
      ),
    );
    const refused = created.filter((reply) => reply.status !== 201 && reply.status !== 202);
    expect(refused.map((reply) => describeReply('createLease', reply))).toEqual([]);
    const first = created.filter((reply) => reply.status === 201).map((reply) => reply.body);
    // Each queued lease is then awaited through another node than the one it was created on.
    const queued = created.flatMap((reply, index) => {
      if (reply.status !== 202) return [];
      const lease: { id: string; queuePosition: number } = reply.body;
      return [{ id: lease.id, queuePosition: lease.queuePosition, pollOn: nodes[(index + 1) % 3]! }];
    });
    const queuedById = new Map(queued.map((lease) => [lease.id, lease]));
    expect(first).toHaveLength(DEVICES);
    expect(new Set(first.map((lease) => lease.devices[0].id)).size).toBe(DEVICES);
    expect(queued.map((lease) => lease.queuePosition).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 300 - DEVICES }, (_, index) => index + 1),
    );

    const release = async (leaseId: string) => {
      const node = nodes[Math.floor(Math.random() * nodes.length)]!;
      const reply = await call(node, 'releaseLease', { token: user.token, path: { leaseId }, signal: abort.signal });
      if (reply.status !== 200 || reply.body.status !== 'released') {
        fail(describeReply(`release ${leaseId} on ${node.name}`, reply));
      }
    };
    /** When each queued lease's long poll answered it granted, and through which node. */
    const answered = new Map<string, { at: number; node: string }>();
    const waitAndRelease = async (leaseId: string, node: ClusterNode) => {
      for (;;) {
        const reply = await call(node, 'getLease', {
          token: user.token,
          path: { leaseId },
          query: { waitSeconds: 30 },
          signal: abort.signal,
        });
        if (reply.status !== 200) return fail(describeReply(`getLease ${leaseId} on ${node.name}`, reply));
        if (reply.body.status === 'queued') continue;
        if (reply.body.status !== 'granted') {
          return fail(`lease ${leaseId} ended ${reply.body.status} (${reply.body.endReason})`);
        }
        answered.set(leaseId, { at: Date.now(), node: node.name });
        return release(leaseId);
      }
    };
    /**
     * When a listing first showed each queued lease granted: its grant was committed by then, so a long poll still
     * waiting a second later was not woken by it (grantedAt is read before the grant commits, so it cannot tell).
     */
    const seen = new Map<string, number>();
    // Catches a long poll that a grant made on another node does not wake, rather than waiting for its timeout.
    const watch = async () => {
      while (!abort.signal.aborted && answered.size < queued.length) {
        const reply = await call(nodes[0]!, 'listLeases', {
          token: admin,
          query: { userId: user.userId, status: 'granted', limit: 200 },
          signal: abort.signal,
        });
        const now = Date.now();
        for (const { id } of reply.body.data as { id: string }[]) {
          const waiter = queuedById.get(id);
          if (waiter === undefined || answered.has(id)) continue;
          if (!seen.has(id)) seen.set(id, now);
          if (now - seen.get(id)! > 3000) {
            fail(`lease ${id} is granted, but its long poll on ${waiter.pollOn.name} has not answered for 3 s`);
          }
        }
        await sleep(250);
      }
    };

    const started = Date.now();
    const work = [
      watch(),
      ...first.map((lease) => release(lease.id)),
      ...queued.map((lease) => waitAndRelease(lease.id, lease.pollOn)),
    ];
    const settled = await Promise.allSettled(work);
    for (const outcome of settled) {
      if (outcome.status === 'rejected' && !abort.signal.aborted) problems.push(String(outcome.reason));
    }
    expect(problems).toEqual([]);
    const elapsed = Date.now() - started;

    const ended: any[] = [];
    let cursor: string | undefined;
    do {
      const page = await call(nodes[0]!, 'listLeases', {
        token: user.token,
        query: { status: 'released', limit: 200, ...(cursor === undefined ? {} : { cursor }) },
      });
      ended.push(...page.body.data);
      cursor = page.body.nextCursor ?? undefined;
    } while (cursor !== undefined);
    expect(ended).toHaveLength(300);
    expect(ended.filter((lease) => lease.endReason !== 'released' || lease.devices.length !== 1)).toEqual([]);

    // The event log, in its order (the order of the commits that hold the scheduling lock): no device is granted
    // while a lease holds it, and the queued leases are granted in their queue's order.
    const deviceOf = new Map(ended.map((lease) => [lease.id as string, lease.devices[0].id as string]));
    const events: { type: string; subject: { id: string }; data: { deviceIds?: string[] } }[] = [];
    cursor = undefined;
    do {
      const page = await call(nodes[1]!, 'listEvents', {
        token: admin,
        query: { type: ['lease.granted', 'lease.released'], limit: 200, ...(cursor === undefined ? {} : { cursor }) },
      });
      events.push(...page.body.data);
      cursor = page.body.nextCursor ?? undefined;
    } while (cursor !== undefined);
    const holders = new Map<string, string>();
    const grantOrder: string[] = [];
    const overlaps: string[] = [];
    for (const event of events) {
      const leaseId = event.subject.id;
      const deviceId = deviceOf.get(leaseId);
      if (deviceId === undefined) continue;
      if (event.type === 'lease.granted') {
        const holder = holders.get(deviceId);
        if (holder !== undefined) overlaps.push(`${deviceId} granted to ${leaseId} while ${holder} held it`);
        holders.set(deviceId, leaseId);
        grantOrder.push(leaseId);
      } else if (holders.get(deviceId) === leaseId) {
        holders.delete(deviceId);
      }
    }
    expect(overlaps).toEqual([]);
    expect(grantOrder).toHaveLength(300);
    const positions = grantOrder.flatMap((leaseId) => queuedById.get(leaseId)?.queuePosition ?? []);
    const outOfOrder = positions.flatMap((position, index) =>
      index > 0 && position < positions[index - 1]! ? [`position ${position} granted after ${positions[index - 1]}`] : [],
    );
    expect.soft(outOfOrder).toEqual([]);

    // The long polls were woken by the grants, whichever node made them.
    const slow = queued.flatMap((lease) => {
      const { at, node } = answered.get(lease.id)!;
      const late = at - (seen.get(lease.id) ?? at);
      return late > 1000 ? [`${lease.id} answered on ${node} ${late} ms after a listing showed it granted`] : [];
    });
    expect.soft(slow).toEqual([]);

    // The recorded times tell the same story: on each device, each lease is granted no earlier than the one before
    // it (in the log's order) ended.
    const lastOn = new Map<string, any>();
    const byId = new Map(ended.map((lease) => [lease.id as string, lease]));
    const earlyGrants: string[] = [];
    for (const leaseId of grantOrder) {
      const lease = byId.get(leaseId);
      const before = lastOn.get(deviceOf.get(leaseId)!);
      if (before !== undefined && Date.parse(lease.grantedAt) < Date.parse(before.endedAt)) {
        const ms = Date.parse(before.endedAt) - Date.parse(lease.grantedAt);
        earlyGrants.push(
          `${leaseId} grantedAt ${lease.grantedAt}, ${ms} ms before ${before.id} (same device) endedAt ${before.endedAt}`,
        );
      }
      lastOn.set(deviceOf.get(leaseId)!, lease);
    }
    expect.soft(earlyGrants).toEqual([]);
    expect(elapsed).toBeLessThan(60_000);
  }, 90_000);

  it('operates every device through every node', async () => {
    const serials = cluster.devices.map((device) => device.serial).sort();
    for (const node of cluster.nodes) {
      const listed = await call(node, 'listDevices', { token: admin, query: { limit: 200 } });
      const answers = await Promise.all(
        (listed.body.data as { id: string }[]).map(async (device) => {
          const shell = await call(node, 'runDeviceShell', {
            token: admin,
            path: { deviceId: device.id },
            body: { command: 'getprop ro.serialno' },
          });
          return shell.status === 200 ? (shell.body.stdout as string).trim() : describeReply(`shell on ${device.id}`, shell);
        }),
      );
      expect(answers.sort(), `the devices as ${node.name} reaches them`).toEqual(serials);
    }
  });

  it('serves one lease through every node: created on A, renewed on B, used on C and B, released on C', async () => {
    const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const user = await member('roaming');
    const lease = await granted(a, user.token, { ttlSeconds: 60 });
    const deviceId: string = lease.devices[0].id;

    const renewed = await call(b, 'renewLease', { token: user.token, path: { leaseId: lease.id }, body: { ttlSeconds: 600 } });
    expect(renewed.status).toBe(200);
    expect(Date.parse(renewed.body.expiresAt)).toBeGreaterThan(Date.parse(lease.expiresAt));
    const seen = await call(c, 'getLease', { token: user.token, path: { leaseId: lease.id } });
    expect(seen.body).toMatchObject({ status: 'granted', expiresAt: renewed.body.expiresAt });

    for (const node of [c, b]) {
      const path = `/data/local/tmp/pushed-on-${node.name}.txt`;
      const pushed = await call(node, 'pushDeviceFile', {
        token: user.token,
        path: { deviceId },
        query: { path },
        rawBody: `written through ${node.name}\n`,
      });
      expect(pushed, `push through ${node.name}`).toMatchObject({ status: 201, body: { path } });
      const shell = await call(node, 'runDeviceShell', {
        token: user.token,
        path: { deviceId },
        body: { command: `cat ${path}` },
      });
      expect(shell, `shell through ${node.name}`).toMatchObject({
        status: 200,
        body: { exitCode: 0, stdout: `written through ${node.name}\n` },
      });
    }
    const both = await call(a, 'runDeviceShell', {
      token: user.token,
      path: { deviceId },
      body: { command: `cat /data/local/tmp/pushed-on-${b.name}.txt /data/local/tmp/pushed-on-${c.name}.txt` },
    });
    expect(both.body).toMatchObject({ exitCode: 0, stdout: `written through ${b.name}\nwritten through ${c.name}\n` });

    const released = await call(c, 'releaseLease', { token: user.token, path: { leaseId: lease.id } });
    expect(released).toMatchObject({ status: 200, body: { status: 'released', endReason: 'released' } });
    for (const node of [a, b, c]) {
      const refused = await call(node, 'runDeviceShell', { token: user.token, path: { deviceId }, body: { command: 'true' } });
      expect(refused, `shell through ${node.name} after the release`).toMatchObject({
        status: 403,
        body: { code: 'lease_required' },
      });
    }
  }, 60_000);

  it('serves the WebSocket operations through every node; a release through one closes the sessions on the others', async () => {
    const [a, b, c] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const user = await member('sockets');
    const lease = await granted(a, user.token, {});
    const deviceId: string = lease.devices[0].id;
    const socketUrl = (node: ClusterNode, suffix: string, query: Record<string, string> = {}) => {
      const search = Object.keys(query).length > 0 ? `?${new URLSearchParams(query)}` : '';
      return `${node.url.replace(/^http/, 'ws')}/v1/devices/${deviceId}/${suffix}${search}`;
    };
    const open = async (url: string) => {
      const opened = await openWebSocket(url, user.token);
      if (!opened.upgraded) throw new Error(`refused: ${opened.status} ${JSON.stringify(opened.body)}`);
      return opened.ws;
    };

    // A shell through B.
    const shell = await open(socketUrl(b, 'shell/stream', { command: 'cat' }));
    const shellRecord = record(shell);
    shell.send(Buffer.from(`through ${b.name}\n`));
    shell.send(JSON.stringify({ type: 'eof' }));
    await withDeadline(shellRecord.closed, 10_000, 'the shell closing after eof').finally(() => shell.terminate());
    const stdout = shellRecord.messages.filter((m) => m.binary && m.data[0] === 1).map((m) => m.data.subarray(1));
    expect(Buffer.concat(stdout).toString()).toBe(`through ${b.name}\n`);

    // Logcat followed through C, of input sent through A.
    const logcat = await open(socketUrl(c, 'logcat/stream', { tag: 'InputDispatcher' }));
    const logcatRecord = record(logcat);
    const entry = await within(10_000, 'a followed logcat entry', async () => {
      await call(a, 'sendDeviceInput', { token: user.token, path: { deviceId }, body: { type: 'tap', x: 3, y: 4 } });
      return logcatRecord.messages.map((m) => JSON.parse(m.data.toString())).find((e) => e.tag === 'InputDispatcher');
    });
    expect(entry.message).toContain('Injected tap');
    logcat.close();

    // Debian's adb through an ADB tunnel to B.
    const tunnel = await openAdbTunnel({ url: socketUrl(b, 'adb'), headers: { authorization: `Bearer ${user.token}` } });
    const adb = await startAdbHost();
    try {
      const serial = `127.0.0.1:${tunnel.port}`;
      expect((await adb.run('connect', serial)).stdout).toContain('connected');
      await within(15_000, 'the tunnelled device', async () =>
        (await adb.run('-s', serial, 'get-state')).stdout.trim() === 'device' ? true : undefined,
      );
      expect((await adb.run('-s', serial, 'shell', 'echo', 'tunnelled')).stdout.trim()).toBe('tunnelled');
    } finally {
      await adb.stop();
      await tunnel.close();
    }

    // A shell opened through B with an API token ends when the token is revoked through C.
    const created = await call(a, 'createApiToken', {
      token: user.token,
      body: { name: 'socket', scopes: ['read', 'write'] },
    });
    expect(created.status).toBe(201);
    const byToken = await openWebSocket(socketUrl(b, 'shell/stream'), created.body.secret);
    if (!byToken.upgraded) throw new Error(`refused: ${byToken.status} ${JSON.stringify(byToken.body)}`);
    const byTokenRecord = record(byToken.ws);
    expect((await call(c, 'revokeApiToken', { token: user.token, path: { tokenId: created.body.id } })).status).toBe(204);
    expect((await withDeadline(byTokenRecord.closed, 5_000, 'the shell of a revoked token closing')).code).toBe(4001);

    // An interactive shell through C ends when the lease is released through A.
    const interactive = await open(socketUrl(c, 'shell/stream'));
    const interactiveRecord = record(interactive);
    const released = await call(a, 'releaseLease', { token: user.token, path: { leaseId: lease.id } });
    expect(released.status).toBe(200);
    const closed = await withDeadline(interactiveRecord.closed, 5_000, 'the shell on another node closing');
    expect(closed.code).toBe(4001);
  }, 60_000);

  it('survives kill -9 of the node tracking the hosts: another takes over within 10 s, leases and queue intact', async () => {
    const user = await member('takeover');
    const hosts = await call(cluster.nodes[0]!, 'listHosts', { token: admin });
    expect(hosts.status).toBe(200);
    expect(hosts.body.data).toHaveLength(DEVICES);
    const trackers = new Set(hosts.body.data.map((host: { trackedBy?: unknown }) => host.trackedBy));
    expect([...trackers], 'the nodes tracking the hosts (Host.trackedBy)').toHaveLength(1);
    const tracker = cluster.nodes.find((node) => node.name === [...trackers][0]);
    expect(tracker, `the tracking node ${String([...trackers][0])} is one of the cluster's`).toBeDefined();
    const others = cluster.nodes.filter((node) => node !== tracker);

    const online = await call(others[0]!, 'listDevices', { token: admin, query: { state: 'online', limit: 200 } });
    const [d0, d1, d2] = (online.body.data as { id: string }[]).map((device) => device.id);
    // Granted leases created through every node, the tracker included, and a lease queued behind the first.
    const held = [
      await granted(tracker!, user.token, { selector: { deviceIds: [d0] } }),
      await granted(others[0]!, user.token, { selector: { deviceIds: [d1] } }),
      await granted(others[1]!, user.token, { selector: { deviceIds: [d2] } }),
    ];
    const waiting = await call(tracker!, 'createLease', {
      token: user.token,
      body: { selector: { deviceIds: [d0] }, count: 1, ttlSeconds: 300, waitSeconds: 120 },
    });
    expect(waiting).toMatchObject({ status: 202, body: { status: 'queued', queuePosition: 1 } });

    await tracker!.kill('SIGKILL');
    const killedAt = Date.now();
    const survivors = cluster.nodes.map((node) => node.name);
    expect(survivors).not.toContain(tracker!.name);

    await within(10_000, 'a surviving node tracks every host and every device is online again', async () => {
      const now = await call(others[0]!, 'listHosts', { token: admin });
      const devices = await call(others[1]!, 'listDevices', { token: admin, query: { state: 'online', limit: 200 } });
      const tracked = now.body.data.every((host: { trackedBy?: string }) => survivors.includes(host.trackedBy!));
      return tracked && devices.body.data.length === DEVICES ? true : undefined;
    });
    expect(Date.now() - killedAt).toBeLessThan(10_000);

    for (const [index, lease] of held.entries()) {
      const node = others[index % 2]!;
      const now = await call(node, 'getLease', { token: user.token, path: { leaseId: lease.id } });
      expect(now.body, `lease ${index + 1} through ${node.name}`).toMatchObject({
        status: 'granted',
        devices: [{ id: lease.devices[0].id }],
      });
      const shell = await call(node, 'runDeviceShell', {
        token: user.token,
        path: { deviceId: lease.devices[0].id },
        body: { command: 'echo still mine' },
      });
      expect(shell, `shell on lease ${index + 1}'s device through ${node.name}`).toMatchObject({
        status: 200,
        body: { exitCode: 0, stdout: 'still mine\n' },
      });
    }
    const stillQueued = await call(others[1]!, 'getLease', { token: user.token, path: { leaseId: waiting.body.id } });
    expect(stillQueued.body).toMatchObject({ status: 'queued', queuePosition: 1 });

    const released = await call(others[0]!, 'releaseLease', { token: user.token, path: { leaseId: held[0].id } });
    expect(released.body).toMatchObject({ status: 'released' });
    const next = await call(others[1]!, 'getLease', {
      token: user.token,
      path: { leaseId: waiting.body.id },
      query: { waitSeconds: 20 },
    });
    expect(next.body).toMatchObject({ status: 'granted', devices: [{ id: d0 }] });
  }, 60_000);
});
