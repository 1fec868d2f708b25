import { causeOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import type { UserService } from './service.js';

export type UserHandlers = Pick<Handlers, 'listUsers' | 'createUser' | 'getUser' | 'updateUser' | 'deleteUser'>;

export function userHandlers(users: UserService): UserHandlers {
  return {
    listUsers: async ({ query }) => ({
      status: 200,
      body: await users.list({ ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    createUser: async ({ body, ctx }) => ({ status: 201, body: await users.create(body, causeOf(ctx)) }),
    getUser: async ({ params }) => ({ status: 200, body: await users.get(params.userId) }),
    updateUser: async ({ params, body, ctx }) => ({
      status: 200,
      body: await users.update(params.userId, body, causeOf(ctx)),
    }),
    deleteUser: async ({ params, ctx }) => {
      await users.delete(params.userId, causeOf(ctx));
      return { status: 204, body: undefined };
    },
  };
}
