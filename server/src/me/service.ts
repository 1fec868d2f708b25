import { principalActor } from '../events/types.js';
import type { components } from '../generated/types.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import type { UserService } from '../users/service.js';
import type { User } from '../users/view.js';

export type Me = components['schemas']['Me'];

export interface MePatch {
  displayName?: string | undefined;
  password?: string | undefined;
  currentPassword?: string | undefined;
}

function currentPasswordError(message: string): ApiError {
  return new ApiError('validation_failed', `currentPassword ${message}.`, {
    errors: [{ field: '/currentPassword', message }],
  });
}

/** The calling user's own account, through the users domain. */
export class MeService {
  readonly #users: UserService;

  constructor(deps: { users: UserService }) {
    this.#users = deps.users;
  }

  async get(principal: Principal): Promise<Me> {
    const user = await this.#users.get(principal.userId);
    return {
      ...user,
      authentication: {
        method: principal.method,
        ...(principal.tokenId === undefined ? {} : { tokenId: principal.tokenId }),
        scopes: principal.scopes,
      },
    };
  }

  /** Changing the password needs the current one and ends every session but the caller's. */
  async update(principal: Principal, patch: MePatch, requestId: string | null): Promise<User> {
    if (patch.password !== undefined) {
      if (patch.currentPassword === undefined) throw currentPasswordError('is required to change the password');
      if (!(await this.#users.checkPassword(principal.userId, patch.currentPassword))) {
        throw currentPasswordError('is incorrect');
      }
    }
    return this.#users.update(
      principal.userId,
      { displayName: patch.displayName, password: patch.password },
      { actor: principalActor(principal), requestId },
      principal.sessionId,
    );
  }
}
