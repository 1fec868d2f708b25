import { describe, expect, it } from 'vitest';
import { effectiveScopes, sessionScopes } from '../../src/auth/authenticator.js';
import { systemCause } from '../../src/events/types.js';
import { domainFixture, rejection } from './fixture.js';

describe('access tokens', () => {
  it('resolve to the session user with the scopes of every operation the role may call', async () => {
    const f = await domainFixture();
    for (const [role, scopes] of [
      ['viewer', ['read', 'write']],
      ['member', ['read', 'write']],
      ['admin', ['read', 'write', 'admin']],
    ] as const) {
      const { user, principal } = await f.signIn(`a-${role}`, role);
      expect(principal).toEqual({
        userId: user.id,
        username: user.username,
        role,
        scopes,
        method: 'session',
        sessionId: expect.stringMatching(/^ses_[0-9A-Z]{26}$/),
      });
    }
  });

  it('expire after the access token lifetime', async () => {
    const f = await domainFixture();
    const { pair } = await f.signIn('alice', 'member');
    f.clock.advance(899);
    await expect(f.authenticator.authenticate(pair.accessToken)).resolves.toMatchObject({ username: 'alice' });
    f.clock.advance(1);
    expect(await rejection(() => f.authenticator.authenticate(pair.accessToken))).toMatchObject({
      code: 'token_expired',
      status: 401,
    });
  });

  it('follow the role of the user as it is now', async () => {
    const f = await domainFixture();
    await f.addUser('root', 'admin');
    const { user, pair } = await f.signIn('alice', 'admin');
    await f.users.update(user.id, { role: 'viewer' }, systemCause);
    await expect(f.authenticator.authenticate(pair.accessToken)).resolves.toMatchObject({
      role: 'viewer',
      scopes: ['read', 'write'],
    });
  });
});

describe('API tokens', () => {
  it('resolve to the owner with the token scopes and record their use at most once a minute', async () => {
    const f = await domainFixture();
    const { user, principal } = await f.signIn('alice', 'member');
    const token = await f.tokens.create(principal, { name: 'ci', scopes: ['read'] }, null);
    const lastUsed = async () =>
      (await f.db.selectFrom('api_tokens').select('last_used_at').where('id', '=', token.id).executeTakeFirstOrThrow())
        .last_used_at;

    expect(await f.authenticator.authenticate(token.secret)).toEqual({
      userId: user.id,
      username: 'alice',
      role: 'member',
      scopes: ['read'],
      method: 'api_token',
      tokenId: token.id,
    });
    const firstUse = f.clock.now().toISOString();
    expect(await lastUsed()).toBe(firstUse);
    f.clock.advance(59);
    await f.authenticator.authenticate(token.secret);
    expect(await lastUsed()).toBe(firstUse);
    f.clock.advance(2);
    await f.authenticator.authenticate(token.secret);
    expect(await lastUsed()).toBe(f.clock.now().toISOString());
  });

  it('lose the scopes a demoted owner no longer has', async () => {
    const f = await domainFixture();
    await f.addUser('root', 'admin');
    const { user, principal } = await f.signIn('alice', 'admin');
    const token = await f.tokens.create(principal, { name: 'ops', scopes: ['admin'] }, null);
    await expect(f.authenticator.authenticate(token.secret)).resolves.toMatchObject({
      scopes: ['read', 'write', 'admin'],
    });
    await f.users.update(user.id, { role: 'member' }, systemCause);
    await expect(f.authenticator.authenticate(token.secret)).resolves.toMatchObject({
      role: 'member',
      scopes: ['read', 'write'],
    });
  });

  it('fail when revoked, expired or their owner is disabled', async () => {
    const f = await domainFixture();
    await f.addUser('root', 'admin');
    const { user, principal } = await f.signIn('alice', 'member');
    const revoked = await f.tokens.create(principal, { name: 'a', scopes: ['read'] }, null);
    await f.tokens.revoke(principal, revoked.id, null);
    expect(await rejection(() => f.authenticator.authenticate(revoked.secret))).toMatchObject({
      code: 'token_revoked',
    });

    const shortLived = await f.tokens.create(principal, { name: 'b', scopes: ['read'], expiresInDays: 1 }, null);
    const lasting = await f.tokens.create(principal, { name: 'c', scopes: ['read'] }, null);
    f.clock.advance(86_400);
    expect(await rejection(() => f.authenticator.authenticate(shortLived.secret))).toMatchObject({
      code: 'token_expired',
    });
    await expect(f.authenticator.authenticate(lasting.secret)).resolves.toMatchObject({ tokenId: lasting.id });

    await f.users.update(user.id, { disabled: true }, systemCause);
    expect(await rejection(() => f.authenticator.authenticate(lasting.secret))).toMatchObject({
      code: 'user_disabled',
    });
  });
});

describe('other tokens', () => {
  it('are invalid_token', async () => {
    const f = await domainFixture();
    const { pair } = await f.signIn('alice', 'member');
    for (const token of [
      '',
      'garbage',
      pair.refreshToken,
      'cpa_unknown',
      'cpt_unknown',
      pair.accessToken.toUpperCase(),
    ]) {
      expect(await rejection(() => f.authenticator.authenticate(token))).toMatchObject({
        code: 'invalid_token',
        status: 401,
      });
    }
  });
});

describe('session scopes', () => {
  it('include write for viewers, whose own account and tokens the contract lets them change', () => {
    expect(sessionScopes('viewer')).toEqual(['read', 'write']);
    expect(sessionScopes('member')).toEqual(['read', 'write']);
    expect(sessionScopes('admin')).toEqual(['read', 'write', 'admin']);
  });
});

describe('effective scopes', () => {
  it('are the role scopes that the token scopes cover', () => {
    expect(effectiveScopes(['write'], 'admin')).toEqual(['read', 'write']);
    expect(effectiveScopes(['admin'], 'viewer')).toEqual(['read']);
    expect(effectiveScopes(['read', 'admin'], 'member')).toEqual(['read', 'write']);
    expect(effectiveScopes(['read'], 'admin')).toEqual(['read']);
  });
});
