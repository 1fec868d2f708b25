import { afterEach, describe, expect, it } from 'vitest';
import { startApi, type Api } from './harness.js';

let api: Api | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

function refresh(refreshToken: string) {
  return api!.call('refreshSession', { body: { refreshToken } });
}

describe('refresh token rotation with reuse detection', () => {
  it('revokes the whole session when a rotated refresh token comes back, and records it', async () => {
    api = await startApi();
    const member = await api.addCaller('member');
    const otherSession = await api.login(member.username, member.password);

    // The thief refreshes first with a stolen token; the owner comes back with the same token later.
    const thief = await refresh(member.pair.refreshToken);
    expect(thief.status).toBe(200);
    api.clock.advance(60);
    const owner = await refresh(member.pair.refreshToken);
    expect([owner.status, owner.body.code]).toEqual([401, 'invalid_refresh_token']);

    const thiefAccess = await api.call('getMe', { token: thief.body.accessToken });
    expect([thiefAccess.status, thiefAccess.body.code]).toEqual([401, 'token_revoked']);
    const thiefRefresh = await refresh(thief.body.refreshToken);
    expect([thiefRefresh.status, thiefRefresh.body.code]).toEqual([401, 'invalid_refresh_token']);
    const ownerAccess = await api.call('getMe', { token: member.token });
    expect(ownerAccess.status).toBe(401);

    expect((await api.call('getMe', { token: otherSession.accessToken })).status).toBe(200);

    const events = await api.call('listEvents', {
      token: api.admin.token,
      query: { type: ['auth.refresh_token_reused'] },
    });
    expect(events.body.data).toHaveLength(1);
    expect(events.body.data[0]).toMatchObject({
      type: 'auth.refresh_token_reused',
      actor: { type: 'anonymous' },
      subject: { type: 'user', id: member.userId },
    });
    const { sessionId } = events.body.data[0].data as { sessionId: string };
    expect(sessionId).toMatch(/^ses_/);
    const own = await api.call('listEvents', { token: otherSession.accessToken, query: { type: ['auth.*'] } });
    expect(own.body.data.map((e: { type: string }) => e.type)).toContain('auth.refresh_token_reused');
  });

  it('revokes the session for a token rotated several refreshes ago', async () => {
    api = await startApi();
    const member = await api.addCaller('member');
    const first = await refresh(member.pair.refreshToken);
    api.clock.advance(60);
    const second = await refresh(first.body.refreshToken);
    expect(second.status).toBe(200);
    api.clock.advance(60);
    expect((await refresh(member.pair.refreshToken)).status).toBe(401);
    expect((await api.call('getMe', { token: second.body.accessToken })).body.code).toBe('token_revoked');
  });

  it('refuses, without revoking, a second refresh with the same token within the grace window', async () => {
    api = await startApi();
    const member = await api.addCaller('member');
    const winner = await refresh(member.pair.refreshToken);
    api.clock.advance(5);
    const loser = await refresh(member.pair.refreshToken);
    expect([loser.status, loser.body.code]).toEqual([401, 'invalid_refresh_token']);
    expect((await api.call('getMe', { token: winner.body.accessToken })).status).toBe(200);
    expect((await refresh(winner.body.refreshToken)).status).toBe(200);
    const events = await api.call('listEvents', { token: api.admin.token, query: { type: ['auth.refresh_token_reused'] } });
    expect(events.body.data).toEqual([]);
  });

  it('keeps refusing an unknown refresh token without touching any session', async () => {
    api = await startApi();
    const member = await api.addCaller('member');
    const unknown = await refresh('cpr_NotARefreshTokenOfAnySession');
    expect([unknown.status, unknown.body.code]).toEqual([401, 'invalid_refresh_token']);
    expect((await api.call('getMe', { token: member.token })).status).toBe(200);
  });
});
