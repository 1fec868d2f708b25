import type { Kysely } from 'kysely';
import { afterEach, expect } from 'vitest';
import { TokenAuthenticator } from '../../src/auth/authenticator.js';
import { AuthService, type AuthConfig, type Origin, type TokenPair } from '../../src/auth/service.js';
import { revokeUserSessions } from '../../src/auth/sessions.js';
import type { DB } from '../../src/db/schema.js';
import { EventService } from '../../src/events/service.js';
import { systemCause, type Cause } from '../../src/events/types.js';
import type { Role } from '../../src/http/access.js';
import { ApiError } from '../../src/http/errors.js';
import type { Principal } from '../../src/http/handler.js';
import { MeService } from '../../src/me/service.js';
import { ApiTokenService } from '../../src/tokens/service.js';
import { UserService } from '../../src/users/service.js';
import type { User } from '../../src/users/view.js';
import { ManualClock } from '../helpers/clock.js';
import { openTestDatabase } from '../helpers/database.js';

export const PASSWORD = 'correct-horse-battery-staple';

export const testConfig: AuthConfig = {
  accessTokenTtlSeconds: 900,
  refreshTokenTtlSeconds: 30 * 86_400,
  loginThrottle: { freeAttempts: 3, addressFreeAttempts: 20, maxDelaySeconds: 60, forgetAfterSeconds: 900 },
};

export const origin: Origin = { requestId: 'req_test', ip: '127.0.0.1', userAgent: 'vitest' };

export interface StoredEvent {
  type: string;
  actorType: string;
  actorId: string | null;
  subjectType: string | null;
  subjectId: string | null;
  data: Record<string, unknown>;
  requestId: string | null;
}

export interface SignedIn {
  user: User;
  pair: TokenPair;
  principal: Principal;
}

/** Every service over a fresh in-memory database migrated to the latest schema, with a manual clock. */
export interface DomainFixture {
  db: Kysely<DB>;
  clock: ManualClock;
  users: UserService;
  auth: AuthService;
  tokens: ApiTokenService;
  me: MeService;
  events: EventService;
  authenticator: TokenAuthenticator;
  /** Creates a user whose password is `PASSWORD`. */
  addUser(username: string, role: Role): Promise<User>;
  /** Creates a user (unless `username` exists), logs them in and authenticates the access token. */
  signIn(username: string, role: Role): Promise<SignedIn>;
  causeOf(principal: Principal): Cause;
  /** The event log, oldest first. */
  eventLog(): Promise<StoredEvent[]>;
  /** How many events the log holds: a mark for `eventsSince`. */
  eventCount(): Promise<number>;
  /** The events appended after `mark`, oldest first. */
  eventsSince(mark: number): Promise<StoredEvent[]>;
  /** Every row of every table, to show that a failed operation wrote nothing. */
  snapshot(): Promise<Record<string, unknown[]>>;
}

const open: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((close) => close()));
});

export async function domainFixture(config: AuthConfig = testConfig): Promise<DomainFixture> {
  const database = await openTestDatabase();
  open.push(() => database.close());
  const { db } = database;
  const clock = new ManualClock();
  const users = new UserService({ db, clock: clock.now, sessions: { revokeUserSessions } });
  const auth = new AuthService({ db, clock: clock.now, config });
  const tokens = new ApiTokenService({ db, clock: clock.now });
  const authenticator = new TokenAuthenticator({ db, clock: clock.now });

  const fixture: DomainFixture = {
    db,
    clock,
    users,
    auth,
    tokens,
    me: new MeService({ users }),
    events: new EventService(db),
    authenticator,
    addUser: (username, role) => users.create({ username, password: PASSWORD, role }, systemCause),
    async signIn(username, role) {
      const existing = await db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirst();
      if (existing === undefined) await fixture.addUser(username, role);
      const pair = await auth.login(username, PASSWORD, origin);
      return { user: pair.user, pair, principal: await authenticator.authenticate(pair.accessToken) };
    },
    causeOf: (principal) => ({
      actor: { type: 'user', id: principal.userId, username: principal.username },
      requestId: 'req_test',
    }),
    async eventLog() {
      const rows = await db.selectFrom('events').selectAll().orderBy('seq').execute();
      return rows.map((row) => ({
        type: row.type,
        actorType: row.actor_type,
        actorId: row.actor_id,
        subjectType: row.subject_type,
        subjectId: row.subject_id,
        data: JSON.parse(row.data) as Record<string, unknown>,
        requestId: row.request_id,
      }));
    },
    async eventCount() {
      return (await fixture.eventLog()).length;
    },
    async eventsSince(mark) {
      return (await fixture.eventLog()).slice(mark);
    },
    async snapshot() {
      return {
        users: await db.selectFrom('users').selectAll().orderBy('id').execute(),
        sessions: await db.selectFrom('sessions').selectAll().orderBy('id').execute(),
        api_tokens: await db.selectFrom('api_tokens').selectAll().orderBy('id').execute(),
        events: await db.selectFrom('events').selectAll().orderBy('seq').execute(),
      };
    },
  };
  return fixture;
}

/** Runs `action`, which must fail with an `ApiError` of `code`, and asserts that it left every table as it was. */
export async function expectRejectedWithoutWrites(
  fixture: DomainFixture,
  action: () => Promise<unknown>,
  code: string,
): Promise<ApiError> {
  const before = await fixture.snapshot();
  const error = await action().then(
    () => new Error(`expected ${code}, but the operation succeeded`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  expect((error as ApiError).code).toBe(code);
  expect(await fixture.snapshot()).toEqual(before);
  return error as ApiError;
}

/** The `ApiError` that `action` fails with. */
export async function rejection(action: () => Promise<unknown>): Promise<ApiError> {
  const error = await action().then(
    () => new Error('expected an ApiError, but the operation succeeded'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}
