import { callerOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import type { LeaseService } from './service.js';

export type LeaseHandlers = Pick<Handlers, 'createLease' | 'listLeases' | 'getLease' | 'renewLease' | 'releaseLease'>;

export function leaseHandlers(leases: LeaseService): LeaseHandlers {
  return {
    createLease: async ({ body, ctx }) => {
      const { status, lease } = await leases.create(callerOf(ctx), body ?? {}, ctx.requestId);
      return { status, body: lease };
    },
    listLeases: async ({ query, ctx }) => ({
      status: 200,
      body: await leases.list(callerOf(ctx), { ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    getLease: async ({ params, query, ctx }) => ({
      status: 200,
      body: await leases.get(callerOf(ctx), params.leaseId, { waitSeconds: query.waitSeconds }),
    }),
    renewLease: async ({ params, body, ctx }) => ({
      status: 200,
      body: await leases.renew(callerOf(ctx), params.leaseId, { ttlSeconds: body?.ttlSeconds }, ctx.requestId),
    }),
    releaseLease: async ({ params, ctx }) => ({
      status: 200,
      body: await leases.release(callerOf(ctx), params.leaseId, ctx.requestId),
    }),
  };
}
