import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allDevices, eventually, release, type Json } from './device-helpers.js';
import { startApi, type Api, type Caller } from './harness.js';

const DAY = 86_400;

describe('the inbox over HTTP', () => {
  let api: Api;
  let alice: Caller;
  let bob: Caller;

  beforeAll(async () => {
    api = await startApi({ virtualDevices: 2 });
    alice = await api.addCaller('member');
    bob = await api.addCaller('member');
    await eventually(async () => (await allDevices(api, api.admin.token, { state: 'online' })).length === 2, 30_000, 'devices online');
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  async function inbox(caller: Caller, query: Record<string, string | number | string[]> = {}): Promise<Json[]> {
    const page = await api.call('listNotifications', { token: caller.token, query: { limit: 100, ...query } });
    expect(page.status).toBe(200);
    return page.body.data;
  }

  async function unread(caller: Caller): Promise<number> {
    const count = await api.call('countUnreadNotifications', { token: caller.token });
    expect(count.status).toBe(200);
    return count.body.unread;
  }

  /** Moves the server clock, logging everyone in again: access tokens expire by that clock too. */
  async function advance(seconds: number): Promise<void> {
    api.clock.advance(seconds);
    for (const caller of [alice, bob, api.admin]) caller.token = (await api.login(caller.username, caller.password)).accessToken;
  }

  async function lease(caller: Caller, body: Json): Promise<Json> {
    const created = await api.call('createLease', { token: caller.token, body });
    expect([201, 202]).toContain(created.status);
    return created.body;
  }

  it('tells a holder whose queued lease was granted, and one whose lease an admin ended', async () => {
    const first = await lease(alice, { count: 2, ttlSeconds: 3600 });
    const queued = await lease(bob, { count: 1, ttlSeconds: 3600, waitSeconds: 600 });
    expect(queued.status).toBe('queued');
    // Granted at once: the request said so, the inbox does not.
    expect(await inbox(alice)).toEqual([]);

    const forced = await api.call('releaseLease', { token: api.admin.token, path: { leaseId: first.id } });
    expect(forced.status).toBe(200);
    const [ended] = await inbox(alice);
    expect(ended).toMatchObject({
      kind: 'lease.ended',
      title: 'Lease ended: an admin released it',
      link: `${api.url}/v1/leases/${first.id}`,
      subject: { type: 'lease', id: first.id },
      read: false,
      readAt: null,
    });
    expect(ended!.eventId).toMatch(/^evt_/);

    const granted = await eventually(async () => (await inbox(bob)).find((n) => n.kind === 'lease.granted'), 20_000, 'lease.granted');
    expect(granted).toMatchObject({ title: 'Lease granted: your 1 device is ready', subject: { type: 'lease', id: queued.id } });
    await release(api, bob.token, queued.id);
  });

  it("keeps each inbox to its user: others' notifications are not found, and their marks change nothing", async () => {
    const [bobs] = await inbox(bob);
    const id = bobs!.id as string;
    for (const caller of [alice, api.admin]) {
      for (const operationId of ['getNotification', 'markNotificationRead', 'markNotificationUnread', 'deleteNotification'] as const) {
        const response = await api.call(operationId, { token: caller.token, path: { notificationId: id } });
        expect(response.status).toBe(404);
        expect(response.body.code).toBe('not_found');
      }
      expect((await inbox(caller)).some((n) => n.id === id)).toBe(false);
    }
    const readAll = await api.call('markAllNotificationsRead', { token: alice.token });
    expect(readAll.status).toBe(200);
    const still = await api.call('getNotification', { token: bob.token, path: { notificationId: id } });
    expect(still.status).toBe(200);
    expect(still.body).toMatchObject({ id, read: false });
    expect((await api.call('getNotification', { token: bob.token, path: { notificationId: 'ntf_01JDXF3G4H5J6K7M8N9P0Q1R2S' } })).status).toBe(404);
    expect((await api.call('getNotification', { token: bob.token, path: { notificationId: 'nope' } })).status).toBe(400);
  });

  it('marks read and unread, counts, marks all read, filters, and deletes', async () => {
    await api.call('markAllNotificationsRead', { token: bob.token });
    const mine = await inbox(bob);
    expect(mine.length).toBeGreaterThan(0);
    expect(await unread(bob)).toBe(0);
    const id = mine[0]!.id as string;
    const unmarked = await api.call('markNotificationUnread', { token: bob.token, path: { notificationId: id } });
    expect(unmarked.status).toBe(200);
    expect(unmarked.body).toMatchObject({ id, read: false, readAt: null });
    expect(await unread(bob)).toBe(1);
    expect((await inbox(bob, { status: 'unread' })).map((n) => n.id)).toEqual([id]);
    expect((await inbox(bob, { status: 'read' })).map((n) => n.id)).not.toContain(id);
    expect((await inbox(bob, { kind: ['budget.exhausted'] }))).toEqual([]);
    const marked = await api.call('markNotificationRead', { token: bob.token, path: { notificationId: id } });
    expect(marked.body).toMatchObject({ id, read: true, readAt: api.clock.now().toISOString() });
    await api.call('markNotificationUnread', { token: bob.token, path: { notificationId: id } });
    const all = await api.call('markAllNotificationsRead', { token: bob.token });
    expect(all.body).toEqual({ updated: 1 });

    const deleted = await api.call('deleteNotification', { token: bob.token, path: { notificationId: id } });
    expect(deleted.status).toBe(204);
    expect((await api.call('getNotification', { token: bob.token, path: { notificationId: id } })).status).toBe(404);
    expect((await api.call('deleteNotification', { token: bob.token, path: { notificationId: id } })).status).toBe(404);
  });

  it('shows and changes preferences, and follows them', async () => {
    const shown = await api.call('getNotificationPreferences', { token: alice.token });
    expect(shown.status).toBe(200);
    expect(shown.body.preferences).toHaveLength(11);
    expect(shown.body.preferences.find((p: Json) => p.kind === 'lease.ended')).toEqual({ kind: 'lease.ended', inbox: true, email: false });
    const changed = await api.call('updateNotificationPreferences', {
      token: alice.token,
      body: { preferences: [{ kind: 'lease.ended', inbox: false }] },
    });
    expect(changed.status).toBe(200);
    expect(changed.body.preferences.find((p: Json) => p.kind === 'lease.ended')).toEqual({ kind: 'lease.ended', inbox: false, email: false });
    const refused = await api.call('updateNotificationPreferences', {
      token: alice.token,
      body: { preferences: [{ kind: 'lease.lost', inbox: false }] },
    });
    expect(refused.status).toBe(400);
    const twice = await api.call('updateNotificationPreferences', {
      token: alice.token,
      body: { preferences: [{ kind: 'lease.ended', inbox: true }, { kind: 'lease.ended', email: true }] },
    });
    expect(twice.status).toBe(400);

    const before = (await inbox(alice)).length;
    const held = await lease(alice, { count: 1, ttlSeconds: 3600 });
    await api.call('releaseLease', { token: api.admin.token, path: { leaseId: held.id } });
    expect(await inbox(alice)).toHaveLength(before);
    await api.call('updateNotificationPreferences', { token: alice.token, body: { preferences: [{ kind: 'lease.ended', inbox: true }] } });
  });

  it('warns a holder before the lease expires, once per expiry, again after a renewal', async () => {
    const held = await lease(alice, { count: 1, ttlSeconds: 900 });
    const warnings = async () => (await inbox(alice, { kind: ['lease.expiring'] })).filter((n) => n.subject.id === held.id);
    await advance(9 * 60);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await warnings()).toEqual([]);

    await advance(60);
    const [warned] = await eventually(async () => {
      const found = await warnings();
      return found.length > 0 ? found : undefined;
    }, 10_000, 'a lease.expiring notification');
    expect(warned).toMatchObject({ kind: 'lease.expiring', title: 'Lease expiring in 5 minutes', read: false });
    await advance(30);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await warnings()).toHaveLength(1);

    const renewed = await api.call('renewLease', { token: alice.token, path: { leaseId: held.id }, body: { ttlSeconds: 600 } });
    expect(renewed.status).toBe(200);
    await advance(5 * 60 + 1);
    await eventually(async () => (await warnings()).length === 2, 10_000, 'a second warning after the renewal');
    await release(api, alice.token, held.id);
  });

  it('purges read notifications once past the retention, and keeps unread ones', async () => {
    const notifications = await inbox(alice);
    expect(notifications.length).toBeGreaterThan(1);
    const [keep, ...rest] = notifications;
    await api.call('markAllNotificationsRead', { token: alice.token });
    await api.call('markNotificationUnread', { token: alice.token, path: { notificationId: keep!.id } });
    await advance(31 * DAY);
    await eventually(async () => (await inbox(alice)).length === 1, 10_000, 'the read notifications purged');
    expect((await inbox(alice)).map((n) => n.id)).toEqual([keep!.id]);
    for (const gone of rest) {
      expect((await api.call('getNotification', { token: alice.token, path: { notificationId: gone.id } })).status).toBe(404);
    }
  });
});
