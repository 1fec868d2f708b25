import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../devices/helpers.js';
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js';
import { testEngine } from '../helpers/database.js';

/**
 * The built `cloudphone-server`, killed with SIGKILL while 500 webhook deliveries are queued or in flight, then
 * started again: every event reaches the receiver at least once, under the same `webhook-id`, correctly signed.
 */

const EVENTS = 500;

async function ok(node: ClusterNode, method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${node.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

const login = async (node: ClusterNode, password: string): Promise<string> =>
  (await ok(node, 'POST', '/v1/auth/login', undefined, { username: 'admin', password })).accessToken;

/** A webhook receiver on loopback that holds every request until `open`, then answers 204 and records it. */
class Receiver {
  readonly received = new Map<string, number>();
  readonly held = new Set<ServerResponse>();
  invalid = 0;
  #open = false;
  #server: Server | undefined;
  #verifier: Webhook | undefined;

  async start(): Promise<string> {
    this.#server = createServer((request, response) => void this.#handle(request, response));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`;
  }

  verifyWith(secret: string): void {
    this.#verifier = new Webhook(secret);
  }

  open(): void {
    this.#open = true;
    for (const response of this.held) response.destroy();
    this.held.clear();
  }

  async close(): Promise<void> {
    this.open();
    this.#server?.closeAllConnections();
    await new Promise((resolve) => this.#server?.close(resolve));
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (!this.#open) {
      this.held.add(response);
      return;
    }
    const id = request.headers['webhook-id'] as string;
    try {
      this.#verifier!.verify(Buffer.concat(chunks), request.headers as Record<string, string>);
      this.received.set(id, (this.received.get(id) ?? 0) + 1);
    } catch {
      this.invalid += 1;
    }
    response.writeHead(204).end();
  }
}

describe('webhook deliveries across a crash of the server (SIGKILL)', () => {
  let cluster: Cluster;
  const receiver = new Receiver();

  beforeAll(async () => {
    cluster = await startCluster({
      engine: testEngine,
      nodes: 1,
      virtualDevices: 0,
      env: { CLOUDPHONE_WEBHOOK_ALLOW_PRIVATE: 'true', CLOUDPHONE_WEBHOOK_TIMEOUT: '60' },
    });
  }, 120_000);

  afterAll(async () => {
    await receiver.close();
    await cluster?.stop();
  });

  it('delivers every event at least once, with the same webhook-id, after a restart', { timeout: 180_000 }, async () => {
    const url = await receiver.start();
    let node = cluster.nodes[0]!;
    let admin = await login(node, cluster.adminPassword);
    const endpoint = await ok(node, 'POST', '/v1/webhooks', admin, { url, eventTypes: ['webhook.test'], description: 'crash' });
    receiver.verifyWith(endpoint.secret);

    // 500 events, each queued for the endpoint in its own transaction; the receiver holds the first attempts.
    const ids: string[] = [];
    for (let batch = 0; batch < EVENTS / 20; batch++) {
      const sent = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ok(node, 'POST', `/v1/webhooks/${endpoint.id}/test`, admin, { message: `event ${batch * 20 + i}` }),
        ),
      );
      ids.push(...sent.map((answer: { eventId: string }) => answer.eventId));
    }
    expect(new Set(ids).size).toBe(EVENTS);
    await eventually(async () => (receiver.held.size > 0 ? true : undefined), 30_000, 'attempts in flight');

    await node.kill('SIGKILL');
    receiver.open();
    node = await cluster.startNode('node-1');
    admin = await login(node, cluster.adminPassword);

    await eventually(async () => (ids.every((id) => receiver.received.has(id)) ? true : undefined), 120_000, 'every event delivered');
    expect(receiver.invalid).toBe(0);
    // Only events of the log reached it: the webhook-id is the event's id.
    expect([...receiver.received.keys()].every((id) => ids.includes(id))).toBe(true);
    // Each attempt is recorded just after its answer arrives.
    await eventually(async () => {
      const deliveries = await ok(node, 'GET', `/v1/webhooks/${endpoint.id}/deliveries?status=pending&limit=100`, admin);
      return deliveries.data.length === 0 ? true : undefined;
    }, 30_000, 'every delivery recorded as delivered');
  });
});
