import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { roleAtLeast, scopesAllow, type Access } from './access.js';
import { ApiError } from './errors.js';
import type { Principal } from './handler.js';

/** Resolves a bearer token to the calling principal. */
export interface Authenticator {
  /** Throws an `ApiError` with a 401 code when the token is not (or no longer) good. */
  authenticate(token: string): Promise<Principal>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on protected routes; `null` on public ones. */
    principal: Principal | null;
  }
}

const BEARER = /^Bearer +([^\s]+) *$/i;

/** The token of an `Authorization: Bearer <token>` header; anything else is `unauthenticated`. */
export function bearerToken(header: string | undefined): string {
  if (!header) throw new ApiError('unauthenticated', 'This operation needs an Authorization: Bearer <token> header.');
  const match = BEARER.exec(header);
  if (!match) throw new ApiError('unauthenticated', 'Only Bearer credentials are accepted.');
  return match[1]!;
}

/** Requests whose bearer token was presented and refused. */
const refusedTokens = new WeakSet<FastifyRequest>();

/**
 * The `WWW-Authenticate` challenge of a 401 to `request` (RFC 6750): `error="invalid_token"` when it presented a
 * bearer token that was refused (unknown, expired, revoked or its user disabled).
 */
export function bearerChallenge(request: FastifyRequest): string {
  return refusedTokens.has(request) ? 'Bearer realm="cloudphone", error="invalid_token"' : 'Bearer realm="cloudphone"';
}

/** Checks a principal against an operation's `x-access`: the role first, then the credential's scope. */
export function authorize(principal: Principal, access: Access): void {
  if (!roleAtLeast(principal.role, access.role)) {
    throw new ApiError('insufficient_role', `This operation needs the ${access.role} role.`);
  }
  if (!scopesAllow(principal.scopes, access.scope)) {
    throw new ApiError('insufficient_scope', `This operation needs a credential with the ${access.scope} scope.`);
  }
}

/**
 * An `onRequest` hook that authenticates and authorises the caller before the body is read or validated, so an
 * anonymous or unauthorised caller learns nothing about the request schema.
 */
export function requireAccess(authenticator: Authenticator, access: Access): onRequestHookHandler {
  return async (request) => {
    const token = bearerToken(request.headers.authorization);
    const principal = await authenticator.authenticate(token).catch((error: unknown) => {
      refusedTokens.add(request);
      throw error;
    });
    authorize(principal, access);
    request.principal = principal;
  };
}
