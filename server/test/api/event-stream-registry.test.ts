import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/database.js';
import type { Principal } from '../../src/http/handler.js';
import { StreamRegistry, type StreamCredential, type TrackedStream } from '../../src/notifications/stream.js';
import { openTestDatabase } from '../helpers/database.js';
import { insertUser } from '../helpers/users.js';

const AT = '2026-12-01T00:00:00.000Z';

let database: Database;
let registry: StreamRegistry;
let alice: Principal;

beforeEach(async () => {
  database = await openTestDatabase();
  registry = new StreamRegistry({ db: database.db });
  alice = await insertUser(database.db, 'alice', 'admin', AT);
});
afterEach(async () => {
  await database.close();
});

const withToken = (principal: Principal, tokenId: string): Principal => ({ ...principal, method: 'api_token', tokenId });
const withSession = (principal: Principal, sessionId: string): Principal => ({ ...principal, method: 'session', sessionId });

/** How the stream ended (the close code and reason), or `open`. */
const state = (stream: TrackedStream) => (stream.signal.aborted ? stream.signal.reason : 'open');

describe('StreamRegistry', () => {
  it('ends the streams of a revoked credential with 4001 and its reason, and only those', () => {
    const token = registry.track(withToken(alice, 'tok_1'));
    const otherToken = registry.track(withToken(alice, 'tok_2'));
    const session = registry.track(withSession(alice, 'ses_1'));
    const kept = registry.track(withSession(alice, 'ses_2'));

    registry.revoked({ type: 'api_token', tokenId: 'tok_1', reason: 'token revoked' });
    expect(state(token)).toEqual({ code: 4001, reason: 'token revoked' });
    expect(state(otherToken)).toBe('open');

    // A new password ends the user's other login sessions, not their API tokens.
    const reason = 'password changed';
    registry.revoked({ type: 'user', userId: alice.userId, reason, sessionsOnly: true, keepSessionId: 'ses_2' });
    expect(state(session)).toEqual({ code: 4001, reason: 'password changed' });
    expect(state(otherToken)).toBe('open');
    expect(state(kept)).toBe('open');

    registry.revoked({ type: 'user', userId: alice.userId, reason: 'user deleted' });
    expect(state(otherToken)).toEqual({ code: 4001, reason: 'user deleted' });
    expect(state(kept)).toEqual({ code: 4001, reason: 'user deleted' });
  });

  it('rechecks each credential once, and ends the streams of an ended credential or of a user whose role changed', async () => {
    const bob = await insertUser(database.db, 'bob', 'member', AT);
    const expiring = [registry.track(withToken(bob, 'tok_old')), registry.track(withToken(bob, 'tok_old'))];
    const bobSession = registry.track(withSession(bob, 'ses_bob'));
    const aliceStream = registry.track(withSession(alice, 'ses_alice'));

    const asked: StreamCredential[] = [];
    await registry.recheck(async (credential) => {
      asked.push(credential);
      return credential.tokenId === 'tok_old' ? 'token expired' : null;
    });
    const credentials = asked.map((credential) => credential.tokenId ?? credential.sessionId);
    expect(credentials.sort()).toEqual(['ses_alice', 'ses_bob', 'tok_old']);
    for (const stream of expiring) expect(state(stream)).toEqual({ code: 4001, reason: 'token expired' });
    expect(state(bobSession)).toBe('open');
    expect(state(aliceStream)).toBe('open');

    await database.db.updateTable('users').set({ role: 'member' }).where('id', '=', alice.userId).execute();
    await registry.recheck(async () => null);
    expect(state(aliceStream)).toEqual({ code: 4001, reason: 'role changed' });
    expect(state(bobSession)).toBe('open');
  });

  it('ends every stream with 1001 at shutdown, and those opened after it at once', () => {
    const open = registry.track(withSession(alice, 'ses_1'));
    registry.closeAll();
    expect(state(open)).toEqual({ code: 1001, reason: 'server shutting down' });
    expect(state(registry.track(withSession(alice, 'ses_2')))).toEqual({ code: 1001, reason: 'server shutting down' });
  });

  it('forgets a stream its handler ended, so a later revocation does not touch it', () => {
    const stream = registry.track(withToken(alice, 'tok_1'));
    stream.end();
    registry.revoked({ type: 'api_token', tokenId: 'tok_1', reason: 'token revoked' });
    expect(stream.signal.aborted).toBe(true);
    expect((stream.signal.reason as Error).name).toBe('AbortError');
  });
});
