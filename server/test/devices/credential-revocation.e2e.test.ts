import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { openAdbTunnel, type AdbTunnel } from '../../../cli/src/lib/adb-tunnel.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import {
  allDevices,
  eventually,
  leaseDevice,
  openWebSocket,
  record,
  withDeadline,
  wsUrl,
  type Json,
  type Recorded,
} from '../api/device-helpers.js';
import { PASSWORD, startApi, type Api, type Caller } from '../api/harness.js';

const DEVICES = 5;
const CLOSE_MS = 5000;

/**
 * A credential change (token revoked, user disabled, password changed, logout) closes every WebSocket opened with
 * that credential at once, with 4001 and a reason; an ADB tunnel stops serving; disabling a user ends their leases.
 */
describe('credential changes close live WebSockets', () => {
  let api: Api;
  let adb: AdbHost;
  let devices: Json[];
  let next = 0;

  beforeAll(async () => {
    adb = await startAdbHost();
    api = await startApi({ virtualDevices: DEVICES });
    devices = await eventually(async () => {
      const online = await allDevices(api, api.admin.token, { available: true });
      return online.length === DEVICES ? online : undefined;
    }, 30_000, `${DEVICES} devices available`);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await adb?.stop();
  });

  /** A device leased by `token`'s user (a fresh one per test, so that resets in flight do not interfere). */
  async function leased(token: string): Promise<{ deviceId: string; lease: Json }> {
    const deviceId = devices[next++]!.id as string;
    return { deviceId, lease: await leaseDevice(api, token, deviceId) };
  }

  async function open(path: string, token: string, query: Record<string, string> = {}): Promise<{ ws: WebSocket; recorded: Recorded }> {
    const opened = await openWebSocket(wsUrl(api, path, query), token);
    if (!opened.upgraded) throw new Error(`${path}: ${opened.status} ${JSON.stringify(opened.body)}`);
    return { ws: opened.ws, recorded: record(opened.ws) };
  }

  /** A shell running a long command and a logcat follow on the device, opened with `token`. */
  async function openSessions(deviceId: string, token: string) {
    const shell = await open(`/v1/devices/${deviceId}/shell/stream`, token, { command: 'sleep 60' });
    const logcat = await open(`/v1/devices/${deviceId}/logcat/stream`, token);
    return [shell, logcat];
  }

  async function expectClosed(sessions: { recorded: Recorded }[], reason: RegExp): Promise<void> {
    for (const session of sessions) {
      const closed = await withDeadline(session.recorded.closed, CLOSE_MS, 'the close');
      expect(closed.code).toBe(4001);
      expect(closed.reason).toMatch(reason);
    }
  }

  async function tunnelWith(deviceId: string, token: string): Promise<{ tunnel: AdbTunnel; serial: string }> {
    const tunnel = await openAdbTunnel({
      url: wsUrl(api, `/v1/devices/${deviceId}/adb`),
      headers: { authorization: `Bearer ${token}` },
    });
    const serial = `127.0.0.1:${tunnel.port}`;
    expect((await adb.run('connect', serial)).stdout).toContain(`connected to ${serial}`);
    expect((await adb.run('-s', serial, 'wait-for-device')).code).toBe(0);
    expect(await adb.run('-s', serial, 'shell', 'echo', 'open')).toMatchObject({ code: 0, stdout: 'open\n' });
    return { tunnel, serial };
  }

  it('revoking an API token closes its shell, logcat and ADB tunnel; the tunnel stops answering', { timeout: 60_000 }, async () => {
    const member = await api.addCaller('member');
    const created = await api.call('createApiToken', {
      token: member.token,
      body: { name: 'ci', scopes: ['read', 'write'] },
    });
    expect(created.status).toBe(201);
    const secret = created.body.secret as string;
    const { deviceId } = await leased(secret);
    const sessions = await openSessions(deviceId, secret);
    // Another credential of the same user is not touched.
    const [sessionShell] = await openSessions(deviceId, member.token);
    const { tunnel, serial } = await tunnelWith(deviceId, secret);
    try {
      const revoked = await api.call('revokeApiToken', { token: member.token, path: { tokenId: created.body.id } });
      expect(revoked.status).toBe(204);
      await expectClosed(sessions, /token revoked/);
      const shell = await adb.run('-s', serial, 'shell', 'echo', 'after');
      expect(shell.stdout).not.toContain('after');
      expect(shell.code).not.toBe(0);
      expect(sessionShell!.ws.readyState).toBe(sessionShell!.ws.OPEN);
    } finally {
      sessionShell!.ws.close();
      await adb.run('disconnect', serial);
      await tunnel.close();
    }
  });

  it('an admin changing the password closes the sessions opened with the old login', { timeout: 30_000 }, async () => {
    const member = await api.addCaller('member');
    const { deviceId } = await leased(member.token);
    const sessions = await openSessions(deviceId, member.token);
    const updated = await api.call('updateUser', {
      token: api.admin.token,
      path: { userId: member.userId },
      body: { password: `${PASSWORD}-2` },
    });
    expect(updated.status).toBe(200);
    await expectClosed(sessions, /password changed/);
  });

  it('changing your own password closes the WebSockets of your other sessions, not of this one', { timeout: 30_000 }, async () => {
    const member = await api.addCaller('member');
    const other = await api.login(member.username, PASSWORD);
    const { deviceId } = await leased(member.token);
    const [kept] = await openSessions(deviceId, member.token);
    const closed = await openSessions(deviceId, other.accessToken);
    const changed = await api.call('updateMe', {
      token: member.token,
      body: { password: `${PASSWORD}-new`, currentPassword: PASSWORD },
    });
    expect(changed.status).toBe(200);
    await expectClosed(closed, /password changed/);
    expect(kept!.ws.readyState).toBe(kept!.ws.OPEN);
    kept!.ws.close();
  });

  it('logging out closes the WebSockets of that session only', { timeout: 30_000 }, async () => {
    const member = await api.addCaller('member');
    const second = await api.login(member.username, PASSWORD);
    const { deviceId } = await leased(member.token);
    const sessions = await openSessions(deviceId, member.token);
    const [other] = await openSessions(deviceId, second.accessToken);
    const out = await api.call('logout', { body: { refreshToken: member.pair.refreshToken } });
    expect(out.status).toBe(204);
    await expectClosed(sessions, /logged out/);
    expect(other!.ws.readyState).toBe(other!.ws.OPEN);
    other!.ws.close();
  });

  it('disabling a user closes all their WebSockets and ends their leases with a reset', { timeout: 60_000 }, async () => {
    const member: Caller = await api.addCaller('member');
    const created = await api.call('createApiToken', { token: member.token, body: { name: 'ci', scopes: ['read', 'write'] } });
    const { deviceId, lease } = await leased(member.token);
    const sessions = [...(await openSessions(deviceId, member.token)), ...(await openSessions(deviceId, created.body.secret))];
    const { tunnel, serial } = await tunnelWith(deviceId, created.body.secret);
    try {
      const disabled = await api.call('updateUser', {
        token: api.admin.token,
        path: { userId: member.userId },
        body: { disabled: true },
      });
      expect(disabled.status).toBe(200);
      await expectClosed(sessions, /user disabled/);
      expect((await adb.run('-s', serial, 'shell', 'echo', 'after')).stdout).not.toContain('after');

      const ended = await api.call('getLease', { token: api.admin.token, path: { leaseId: lease.id } });
      expect(ended.body).toMatchObject({ status: 'released', endReason: 'user_disabled' });
      const reset = await eventually(async () => {
        const got = await api.call('getLease', { token: api.admin.token, path: { leaseId: lease.id } });
        return got.body.devices[0].reset ?? undefined;
      }, 30_000, 'the reset');
      expect(reset.status).toBe('succeeded');
      const events = await api.call('listEvents', {
        token: api.admin.token,
        query: { type: ['lease.released', 'device.reset'], subjectId: lease.id, limit: 10 },
      });
      expect(events.body.data.map((event: Json) => [event.type, event.data.reason])).toEqual([['lease.released', 'user_disabled']]);
      await eventually(async () => (await api.call('getDevice', { token: api.admin.token, path: { deviceId } })).body.available, 30_000, 'device available');
    } finally {
      await adb.run('disconnect', serial);
      await tunnel.close();
    }
  });
});
