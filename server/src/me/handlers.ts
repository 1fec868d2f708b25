import { callerOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import type { MeService } from './service.js';

export type MeHandlers = Pick<Handlers, 'getMe' | 'updateMe'>;

export function meHandlers(me: MeService): MeHandlers {
  return {
    getMe: async ({ ctx }) => ({ status: 200, body: await me.get(callerOf(ctx)) }),
    updateMe: async ({ body, ctx }) => ({ status: 200, body: await me.update(callerOf(ctx), body, ctx.requestId) }),
  };
}
