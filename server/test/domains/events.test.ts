import { describe, expect, it } from 'vitest';
import { appendEvent } from '../../src/events/log.js';
import type { EventView } from '../../src/events/service.js';
import { systemCause } from '../../src/events/types.js';
import type { Principal } from '../../src/http/handler.js';
import { expectSchema } from '../helpers/contract.js';
import { domainFixture, origin, PASSWORD, rejection, type DomainFixture } from './fixture.js';

/** Alice and Bob (members) and an admin, with a few events of each kind. */
async function populated(f: DomainFixture) {
  const admin = (await f.signIn('root', 'admin')).principal;
  const alice = (await f.signIn('alice', 'member')).principal;
  const bob = (await f.signIn('bob', 'member')).principal;
  f.clock.advance(3600);
  const token = await f.tokens.create(alice, { name: 'ci', scopes: ['read'] }, null);
  await f.tokens.revoke(alice, token.id, null);
  await f.users.update(bob.userId, { displayName: 'Bobby' }, f.causeOf(admin));
  await f.auth.login('alice', 'wrong password', origin).catch(() => undefined);
  await f.auth.login('nobody', PASSWORD, origin).catch(() => undefined);
  return { admin, alice, bob, token };
}

async function allPages(
  f: DomainFixture,
  principal: Principal,
  query: Omit<Parameters<typeof f.events.list>[1], 'limit' | 'cursor'>,
  limit = 2,
) {
  const seen: EventView[] = [];
  let cursor: string | undefined;
  do {
    const page = await f.events.list(principal, { ...query, limit, cursor });
    expectSchema('EventList', page);
    seen.push(...page.data);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return seen;
}

describe('the event log', () => {
  it('shows admins every event, each valid against the contract', async () => {
    const f = await domainFixture();
    await populated(f);
    const events = await allPages(f, (await f.signIn('root', 'admin')).principal, {});
    expect(events.map((e) => e.type)).toEqual([
      'user.created',
      'auth.login_succeeded',
      'user.created',
      'auth.login_succeeded',
      'user.created',
      'auth.login_succeeded',
      'token.created',
      'token.revoked',
      'user.updated',
      'auth.login_failed',
      'auth.login_failed',
      'auth.login_succeeded',
    ]);
    for (const event of events) expectSchema('Event', event);
  });

  it('shows other users only the events they caused or that are about them', async () => {
    const f = await domainFixture();
    const { alice, bob, token } = await populated(f);
    const mine = await allPages(f, alice, {});
    expect(mine.map((e) => [e.type, e.subject?.id])).toEqual([
      ['user.created', alice.userId],
      ['auth.login_succeeded', expect.stringMatching(/^ses_/)],
      ['token.created', token.id],
      ['token.revoked', token.id],
      ['auth.login_failed', alice.userId],
    ]);
    expect((await allPages(f, bob, {})).map((e) => e.type)).toEqual([
      'user.created',
      'auth.login_succeeded',
      'user.updated',
    ]);
  });

  it('filters by type and family, time, subject, and lists newest first on request', async () => {
    const f = await domainFixture();
    const { admin, bob, token } = await populated(f);
    const types = async (query: Parameters<typeof allPages>[2]) => (await allPages(f, admin, query)).map((e) => e.type);

    expect(await types({ types: ['user.updated', 'token.*'] })).toEqual([
      'token.created',
      'token.revoked',
      'user.updated',
    ]);
    expect(await types({ types: ['auth.login_failed'] })).toEqual(['auth.login_failed', 'auth.login_failed']);
    expect(await types({ types: ['user.*'], order: 'desc' })).toEqual([
      'user.updated',
      'user.created',
      'user.created',
      'user.created',
    ]);
    expect(await types({ types: ['use.*'] })).toEqual([]);
    expect(await types({ subjectId: token.id })).toEqual(['token.created', 'token.revoked']);
    expect(await types({ subjectId: bob.userId })).toEqual(['user.created', 'user.updated']);
    expect(await types({ since: '2026-11-20T10:00:00Z' })).toHaveLength(5);
    expect(await types({ until: '2026-11-20T10:00:00Z' })).toHaveLength(6);
    expect(await types({ since: '2026-11-20T11:00:00+01:00', until: '2026-11-20T10:00:00.001Z' })).toHaveLength(5);
  });

  it('pages in both orders with cursors bound to their order', async () => {
    const f = await domainFixture();
    const { admin } = await populated(f);
    const asc = await allPages(f, admin, {}, 5);
    const desc = await allPages(f, admin, { order: 'desc' }, 5);
    expect(desc.map((e) => e.id)).toEqual(asc.map((e) => e.id).reverse());

    const page = await f.events.list(admin, { limit: 2 });
    expect(
      await rejection(() => f.events.list(admin, { limit: 2, order: 'desc', cursor: page.nextCursor! })),
    ).toMatchObject({
      code: 'invalid_cursor',
      status: 400,
    });
    for (const cursor of [
      'x',
      '!!!',
      Buffer.from('{"seq":"1","order":"asc"}').toString('base64url'),
      Buffer.from('{"seq":-1,"order":"asc"}').toString('base64url'),
      Buffer.from('{"seq":1,"order":"up"}').toString('base64url'),
      Buffer.from('null').toString('base64url'),
    ]) {
      expect(await rejection(() => f.events.list(admin, { limit: 2, cursor }))).toMatchObject({
        code: 'invalid_cursor',
      });
    }
  });

  it('gets one visible event, and hides the others as not_found', async () => {
    const f = await domainFixture();
    const { admin, alice, bob } = await populated(f);
    const [bobUpdated] = (await f.events.list(admin, { types: ['user.updated'], limit: 1 })).data;
    expect(await f.events.get(bob, bobUpdated!.id)).toEqual(bobUpdated);
    expect(await f.events.get(admin, bobUpdated!.id)).toEqual(bobUpdated);
    expect(await rejection(() => f.events.get(alice, bobUpdated!.id))).toMatchObject({
      code: 'not_found',
      status: 404,
    });
    expect(await rejection(() => f.events.get(admin, 'evt_01JDX3N2R1F4H7K0M3P6S9V2YB'))).toMatchObject({
      code: 'not_found',
    });
  });

  it('commits an appended event only with its transaction', async () => {
    const f = await domainFixture();
    const event = {
      type: 'auth.logged_out',
      ...systemCause,
      subject: { type: 'session', id: 'ses_01JDX3N2R1F4H7K0M3P6S9V2YB' },
      data: { sessionId: 'ses_01JDX3N2R1F4H7K0M3P6S9V2YB' },
      occurredAt: f.clock.now(),
    } as const;
    await expect(
      f.db.transaction().execute(async (trx) => {
        await appendEvent(trx, event);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await f.eventLog()).toEqual([]);
    const id = await appendEvent(f.db, event);
    expect(id).toMatch(/^evt_[0-9A-Z]{26}$/);
    expect(await f.eventLog()).toHaveLength(1);
  });
});
