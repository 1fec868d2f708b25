import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations } from '../../src/generated/operations.js';
import { startServer, type RunningServer } from '../../src/index.js';
import { testEngine } from '../helpers/database.js';
import { SseStream } from './event-stream-helpers.js';
import { PASSWORD, startApi, uniqueUsername, type Api } from './harness.js';

// Nodes share a database only on PostgreSQL.
describe.runIf(testEngine === 'postgres')('event streams across nodes', () => {
  let api: Api;
  let nodeB: RunningServer;

  beforeAll(async () => {
    api = await startApi({ nodeName: 'stream-a' });
    const { dataDir, databaseUrl } = api.server.config;
    nodeB = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir,
      databaseUrl: databaseUrl!,
      nodeName: 'stream-b',
      logLevel: 'silent',
      localAdb: 'off',
    });
  });
  afterAll(async () => {
    await nodeB?.close();
    await api?.close();
  });

  it('delivers an event written through one node to a stream open on another, and ends it on a revocation there', async () => {
    const stream = await SseStream.open(`${nodeB.url}${operations.streamEvents.path}?type=user.created`, api.admin.token);
    expect(stream.status).toBe(200);
    expect((await stream.next())?.retry).toBe(2000);

    const username = uniqueUsername('across');
    const created = await api.call('createUser', {
      token: api.admin.token,
      body: { username, password: PASSWORD, role: 'member' },
    });
    expect(created.status).toBe(201);
    const frame = await stream.nextEvent();
    expect(JSON.parse(frame!.data!)).toMatchObject({ type: 'user.created', subject: { id: created.body.id } });

    // Logging out on node A ends the stream the session opened on node B.
    const member = await api.login(username, PASSWORD);
    const own = await SseStream.open(`${nodeB.url}${operations.streamEvents.path}`, member.accessToken);
    expect((await own.next())?.retry).toBe(2000);
    const logout = await api.call('logout', { token: member.accessToken, body: { refreshToken: member.refreshToken } });
    expect(logout.status).toBe(204);
    expect((await own.ended(5000)).at(-1)?.comments).toEqual(['logged out']);
    stream.close();
  });
});
