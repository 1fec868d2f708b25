import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { eventually, type Json } from './device-helpers.js';
import { startApi, type Api, type Caller } from './harness.js';

describe('an unreachable host in the inbox', () => {
  let api: Api;
  let member: Caller;
  let otherAdmin: Caller;
  let adb: AdbHost;

  beforeAll(async () => {
    api = await startApi({ clock: () => new Date() });
    member = await api.addCaller('member');
    otherAdmin = await api.addCaller('admin');
    adb = await startAdbHost();
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await adb?.stop();
  });

  async function notifications(caller: Caller): Promise<Json[]> {
    const page = await api.call('listNotifications', { token: caller.token, query: { kind: ['host.unreachable'] } });
    expect(page.status).toBe(200);
    return page.body.data;
  }

  async function hostStatus(hostId: string): Promise<string> {
    const host = await api.call('getHost', { token: api.admin.token, path: { hostId } });
    expect(host.status).toBe(200);
    return host.body.status;
  }

  it('tells every admin once when a connected host stops answering, and logs its return', { timeout: 60_000 }, async () => {
    const created = await api.call('createHost', {
      token: api.admin.token,
      body: { type: 'adb_server', address: `127.0.0.1:${adb.port}`, name: 'rack-2' },
    });
    expect(created.status).toBe(201);
    const hostId = created.body.id as string;
    await eventually(async () => (await hostStatus(hostId)) === 'connected', 20_000, 'the host connected');

    const { port } = adb;
    await adb.stop();
    const [warned] = await eventually(async () => {
      const found = await notifications(api.admin);
      return found.length > 0 ? found : undefined;
    }, 20_000, 'a host.unreachable notification');
    expect(warned).toMatchObject({
      kind: 'host.unreachable',
      title: 'Host rack-2 unreachable',
      subject: { type: 'host', id: hostId },
    });
    expect(warned!.body).toContain(`adb_server at 127.0.0.1:${port}`);
    expect(await notifications(otherAdmin)).toHaveLength(1);
    expect(await notifications(member)).toEqual([]);

    adb = await startAdbHost({ port });
    await eventually(async () => (await hostStatus(hostId)) === 'connected', 40_000, 'the host connected again');
    const events = await eventually(async () => {
      const page = await api.call('listEvents', { token: api.admin.token, query: { type: ['host.*'], subjectId: hostId } });
      const types = page.body.data.map((event: Json) => event.type);
      return types.length === 2 ? types : undefined;
    }, 10_000, 'host.reachable');
    expect(events).toEqual(['host.unreachable', 'host.reachable']);
    // Retries while it was away added nothing.
    expect(await notifications(api.admin)).toHaveLength(1);
  });
});
