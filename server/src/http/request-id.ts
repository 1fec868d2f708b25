import type { IncomingMessage } from 'node:http';
import { newId } from '../db/ids.js';

const ACCEPTED = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `X-Request-Id` when it is well-formed, else a new `req_<ulid>`. For Fastify's `genReqId`. */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && ACCEPTED.test(given) ? given : newId('req');
}
