import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/src/index.js';
import { AuthenticationError, CloudPhone, type Event } from '../src/index.js';

/*
 * cp.events.follow against the real server, through a TCP proxy that can cut the connection: a lost stream is
 * resumed after the last event received, and a revoked credential ends the iteration.
 */

const ADMIN_PASSWORD = 'admin-password-for-sdk-follow';

let dataDir: string;
let server: RunningServer;
let admin: CloudPhone;
let proxy: Server;
let proxyUrl: string;
const sockets = new Set<Socket>();
let users = 0;

/** Cuts every connection through the proxy, as a network failure would. */
function cut(): void {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
}

async function createUser(): Promise<string> {
  users += 1;
  return (await admin.users.create({ username: `follower-${users}`, password: 'correct-horse-battery', role: 'member' })).id;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-follow-'));
  server = await startServer({ host: '127.0.0.1', port: 0, dataDir, adminPassword: ADMIN_PASSWORD, logStream: { write: () => undefined } });
  const pair = await new CloudPhone({ baseUrl: server.url }).auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  admin = new CloudPhone({ baseUrl: server.url, token: pair.accessToken });
  const target = new URL(server.url);
  proxy = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  cut();
  await new Promise((resolve) => proxy?.close(resolve));
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('cp.events.follow against the server', () => {
  it('resumes after the last event received when the connection is cut, missing and repeating none', async () => {
    const [latest] = (await admin.events.list({ order: 'desc', limit: 1 })).data;
    const reconnects: string[] = [];
    // The client reconnects only once the events it must not miss are in the log.
    let appended!: () => void;
    const whileAppending = new Promise<void>((resolve) => (appended = resolve));
    const through = admin.withOptions({ baseUrl: proxyUrl, sleep: () => whileAppending });
    const stream = through.events.follow({ type: ['user.created'], lastEventId: latest!.id, onReconnect: ({ error }) => reconnects.push(error.name) })[
      Symbol.asyncIterator
    ]();

    const created = [await createUser(), await createUser()];
    const seen: Event[] = [(await stream.next()).value as Event, (await stream.next()).value as Event];
    cut();
    created.push(await createUser(), await createUser());
    appended();
    seen.push((await stream.next()).value as Event, (await stream.next()).value as Event);
    await stream.return?.();

    expect(seen.map((event) => event.subject?.id)).toEqual(created);
    const logged = (await admin.events.list({ type: ['user.created'], order: 'desc', limit: 4 })).data.reverse();
    expect(seen).toEqual(logged);
    expect(reconnects).toEqual(['APIConnectionError']);
  });

  it('ends with AuthenticationError when its API token is revoked', async () => {
    const token = await admin.tokens.create({ name: 'follow-then-revoke', scopes: ['read'] });
    const follower = new CloudPhone({ baseUrl: server.url, token: token.secret, sleep: async () => undefined });
    const [latest] = (await admin.events.list({ order: 'desc', limit: 1 })).data;
    const stream = follower.events.follow({ type: ['user.created'], lastEventId: latest!.id })[Symbol.asyncIterator]();
    const userId = await createUser();
    expect((await stream.next()).value).toMatchObject({ type: 'user.created', subject: { id: userId } });
    await admin.tokens.revoke(token.id);
    await expect(stream.next()).rejects.toBeInstanceOf(AuthenticationError);
  });
});
