import type { Handlers, RequestContext } from '../http/handler.js';
import type { AuthService, Origin } from './service.js';

export type AuthHandlers = Pick<Handlers, 'login' | 'refreshSession' | 'logout'>;

function originOf(ctx: RequestContext): Origin {
  return { requestId: ctx.requestId, ip: ctx.ip, userAgent: ctx.userAgent };
}

export function authHandlers(auth: AuthService): AuthHandlers {
  return {
    login: async ({ body, ctx }) => ({
      status: 200,
      body: await auth.login(body.username, body.password, originOf(ctx)),
    }),
    refreshSession: async ({ body, ctx }) => ({
      status: 200,
      body: await auth.refresh(body.refreshToken, originOf(ctx)),
    }),
    logout: async ({ body, ctx }) => {
      await auth.logout(body.refreshToken, originOf(ctx));
      return { status: 204, body: undefined };
    },
  };
}
