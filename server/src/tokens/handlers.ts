import { callerOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import type { ApiTokenService } from './service.js';

export type ApiTokenHandlers = Pick<Handlers, 'listApiTokens' | 'createApiToken' | 'getApiToken' | 'revokeApiToken'>;

export function apiTokenHandlers(tokens: ApiTokenService): ApiTokenHandlers {
  return {
    listApiTokens: async ({ query, ctx }) => ({
      status: 200,
      body: await tokens.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    createApiToken: async ({ body, ctx }) => ({
      status: 201,
      body: await tokens.create(callerOf(ctx), body, ctx.requestId),
    }),
    getApiToken: async ({ params, ctx }) => ({ status: 200, body: await tokens.get(callerOf(ctx), params.tokenId) }),
    revokeApiToken: async ({ params, ctx }) => {
      await tokens.revoke(callerOf(ctx), params.tokenId, ctx.requestId);
      return { status: 204, body: undefined };
    },
  };
}
