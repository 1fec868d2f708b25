import { describe, expect, it } from 'vitest';
import { expectSchema } from '../helpers/contract.js';
import { domainFixture, expectRejectedWithoutWrites, origin, PASSWORD, rejection } from './fixture.js';

describe('me', () => {
  it('shows the user and how they authenticated', async () => {
    const f = await domainFixture();
    const { user, principal } = await f.signIn('alice', 'member');
    const viaSession = await f.me.get(principal);
    expectSchema('Me', viaSession);
    expect(viaSession).toEqual({ ...user, authentication: { method: 'session', scopes: ['read', 'write'] } });

    const token = await f.tokens.create(principal, { name: 'ci', scopes: ['read'] }, null);
    const viaToken = await f.me.get(await f.authenticator.authenticate(token.secret));
    expectSchema('Me', viaToken);
    expect(viaToken.authentication).toEqual({ method: 'api_token', tokenId: token.id, scopes: ['read'] });
  });

  it('changes the display name and appends user.updated by the user', async () => {
    const f = await domainFixture();
    const { user, principal } = await f.signIn('alice', 'member');
    const mark = await f.eventCount();
    const updated = await f.me.update(principal, { displayName: 'Alice M.' }, 'req_me');
    expect(updated).toMatchObject({ id: user.id, displayName: 'Alice M.' });
    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'user.updated',
        actorType: 'user',
        actorId: user.id,
        subjectType: 'user',
        subjectId: user.id,
        data: { user: { id: user.id, username: 'alice', role: 'member' }, changes: ['displayName'] },
        requestId: 'req_me',
      },
    ]);
  });

  it('changes the password given the current one and ends every other session', async () => {
    const f = await domainFixture();
    const current = await f.signIn('alice', 'member');
    const other = await f.auth.login('alice', PASSWORD, origin);
    const token = await f.tokens.create(current.principal, { name: 'ci', scopes: ['read'] }, null);

    const mark = await f.eventCount();
    await f.me.update(current.principal, { password: 'a-brand-new-password', currentPassword: PASSWORD }, null);
    expect(await f.eventsSince(mark)).toMatchObject([{ type: 'user.updated', data: { changes: ['password'] } }]);
    await expect(f.authenticator.authenticate(current.pair.accessToken)).resolves.toMatchObject({ username: 'alice' });
    expect(await rejection(() => f.authenticator.authenticate(other.accessToken))).toMatchObject({
      code: 'token_revoked',
    });
    await expect(f.authenticator.authenticate(token.secret)).resolves.toMatchObject({ tokenId: token.id });
    await expect(f.auth.login('alice', 'a-brand-new-password', origin)).resolves.toMatchObject({ tokenType: 'Bearer' });
  });

  it('ends every session when the password is changed with an API token', async () => {
    const f = await domainFixture();
    const { pair, principal } = await f.signIn('alice', 'member');
    const token = await f.tokens.create(principal, { name: 'ci', scopes: ['write'] }, null);
    await f.me.update(
      await f.authenticator.authenticate(token.secret),
      { password: 'a-brand-new-password', currentPassword: PASSWORD },
      null,
    );
    expect(await rejection(() => f.authenticator.authenticate(pair.accessToken))).toMatchObject({
      code: 'token_revoked',
    });
  });

  it('refuses a wrong or missing current password and writes nothing', async () => {
    const f = await domainFixture();
    const { principal } = await f.signIn('alice', 'member');
    const wrong = await expectRejectedWithoutWrites(
      f,
      () =>
        f.me.update(
          principal,
          { displayName: 'New', password: 'a-brand-new-password', currentPassword: 'not it' },
          null,
        ),
      'validation_failed',
    );
    expect(wrong).toMatchObject({ status: 400, errors: [{ field: '/currentPassword', message: 'is incorrect' }] });
    const missing = await expectRejectedWithoutWrites(
      f,
      () => f.me.update(principal, { password: 'a-brand-new-password' }, null),
      'validation_failed',
    );
    expect(missing.errors).toEqual([{ field: '/currentPassword', message: 'is required to change the password' }]);
  });
});
