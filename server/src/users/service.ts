import type { Kysely, Updateable } from 'kysely';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import { randomBase62 } from '../auth/secrets.js';
import { lockForTransaction } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import type { DB, UsersTable } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { systemCause, type Cause, type UserChange } from '../events/types.js';
import type { Role } from '../http/access.js';
import { ApiError } from '../http/errors.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import { noRevocationListener, type Revocation, type RevocationListener } from '../revocations.js';
import {
  countEnabledAdmins,
  countUsers,
  deleteUserRow,
  findUserById,
  findUserByUsername,
  insertUser,
  queryUsers,
  updateUserRow,
  type UserRow,
} from './repository.js';
import { toUser, toUserSummary, type User } from './view.js';

/** Ends sessions, for the auth domain that owns them; called inside the caller's transaction. */
export interface SessionRevoker {
  /** Revokes every live session of the user except the one with id `keep`. */
  revokeUserSessions(db: Kysely<DB>, userId: string, at: Date, keep?: string): Promise<void>;
}

/** Ends a disabled user's leases, for the lease domain that owns them; called inside the caller's transaction. */
export interface UserLeaseEnder {
  /** Ends the user's active leases with their events; `afterCommit` resets the devices once committed. */
  endLeasesOfUser(db: Kysely<DB>, userId: string, cause: Cause): Promise<{ afterCommit(): void }>;
}

export interface NewUser {
  username: string;
  password: string;
  role: Role;
  displayName?: string | undefined;
}

export interface UserPatch {
  displayName?: string | undefined;
  role?: Role | undefined;
  disabled?: boolean | undefined;
  password?: string | undefined;
}

export interface UserListQuery {
  role?: Role | undefined;
  disabled?: boolean | undefined;
  q?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}

const BOOTSTRAP_USERNAME = 'admin';
const BOOTSTRAP_PASSWORD_LENGTH = 20;
const userPosition = idPosition(/^usr_[0-9A-Z]{26}$/);

function noSuchUser(id: string): ApiError {
  return new ApiError('not_found', `No user ${id}.`);
}

function usernameTaken(username: string): ApiError {
  return new ApiError('username_taken', `The username ${username} is taken.`);
}

export class UserService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #sessions: SessionRevoker;
  readonly #leases: UserLeaseEnder | undefined;
  readonly #revocations: RevocationListener;

  constructor(deps: {
    db: Kysely<DB>;
    clock: () => Date;
    sessions: SessionRevoker;
    leases?: UserLeaseEnder;
    revocations?: RevocationListener;
  }) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#sessions = deps.sessions;
    this.#leases = deps.leases;
    this.#revocations = deps.revocations ?? noRevocationListener;
  }

  async list(query: UserListQuery): Promise<Page<User>> {
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, userPosition);
    const rows = await queryUsers(this.#db, {
      role: query.role,
      disabled: query.disabled,
      text: query.q,
      afterId: after?.id,
      limit: query.limit + 1,
    });
    return toPage(rows, query.limit, toUser, (row) => ({ id: row.id }));
  }

  async get(id: string): Promise<User> {
    const row = await findUserById(this.#db, id);
    if (row === undefined) throw noSuchUser(id);
    return toUser(row);
  }

  async create(input: NewUser, cause: Cause): Promise<User> {
    const passwordHash = await hashPassword(input.password);
    const now = this.#clock();
    return this.#db.transaction().execute(async (trx) => {
      if ((await findUserByUsername(trx, input.username)) !== undefined) throw usernameTaken(input.username);
      return toUser(await this.#insert(trx, input, passwordHash, cause, now));
    });
  }

  /**
   * Applies the fields of `patch` that differ from the user. Disabling or setting a password ends the user's
   * sessions (except `keepSessionId`); disabling ends the user's leases too. Once committed, the WebSockets of every
   * credential that ended are closed. A patch that changes nothing writes nothing.
   */
  async update(id: string, patch: UserPatch, cause: Cause, keepSessionId?: string): Promise<User> {
    const passwordHash = patch.password === undefined ? undefined : await hashPassword(patch.password);
    const now = this.#clock();
    let revocation: Revocation | undefined;
    let leasesEnded: { afterCommit(): void } | undefined;
    const result = await this.#db.transaction().execute(async (trx) => {
      const user = await findUserById(trx, id);
      if (user === undefined) throw noSuchUser(id);
      const changes: UserChange[] = [];
      const set: Updateable<UsersTable> = {};
      if (patch.displayName !== undefined && patch.displayName !== user.display_name) {
        changes.push('displayName');
        set.display_name = patch.displayName;
      }
      if (patch.role !== undefined && patch.role !== user.role) {
        changes.push('role');
        set.role = patch.role;
      }
      if (patch.disabled !== undefined && patch.disabled !== (user.disabled === 1)) {
        changes.push('disabled');
        set.disabled = patch.disabled ? 1 : 0;
      }
      if (passwordHash !== undefined) {
        changes.push('password');
        set.password_hash = passwordHash;
      }
      if (changes.length === 0) return toUser(user);
      if ((set.role !== undefined && set.role !== 'admin') || set.disabled === 1) await this.#keepAnAdmin(trx, user);

      const updated: UserRow = { ...user, ...set, updated_at: now.toISOString() };
      await updateUserRow(trx, id, { ...set, updated_at: updated.updated_at });
      if (set.disabled === 1 || passwordHash !== undefined) {
        await this.#sessions.revokeUserSessions(trx, id, now, keepSessionId);
      }
      if (set.disabled === 1) {
        leasesEnded = await this.#leases?.endLeasesOfUser(trx, id, cause);
        revocation = { type: 'user', userId: id, reason: 'user disabled' };
      } else if (passwordHash !== undefined) {
        revocation = { type: 'user', userId: id, reason: 'password changed', sessionsOnly: true, keepSessionId };
      }
      await appendEvent(trx, {
        type: 'user.updated',
        ...cause,
        subject: { type: 'user', id },
        data: { user: toUserSummary(updated), changes },
        occurredAt: now,
      });
      return toUser(updated);
    });
    if (revocation !== undefined) this.#revocations.revoked(revocation);
    leasesEnded?.afterCommit();
    return result;
  }

  /**
   * Deletes a user with their sessions and API tokens; the events about them stay in the log. Their leases end
   * first (their devices are reset), so their device time is metered: usage and invoices outlive the user.
   */
  async delete(id: string, cause: Cause): Promise<void> {
    const now = this.#clock();
    let leasesEnded: { afterCommit(): void } | undefined;
    await this.#db.transaction().execute(async (trx) => {
      const user = await findUserById(trx, id);
      if (user === undefined) throw noSuchUser(id);
      await this.#keepAnAdmin(trx, user);
      leasesEnded = await this.#leases?.endLeasesOfUser(trx, id, cause);
      await deleteUserRow(trx, id);
      await appendEvent(trx, {
        type: 'user.deleted',
        ...cause,
        subject: { type: 'user', id },
        data: { user: toUserSummary(user) },
        occurredAt: now,
      });
    });
    leasesEnded?.afterCommit();
    this.#revocations.revoked({ type: 'user', userId: id, reason: 'user deleted' });
  }

  async checkPassword(id: string, password: string): Promise<boolean> {
    const user = await findUserById(this.#db, id);
    return user !== undefined && (await verifyPassword(password, user.password_hash));
  }

  /**
   * On a database without users, creates the first admin with `password`, or a random one; returns the credentials,
   * or `null` when there are users already.
   */
  async bootstrap(password?: string): Promise<{ username: string; password: string } | null> {
    if ((await countUsers(this.#db)) > 0) return null;
    const adminPassword = password ?? randomBase62(BOOTSTRAP_PASSWORD_LENGTH);
    const passwordHash = await hashPassword(adminPassword);
    const now = this.#clock();
    const created = await this.#db.transaction().execute(async (trx) => {
      // Nodes starting together on one empty database create one admin between them.
      await lockForTransaction(trx, 'bootstrap');
      if ((await countUsers(trx)) > 0) return false;
      const admin = { username: BOOTSTRAP_USERNAME, role: 'admin', displayName: 'Administrator' } as const;
      await this.#insert(trx, admin, passwordHash, systemCause, now);
      return true;
    });
    return created ? { username: BOOTSTRAP_USERNAME, password: adminPassword } : null;
  }

  async #insert(
    trx: Kysely<DB>,
    input: Omit<NewUser, 'password'>,
    passwordHash: string,
    cause: Cause,
    now: Date,
  ): Promise<UserRow> {
    const at = now.toISOString();
    const row: UserRow = {
      id: newId('usr', now.getTime()),
      username: input.username,
      display_name: input.displayName ?? input.username,
      role: input.role,
      disabled: 0,
      password_hash: passwordHash,
      created_at: at,
      updated_at: at,
      plan_id: null,
    };
    if (!(await insertUser(trx, row))) throw usernameTaken(input.username);
    await appendEvent(trx, {
      type: 'user.created',
      ...cause,
      subject: { type: 'user', id: row.id },
      data: { user: toUserSummary(row) },
      occurredAt: now,
    });
    return row;
  }

  /** The last enabled admin may not be demoted, disabled or deleted: someone must be able to manage the server. */
  async #keepAnAdmin(trx: Kysely<DB>, user: UserRow): Promise<void> {
    if (user.role === 'admin' && user.disabled === 0 && (await countEnabledAdmins(trx)) <= 1) {
      throw new ApiError('last_admin', `${user.username} is the last enabled admin.`);
    }
  }
}
