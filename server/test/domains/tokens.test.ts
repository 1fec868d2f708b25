import { describe, expect, it } from 'vitest';
import { expectSchema } from '../helpers/contract.js';
import { domainFixture, expectRejectedWithoutWrites, rejection } from './fixture.js';

describe('creating API tokens', () => {
  it('returns the secret once, stores its digest and appends token.created', async () => {
    const f = await domainFixture();
    const { principal } = await f.signIn('alice', 'member');
    const mark = await f.eventCount();
    const token = await f.tokens.create(
      principal,
      { name: 'ci', scopes: ['write', 'read'], expiresInDays: 90 },
      'req_1',
    );
    expectSchema('CreatedApiToken', token);
    expect(token).toMatchObject({
      userId: principal.userId,
      name: 'ci',
      scopes: ['read', 'write'],
      createdAt: '2026-11-20T09:00:00.000Z',
      expiresAt: '2027-02-18T09:00:00.000Z',
      lastUsedAt: null,
      revokedAt: null,
    });
    expect(token.secret).toMatch(/^cpt_[0-9A-Za-z]{43}$/);
    expect(token.prefix).toBe(token.secret.slice(0, 8));

    const row = await f.db.selectFrom('api_tokens').selectAll().where('id', '=', token.id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(token.secret);
    expect(await f.tokens.get(principal, token.id)).not.toHaveProperty('secret');

    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'token.created',
        actorType: 'user',
        actorId: principal.userId,
        subjectType: 'api_token',
        subjectId: token.id,
        data: {
          token: {
            id: token.id,
            userId: principal.userId,
            name: 'ci',
            scopes: ['read', 'write'],
            expiresAt: token.expiresAt,
          },
        },
        requestId: 'req_1',
      },
    ]);
  });

  it('keeps scopes within the role', async () => {
    const f = await domainFixture();
    const viewer = (await f.signIn('vera', 'viewer')).principal;
    const member = (await f.signIn('mia', 'member')).principal;
    const admin = (await f.signIn('root', 'admin')).principal;
    await expectRejectedWithoutWrites(
      f,
      () => f.tokens.create(viewer, { name: 'x', scopes: ['write'] }, null),
      'scope_exceeds_role',
    );
    await expectRejectedWithoutWrites(
      f,
      () => f.tokens.create(member, { name: 'x', scopes: ['read', 'admin'] }, null),
      'scope_exceeds_role',
    );
    await expect(f.tokens.create(viewer, { name: 'x', scopes: ['read'] }, null)).resolves.toMatchObject({
      scopes: ['read'],
    });
    await expect(f.tokens.create(admin, { name: 'x', scopes: ['admin'] }, null)).resolves.toMatchObject({
      scopes: ['admin'],
    });
  });

  it('keeps scopes within the credential used, so a token cannot mint a stronger one', async () => {
    const f = await domainFixture();
    const admin = (await f.signIn('root', 'admin')).principal;
    const writer = await f.tokens.create(admin, { name: 'writer', scopes: ['write'] }, null);
    const viaToken = await f.authenticator.authenticate(writer.secret);
    const error = await expectRejectedWithoutWrites(
      f,
      () => f.tokens.create(viaToken, { name: 'x', scopes: ['admin'] }, null),
      'scope_exceeds_role',
    );
    expect(error.status).toBe(403);
    await expect(f.tokens.create(viaToken, { name: 'x', scopes: ['read'] }, null)).resolves.toMatchObject({
      scopes: ['read'],
    });
  });

  it('takes an expiry in days or as a future time, not both', async () => {
    const f = await domainFixture();
    const { principal } = await f.signIn('alice', 'member');
    const at = await f.tokens.create(
      principal,
      { name: 'x', scopes: ['read'], expiresAt: '2027-01-01T01:00:00+01:00' },
      null,
    );
    expect(at.expiresAt).toBe('2027-01-01T00:00:00.000Z');
    expect((await f.tokens.create(principal, { name: 'x', scopes: ['read'] }, null)).expiresAt).toBeNull();

    const both = await expectRejectedWithoutWrites(
      f,
      () =>
        f.tokens.create(
          principal,
          { name: 'x', scopes: ['read'], expiresInDays: 1, expiresAt: '2027-01-01T00:00:00Z' },
          null,
        ),
      'validation_failed',
    );
    expect(both.errors).toEqual([{ field: '/expiresAt', message: 'must not be given with expiresInDays' }]);
    const past = await expectRejectedWithoutWrites(
      f,
      () => f.tokens.create(principal, { name: 'x', scopes: ['read'], expiresAt: f.clock.now().toISOString() }, null),
      'validation_failed',
    );
    expect(past.errors).toEqual([{ field: '/expiresAt', message: 'must be in the future' }]);
  });
});

describe('listing API tokens', () => {
  it('lists the caller’s live tokens, or with includeRevoked all of them, oldest first', async () => {
    const f = await domainFixture();
    const { principal } = await f.signIn('alice', 'member');
    const other = (await f.signIn('bob', 'member')).principal;
    const a = await f.tokens.create(principal, { name: 'a', scopes: ['read'] }, null);
    const b = await f.tokens.create(principal, { name: 'b', scopes: ['read'] }, null);
    await f.tokens.create(other, { name: 'theirs', scopes: ['read'] }, null);
    await f.tokens.revoke(principal, a.id, null);

    const live = await f.tokens.list(principal, { limit: 50 });
    expectSchema('ApiTokenList', live);
    expect(live.data.map((t) => t.id)).toEqual([b.id]);
    const all = await f.tokens.list(principal, { includeRevoked: true, limit: 50 });
    expect(all.data.map((t) => t.name)).toEqual(['a', 'b']);
    expect(all.data[0]!.revokedAt).toBe(f.clock.now().toISOString());
    expect(await f.tokens.list(principal, { userId: principal.userId, limit: 50 })).toEqual(live);
  });

  it('lists other users’ tokens for admins only', async () => {
    const f = await domainFixture();
    const alice = (await f.signIn('alice', 'member')).principal;
    const bob = (await f.signIn('bob', 'member')).principal;
    const admin = (await f.signIn('root', 'admin')).principal;
    await f.tokens.create(alice, { name: 'alice-1', scopes: ['read'] }, null);
    await f.tokens.create(bob, { name: 'bob-1', scopes: ['read'] }, null);

    expect(await rejection(() => f.tokens.list(alice, { userId: bob.userId, limit: 50 }))).toMatchObject({
      code: 'insufficient_role',
      status: 403,
    });
    expect(await rejection(() => f.tokens.list(alice, { allUsers: true, limit: 50 }))).toMatchObject({
      code: 'insufficient_role',
    });
    expect((await f.tokens.list(admin, { userId: bob.userId, limit: 50 })).data.map((t) => t.name)).toEqual(['bob-1']);
    expect((await f.tokens.list(admin, { allUsers: true, limit: 50 })).data.map((t) => t.name)).toEqual([
      'alice-1',
      'bob-1',
    ]);
    expect((await f.tokens.list(admin, { limit: 50 })).data).toEqual([]);
  });

  it('pages with cursors', async () => {
    const f = await domainFixture();
    const { principal } = await f.signIn('alice', 'member');
    for (const name of ['t1', 't2', 't3']) await f.tokens.create(principal, { name, scopes: ['read'] }, null);
    const first = await f.tokens.list(principal, { limit: 2 });
    const second = await f.tokens.list(principal, { limit: 2, cursor: first.nextCursor! });
    expect([...first.data, ...second.data].map((t) => t.name)).toEqual(['t1', 't2', 't3']);
    expect(second.nextCursor).toBeNull();
    const forged = Buffer.from(JSON.stringify({ id: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' })).toString('base64url');
    expect(await rejection(() => f.tokens.list(principal, { limit: 2, cursor: forged }))).toMatchObject({
      code: 'invalid_cursor',
    });
  });
});

describe('getting and revoking API tokens', () => {
  it('hides other users’ tokens from non-admins as not_found', async () => {
    const f = await domainFixture();
    const alice = (await f.signIn('alice', 'member')).principal;
    const bob = (await f.signIn('bob', 'member')).principal;
    const admin = (await f.signIn('root', 'admin')).principal;
    const token = await f.tokens.create(alice, { name: 'a', scopes: ['read'] }, null);

    expect(await rejection(() => f.tokens.get(bob, token.id))).toMatchObject({ code: 'not_found', status: 404 });
    await expectRejectedWithoutWrites(f, () => f.tokens.revoke(bob, token.id, null), 'not_found');
    await expectRejectedWithoutWrites(
      f,
      () => f.tokens.revoke(alice, 'tok_01JDX4A8P3C5V7B9N2M4K6J8H0', null),
      'not_found',
    );
    await expect(f.tokens.get(admin, token.id)).resolves.toMatchObject({ id: token.id, userId: alice.userId });
  });

  it('revokes once, appends token.revoked once, and accepts revoking again', async () => {
    const f = await domainFixture();
    const alice = (await f.signIn('alice', 'member')).principal;
    const admin = (await f.signIn('root', 'admin')).principal;
    const token = await f.tokens.create(alice, { name: 'a', scopes: ['read'] }, null);
    f.clock.advance(5);
    const mark = await f.eventCount();
    await f.tokens.revoke(admin, token.id, 'req_2');
    expect(await f.tokens.get(alice, token.id)).toMatchObject({ revokedAt: f.clock.now().toISOString() });
    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'token.revoked',
        actorType: 'user',
        actorId: admin.userId,
        subjectType: 'api_token',
        subjectId: token.id,
        data: { token: { id: token.id, userId: alice.userId, name: 'a', scopes: ['read'], expiresAt: null } },
        requestId: 'req_2',
      },
    ]);

    const before = await f.snapshot();
    f.clock.advance(5);
    await f.tokens.revoke(alice, token.id, null);
    expect(await f.snapshot()).toEqual(before);
  });
});
