import { describe, expect, it } from 'vitest';
import { CloudPhoneError, NotFoundError, Page, PagePromise, type User } from '../src/index.js';
import { JSON_HEADERS, mockClient, problem, PROBLEM_HEADERS, user } from './helpers.js';

const users: User[] = ['alice', 'bob', 'carol', 'dave', 'erin'].map((username, i) => ({
  ...user,
  id: `usr_01JDX3N2Q8B7W6M4K9T5R1C0Z${i}`,
  username,
}));

/** Three pages of users with role=member, two per page, chained by cursors c1 and c2. */
function threePages() {
  const mock = mockClient();
  const { pool } = mock;
  pool
    .intercept({ path: '/v1/users', query: { role: 'member', limit: '2' } })
    .reply(200, { data: users.slice(0, 2), nextCursor: 'c1' }, { headers: JSON_HEADERS });
  pool
    .intercept({ path: '/v1/users', query: { role: 'member', limit: '2', cursor: 'c1' } })
    .reply(200, { data: users.slice(2, 4), nextCursor: 'c2' }, { headers: JSON_HEADERS });
  pool
    .intercept({ path: '/v1/users', query: { role: 'member', limit: '2', cursor: 'c2' } })
    .reply(200, { data: users.slice(4), nextCursor: null }, { headers: JSON_HEADERS });
  return mock;
}

describe('pagination', () => {
  it('resolves to the first page when awaited', async () => {
    const { client, calls } = threePages();

    const page = await client.users.list({ role: 'member', limit: 2 });
    expect(page).toBeInstanceOf(Page);
    expect(page.data).toEqual(users.slice(0, 2));
    expect(page.nextCursor).toBe('c1');
    expect(page.hasNextPage()).toBe(true);
    expect(calls()).toHaveLength(1);
  });

  it('iterates every item of every page, passing the cursor along with the original query', async () => {
    const { client, calls, agent } = threePages();

    const seen: string[] = [];
    for await (const item of client.users.list({ role: 'member', limit: 2 })) seen.push(item.username);
    expect(seen).toEqual(['alice', 'bob', 'carol', 'dave', 'erin']);
    expect(calls().map((call) => call.searchParams)).toEqual([
      { role: 'member', limit: '2' },
      { role: 'member', limit: '2', cursor: 'c1' },
      { role: 'member', limit: '2', cursor: 'c2' },
    ]);
    agent.assertNoPendingInterceptors();
  });

  it('walks pages with getNextPage and iterPages', async () => {
    const { client } = threePages();

    const first = await client.users.list({ role: 'member', limit: 2 });
    const second = await first.getNextPage();
    expect(second.data.map((u) => u.username)).toEqual(['carol', 'dave']);
    const sizes: number[] = [];
    for await (const page of second.iterPages()) sizes.push(page.data.length);
    expect(sizes).toEqual([2, 1]);
  });

  it('throws from getNextPage on the last page', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: '/v1/users' }).reply(200, { data: [user], nextCursor: null }, { headers: JSON_HEADERS });

    const page = await client.users.list();
    expect(page.hasNextPage()).toBe(false);
    await expect(page.getNextPage()).rejects.toBeInstanceOf(CloudPhoneError);
  });

  it('requests the first page once, when first awaited or iterated', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/users' }).reply(200, { data: [user], nextCursor: null }, { headers: JSON_HEADERS });

    const pending = client.users.list();
    expect(pending).toBeInstanceOf(PagePromise);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls()).toHaveLength(0);

    const page = await pending;
    const again = await pending;
    const items: User[] = [];
    for await (const item of pending) items.push(item);
    expect(again).toBe(page);
    expect(items).toEqual([user]);
    expect(calls()).toHaveLength(1);
  });

  it('rejects, catches and finalises like a promise', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: '/v1/events' }).reply(404, problem(404, 'not_found'), { headers: PROBLEM_HEADERS });

    let finalised = false;
    const caught = await client.events
      .list()
      .finally(() => {
        finalised = true;
      })
      .catch((error: unknown) => error);
    expect(caught).toBeInstanceOf(NotFoundError);
    expect(finalised).toBe(true);
  });

  it('paginates any list operation by operationId, keeping the options for later pages', async () => {
    const { pool, client, header } = mockClient();
    pool.intercept({ path: '/v1/tokens', query: { allUsers: 'true' } }).reply(200, { data: [], nextCursor: 'n' }, { headers: JSON_HEADERS });
    pool
      .intercept({ path: '/v1/tokens', query: { allUsers: 'true', cursor: 'n' } })
      .reply(200, { data: [], nextCursor: null }, { headers: JSON_HEADERS });

    const items: unknown[] = [];
    for await (const token of client.paginate('listApiTokens', { query: { allUsers: true } }, { headers: { 'X-Request-Id': 'r1' } })) {
      items.push(token);
    }
    expect(items).toEqual([]);
    expect(header('x-request-id')).toEqual(['r1', 'r1']);
  });
});
