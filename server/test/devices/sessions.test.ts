import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { sessionEnded } from '../../src/auth/sessions.js';
import { DeviceSessions } from '../../src/devices/sessions.js';
import type { Principal } from '../../src/http/handler.js';
import { apiTokenEnded } from '../../src/tokens/repository.js';
import { domainFixture, origin } from '../domains/fixture.js';

const servers: WebSocketServer[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A WebSocket pair over loopback: the server's side (to track) and the client's close, as the client sees it. */
async function socketPair(): Promise<{ server: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  servers.push(wss);
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    client.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve) => client.once('open', () => resolve()));
  return { server: await accepted, closed };
}

const principal = (fields: Partial<Principal>): Principal => ({
  userId: 'usr_1',
  username: 'alice',
  role: 'member',
  scopes: ['read', 'write'],
  method: 'api_token',
  ...fields,
});

describe('DeviceSessions.recheck', () => {
  it('ends the sessions whose credential the check says ended, with 4001 and its reason', async () => {
    const sessions = new DeviceSessions();
    const revoked = await socketPair();
    const live = await socketPair();
    const fromSession = await socketPair();
    const ended = sessions.track('dev_1', principal({ tokenId: 'tok_gone' }), revoked.server);
    sessions.track('dev_1', principal({ tokenId: 'tok_live' }), live.server);
    sessions.track('dev_2', principal({ method: 'session', sessionId: 'ses_1' }), fromSession.server);
    const asked: string[] = [];
    await sessions.recheck(async ({ tokenId, sessionId }) => {
      asked.push(tokenId ?? sessionId ?? '');
      return tokenId === 'tok_gone' ? 'token revoked' : null;
    });
    expect(asked.sort()).toEqual(['ses_1', 'tok_gone', 'tok_live']);
    expect(await revoked.closed).toEqual({ code: 4001, reason: 'token revoked' });
    expect(ended.signal.aborted).toBe(true);
    expect(live.server.readyState).toBe(WebSocket.OPEN);
    expect(fromSession.server.readyState).toBe(WebSocket.OPEN);
  });

  it('asks once per credential, however many sessions it opened, and ends them all', async () => {
    const sessions = new DeviceSessions();
    const shell = await socketPair();
    const logcat = await socketPair();
    sessions.track('dev_1', principal({ tokenId: 'tok_gone' }), shell.server);
    sessions.track('dev_2', principal({ tokenId: 'tok_gone' }), logcat.server);
    const asked: string[] = [];
    await sessions.recheck(async ({ tokenId }) => {
      asked.push(tokenId ?? '');
      return 'token expired';
    });
    expect(asked).toEqual(['tok_gone']);
    expect(await shell.closed).toEqual({ code: 4001, reason: 'token expired' });
    expect(await logcat.closed).toEqual({ code: 4001, reason: 'token expired' });
  });
});

describe('what the recheck reads', () => {
  it('tells why an API token or a login session no longer authenticates', async () => {
    const f = await domainFixture();
    const { principal: alice, pair } = await f.signIn('alice', 'member');
    const now = () => f.clock.now().toISOString();
    const token = await f.tokens.create(alice, { name: 'ci', scopes: ['read'], expiresInDays: 1 }, null);
    const other = await f.tokens.create(alice, { name: 'other', scopes: ['read'] }, null);
    expect(await apiTokenEnded(f.db, token.id, now())).toBeNull();
    expect(await sessionEnded(f.db, alice.sessionId!, now())).toBeNull();

    await f.tokens.revoke(alice, other.id, null);
    expect(await apiTokenEnded(f.db, other.id, now())).toBe('token revoked');
    f.clock.advance(2 * 86_400);
    expect(await apiTokenEnded(f.db, token.id, now())).toBe('token expired');
    expect(await apiTokenEnded(f.db, 'tok_unknown', now())).toBe('token deleted');

    await f.auth.logout(pair.refreshToken, origin);
    expect(await sessionEnded(f.db, alice.sessionId!, now())).toBe('session ended');
    const { principal: bob } = await f.signIn('bob', 'member');
    const bobToken = await f.tokens.create(bob, { name: 'ci', scopes: ['read'] }, null);
    await f.users.update(bob.userId, { disabled: true }, f.causeOf(alice));
    expect(await apiTokenEnded(f.db, bobToken.id, now())).toBe('user disabled');
  });
});
