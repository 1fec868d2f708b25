import { callerOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import type { AdbKeyPair } from './adb/key.js';
import type { HostService } from './hosts.js';

export type HostHandlers = Pick<
  Handlers,
  'listHosts' | 'createHost' | 'getHost' | 'updateHost' | 'deleteHost' | 'getAdbKey'
>;

export function hostHandlers(hosts: HostService, adbKey: AdbKeyPair): HostHandlers {
  return {
    listHosts: async () => ({ status: 200, body: { data: await hosts.list() } }),
    createHost: async ({ body, ctx }) => ({ status: 201, body: await hosts.create(callerOf(ctx), body, ctx.requestId) }),
    getHost: async ({ params }) => ({ status: 200, body: await hosts.get(params.hostId) }),
    updateHost: async ({ params, body, ctx }) => ({
      status: 200,
      body: await hosts.update(callerOf(ctx), params.hostId, body, ctx.requestId),
    }),
    deleteHost: async ({ params, ctx }) => {
      await hosts.delete(callerOf(ctx), params.hostId, ctx.requestId);
      return { status: 204, body: undefined };
    },
    getAdbKey: async () => ({
      status: 200,
      body: { publicKey: adbKey.publicKey, fingerprint: adbKey.fingerprint },
    }),
  };
}
