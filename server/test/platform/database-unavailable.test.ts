import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/db/dialect.js';
import { bearer, fakeHandlers, testApp, type TestApp } from './fixtures.js';

function withCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The error SQLite raises for a write while another connection holds the write lock past the busy timeout. */
function realSqliteBusy(): Error {
  const dir = mkdtempSync(join(tmpdir(), 'cloudphone-busy-'));
  const holder = new BetterSqlite3(join(dir, 'db'));
  const writer = new BetterSqlite3(join(dir, 'db'), { timeout: 0 });
  try {
    holder.exec('create table t (x); begin exclusive; insert into t values (1)');
    writer.exec('insert into t values (2)');
    throw new Error('the write did not wait for the lock');
  } catch (error) {
    return error as Error;
  } finally {
    writer.close();
    holder.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('isDatabaseUnavailable', () => {
  it.each([
    ['a refused connection', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED')],
    ['a reset connection', withCode('read ECONNRESET', 'ECONNRESET')],
    ['admin_shutdown', withCode('terminating connection due to administrator command', '57P01')],
    ['cannot_connect_now', withCode('the database system is starting up', '57P03')],
    ['too_many_connections', withCode('sorry, too many clients already', '53300')],
    ['a connection exception (class 08)', withCode('connection failure', '08006')],
    ['a connection the server ended', new Error('Connection terminated unexpectedly')],
    ['a connection that did not open in time', new Error('Connection terminated due to connection timeout')],
    ['a pool with no connection to give in time', new Error('timeout exceeded when trying to connect')],
    ['a broken client used again', new Error('Client has encountered a connection error and is not queryable')],
    ['a cause', new Error('the lease sweep failed', { cause: withCode('read ECONNRESET', 'ECONNRESET') })],
    ['SQLite locked past the busy timeout', realSqliteBusy()],
  ])('holds for %s', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['a unique violation', withCode('duplicate key value violates unique constraint', '23505')],
    ['a syntax error', withCode('syntax error at or near "selec"', '42601')],
    ['a SQLite constraint', withCode('UNIQUE constraint failed: users.username', 'SQLITE_CONSTRAINT_UNIQUE')],
    ['a programming error', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['a value that is not an error', { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }],
  ])('does not hold for %s', (_, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('a request the database cannot serve', () => {
  let t: TestApp | undefined;

  afterEach(async () => {
    await t?.close();
  });

  it('is 503 database_unavailable with Retry-After, the cause logged and not sent; other database errors stay 500', async () => {
    const busy = realSqliteBusy();
    t = await testApp({
      handlers: fakeHandlers({
        getMe: async () => {
          throw busy;
        },
        listUsers: async () => {
          throw withCode('UNIQUE constraint failed: users.username', 'SQLITE_CONSTRAINT_UNIQUE');
        },
      }),
    });
    const response = await t.app.inject({ method: 'GET', url: '/v1/me', headers: bearer('member') });
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('2');
    expect(response.json()).toMatchObject({
      code: 'database_unavailable',
      detail: 'The database cannot be reached; try again shortly.',
    });
    expect(response.body).not.toContain(busy.message);
    expect(t.logs.entries).toContainEqual(
      expect.objectContaining({ level: 40, msg: 'the database is unavailable', err: expect.objectContaining({ code: 'SQLITE_BUSY' }) }),
    );

    const other = await t.app.inject({ method: 'GET', url: '/v1/users', headers: bearer('admin') });
    expect(other.statusCode).toBe(500);
    expect(other.json()).toMatchObject({ code: 'internal_error' });
  });
});
