import { describe, expect, it } from 'vitest';
import { systemCause } from '../../src/events/types.js';
import { insertUser } from '../../src/users/repository.js';
import { expectSchema } from '../helpers/contract.js';
import { domainFixture, expectRejectedWithoutWrites, PASSWORD, origin, rejection } from './fixture.js';

describe('creating users', () => {
  it('stores the user with a password hash and appends user.created', async () => {
    const f = await domainFixture();
    const { principal } = await f.signIn('root', 'admin');
    const mark = await f.eventCount();
    const user = await f.users.create(
      { username: 'alice', password: PASSWORD, role: 'member', displayName: 'Alice Martin' },
      f.causeOf(principal),
    );
    expectSchema('User', user);
    expect(user).toMatchObject({ username: 'alice', displayName: 'Alice Martin', role: 'member', disabled: false });
    expect(user.createdAt).toBe(f.clock.now().toISOString());

    const row = await f.db.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(row.password_hash).not.toContain(PASSWORD);

    expect(await f.eventsSince(mark)).toEqual([
      {
        type: 'user.created',
        actorType: 'user',
        actorId: principal.userId,
        subjectType: 'user',
        subjectId: user.id,
        data: { user: { id: user.id, username: 'alice', role: 'member' } },
        requestId: 'req_test',
      },
    ]);
  });

  it('defaults the display name to the username', async () => {
    const f = await domainFixture();
    expect((await f.addUser('bob', 'viewer')).displayName).toBe('bob');
  });

  it('refuses a taken username and writes nothing', async () => {
    const f = await domainFixture();
    await f.addUser('alice', 'member');
    await expectRejectedWithoutWrites(
      f,
      () => f.users.create({ username: 'alice', password: PASSWORD, role: 'viewer' }, systemCause),
      'username_taken',
    );
  });

  it('maps the unique index on usernames to a refused insert', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    const row = await f.db.selectFrom('users').selectAll().where('id', '=', alice.id).executeTakeFirstOrThrow();
    expect(await insertUser(f.db, { ...row, id: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA' })).toBe(false);
    await expect(insertUser(f.db, { ...row, username: 'other', role: 'owner' as 'admin' })).rejects.toThrow(
      /check constraint/i,
    );
  });

  it('answers username_taken when two creations race for one name', async () => {
    const f = await domainFixture();
    const results = await Promise.allSettled([f.addUser('carol', 'member'), f.addUser('carol', 'viewer')]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(failed.reason).toMatchObject({ code: 'username_taken', status: 409 });
    expect((await f.eventLog()).filter((e) => e.type === 'user.created')).toHaveLength(1);
  });
});

describe('listing users', () => {
  it('filters by role, disabled flag and text, in creation order', async () => {
    const f = await domainFixture();
    const alice = await f.users.create(
      { username: 'alice', password: PASSWORD, role: 'member', displayName: 'Alice Martin' },
      systemCause,
    );
    const bob = await f.users.create(
      { username: 'bob', password: PASSWORD, role: 'viewer', displayName: 'Bob MARTINEZ' },
      systemCause,
    );
    const carol = await f.addUser('carol', 'member');
    await f.users.update(carol.id, { disabled: true }, systemCause);

    const names = async (query: Parameters<typeof f.users.list>[0]) =>
      (await f.users.list(query)).data.map((u) => u.username);
    expect(await names({ limit: 50 })).toEqual(['alice', 'bob', 'carol']);
    expect(await names({ role: 'member', limit: 50 })).toEqual(['alice', 'carol']);
    expect(await names({ disabled: true, limit: 50 })).toEqual(['carol']);
    expect(await names({ disabled: false, limit: 50 })).toEqual(['alice', 'bob']);
    expect(await names({ q: 'martin', limit: 50 })).toEqual(['alice', 'bob']);
    expect(await names({ q: 'BO', limit: 50 })).toEqual(['bob']);
    expect(await names({ q: 'ar', role: 'member', limit: 50 })).toEqual(['alice', 'carol']);
    expect(alice.id < bob.id && bob.id < carol.id).toBe(true);
  });

  it('matches LIKE wildcards in the text literally', async () => {
    const f = await domainFixture();
    await f.users.create(
      { username: 'dave', password: PASSWORD, role: 'member', displayName: '100% dave' },
      systemCause,
    );
    await f.users.create({ username: 'erin_x', password: PASSWORD, role: 'member' }, systemCause);
    await f.addUser('erinx', 'member');
    expect((await f.users.list({ q: '%', limit: 50 })).data.map((u) => u.username)).toEqual(['dave']);
    expect((await f.users.list({ q: 'n_', limit: 50 })).data.map((u) => u.username)).toEqual(['erin_x']);
  });

  it('pages with opaque cursors and rejects tampered ones', async () => {
    const f = await domainFixture();
    for (const name of ['u1', 'u2', 'u3', 'u4', 'u5']) await f.addUser(name, 'viewer');
    const first = await f.users.list({ limit: 2 });
    expect(first.data.map((u) => u.username)).toEqual(['u1', 'u2']);
    expectSchema('UserList', first);
    const second = await f.users.list({ limit: 2, cursor: first.nextCursor! });
    expect(second.data.map((u) => u.username)).toEqual(['u3', 'u4']);
    const third = await f.users.list({ limit: 2, cursor: second.nextCursor! });
    expect(third).toMatchObject({ nextCursor: null });
    expect(third.data.map((u) => u.username)).toEqual(['u5']);

    const forged = Buffer.from(JSON.stringify({ id: "usr_' or 1=1 --" })).toString('base64url');
    for (const cursor of ['not a cursor', 'eyJ', forged, Buffer.from('[1]').toString('base64url')]) {
      expect(await rejection(() => f.users.list({ limit: 2, cursor }))).toMatchObject({
        code: 'invalid_cursor',
        status: 400,
      });
    }
  });
});

describe('getting users', () => {
  it('finds a user by id or answers not_found', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    expect(await f.users.get(alice.id)).toEqual(alice);
    expect(await rejection(() => f.users.get('usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA'))).toMatchObject({ code: 'not_found' });
  });
});

describe('updating users', () => {
  it('changes fields, lists the names of those that changed and never their values', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    f.clock.advance(60);
    const mark = await f.eventCount();
    const updated = await f.users.update(
      alice.id,
      { displayName: 'Alice M.', role: 'viewer', disabled: false, password: 'a-brand-new-password' },
      systemCause,
    );
    expect(updated).toMatchObject({ displayName: 'Alice M.', role: 'viewer', disabled: false });
    expect(updated.updatedAt).toBe(f.clock.now().toISOString());
    expect(updated.createdAt).toBe(alice.createdAt);

    const appended = await f.eventsSince(mark);
    expect(appended).toMatchObject([
      {
        type: 'user.updated',
        actorType: 'system',
        subjectId: alice.id,
        data: {
          user: { id: alice.id, username: 'alice', role: 'viewer' },
          changes: ['displayName', 'role', 'password'],
        },
      },
    ]);
    expect(JSON.stringify(appended)).not.toContain('a-brand-new-password');
    expect(await f.users.checkPassword(alice.id, 'a-brand-new-password')).toBe(true);
    expect(await f.users.checkPassword(alice.id, PASSWORD)).toBe(false);
  });

  it('writes nothing for a patch that changes nothing', async () => {
    const f = await domainFixture();
    const alice = await f.addUser('alice', 'member');
    const before = await f.snapshot();
    f.clock.advance(60);
    expect(
      await f.users.update(alice.id, { displayName: 'alice', role: 'member', disabled: false }, systemCause),
    ).toEqual(alice);
    expect(await f.snapshot()).toEqual(before);
  });

  it('answers not_found for an unknown user', async () => {
    const f = await domainFixture();
    await expectRejectedWithoutWrites(
      f,
      () => f.users.update('usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA', { role: 'admin' }, systemCause),
      'not_found',
    );
  });

  it('keeps the last enabled admin from being demoted or disabled', async () => {
    const f = await domainFixture();
    const root = await f.addUser('root', 'admin');
    await expectRejectedWithoutWrites(f, () => f.users.update(root.id, { role: 'member' }, systemCause), 'last_admin');
    await expectRejectedWithoutWrites(f, () => f.users.update(root.id, { disabled: true }, systemCause), 'last_admin');
    await expectRejectedWithoutWrites(
      f,
      () => f.users.update(root.id, { displayName: 'Root', disabled: true }, systemCause),
      'last_admin',
    );

    const other = await f.addUser('other', 'admin');
    await f.users.update(other.id, { disabled: true }, systemCause);
    await expectRejectedWithoutWrites(f, () => f.users.update(root.id, { role: 'viewer' }, systemCause), 'last_admin');

    await f.users.update(other.id, { disabled: false }, systemCause);
    expect(await f.users.update(root.id, { role: 'viewer' }, systemCause)).toMatchObject({ role: 'viewer' });
    await expectRejectedWithoutWrites(f, () => f.users.update(other.id, { disabled: true }, systemCause), 'last_admin');
  });

  it('ends the sessions of a user who is disabled', async () => {
    const f = await domainFixture();
    const { user, pair } = await f.signIn('alice', 'member');
    await f.users.update(user.id, { displayName: 'Still Alice' }, systemCause);
    await expect(f.authenticator.authenticate(pair.accessToken)).resolves.toMatchObject({ userId: user.id });

    await f.users.update(user.id, { disabled: true }, systemCause);
    const sessions = await f.db.selectFrom('sessions').select('revoked_at').where('user_id', '=', user.id).execute();
    expect(sessions).toEqual([{ revoked_at: f.clock.now().toISOString() }]);
    expect(await rejection(() => f.authenticator.authenticate(pair.accessToken))).toMatchObject({
      code: 'user_disabled',
    });
    expect(await rejection(() => f.auth.login('alice', PASSWORD, origin))).toMatchObject({
      code: 'invalid_credentials',
    });
  });

  it('ends every session on a password reset', async () => {
    const f = await domainFixture();
    const { user, pair } = await f.signIn('alice', 'member');
    await f.users.update(user.id, { password: 'reset-by-an-admin' }, systemCause);
    expect(await rejection(() => f.authenticator.authenticate(pair.accessToken))).toMatchObject({
      code: 'token_revoked',
    });
    await expect(f.auth.login('alice', 'reset-by-an-admin', origin)).resolves.toMatchObject({ tokenType: 'Bearer' });
  });
});

describe('deleting users', () => {
  it('deletes the user with their sessions and tokens and keeps their events', async () => {
    const f = await domainFixture();
    const { principal: admin } = await f.signIn('root', 'admin');
    const { user, principal } = await f.signIn('alice', 'member');
    await f.tokens.create(principal, { name: 'ci', scopes: ['read'] }, null);
    const eventsBefore = await f.eventLog();

    await f.users.delete(user.id, f.causeOf(admin));
    expect(await f.db.selectFrom('users').select('id').where('id', '=', user.id).execute()).toEqual([]);
    expect(await f.db.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()).toEqual([]);
    expect(await f.db.selectFrom('api_tokens').select('id').where('user_id', '=', user.id).execute()).toEqual([]);

    const events = await f.eventLog();
    expect(events.slice(0, -1)).toEqual(eventsBefore);
    expect(events.at(-1)).toMatchObject({
      type: 'user.deleted',
      actorId: admin.userId,
      subjectId: user.id,
      data: { user: { id: user.id, username: 'alice', role: 'member' } },
    });
  });

  it('keeps the last enabled admin and answers not_found for unknown users', async () => {
    const f = await domainFixture();
    const root = await f.addUser('root', 'admin');
    await expectRejectedWithoutWrites(f, () => f.users.delete(root.id, systemCause), 'last_admin');
    await expectRejectedWithoutWrites(
      f,
      () => f.users.delete('usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA', systemCause),
      'not_found',
    );
    const disabledAdmin = await f.addUser('spare', 'admin');
    await f.users.update(disabledAdmin.id, { disabled: true }, systemCause);
    await expectRejectedWithoutWrites(f, () => f.users.delete(root.id, systemCause), 'last_admin');
    await f.users.delete(disabledAdmin.id, systemCause);
  });
});

describe('bootstrap', () => {
  it('creates the first admin once, with the configured password', async () => {
    const f = await domainFixture();
    expect(await f.users.bootstrap('configured-password')).toEqual({
      username: 'admin',
      password: 'configured-password',
    });
    expect(await f.users.bootstrap('configured-password')).toBeNull();
    const [admin] = (await f.users.list({ limit: 50 })).data;
    expect(admin).toMatchObject({ username: 'admin', role: 'admin', displayName: 'Administrator', disabled: false });
    expect(await f.eventLog()).toEqual([
      expect.objectContaining({ type: 'user.created', actorType: 'system', actorId: null, subjectId: admin!.id }),
    ]);
    await expect(f.auth.login('admin', 'configured-password', origin)).resolves.toMatchObject({
      user: { id: admin!.id },
    });
  });

  it('generates a 20-character password when none is configured', async () => {
    const f = await domainFixture();
    const created = await f.users.bootstrap();
    expect(created?.password).toMatch(/^[0-9A-Za-z]{20}$/);
    await expect(f.auth.login('admin', created!.password, origin)).resolves.toMatchObject({ tokenType: 'Bearer' });
  });

  it('does nothing when users exist', async () => {
    const f = await domainFixture();
    await f.addUser('someone', 'viewer');
    const before = await f.snapshot();
    expect(await f.users.bootstrap()).toBeNull();
    expect(await f.snapshot()).toEqual(before);
  });
});
