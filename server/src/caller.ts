import { principalActor, type Cause } from './events/types.js';
import { ApiError } from './http/errors.js';
import type { Principal, RequestContext } from './http/handler.js';

/** The authenticated caller of a protected operation (the platform authenticates before any handler runs). */
export function callerOf(ctx: RequestContext): Principal {
  if (ctx.principal === null) {
    throw new ApiError('unauthenticated', 'This operation needs an Authorization: Bearer <token> header.');
  }
  return ctx.principal;
}

/** The caller and request id of a protected operation, to stamp on the events its changes append. */
export function causeOf(ctx: RequestContext): Cause {
  return { actor: principalActor(callerOf(ctx)), requestId: ctx.requestId };
}
