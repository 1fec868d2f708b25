import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorObject } from 'ajv/dist/2020.js';
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/dialect.js';
import { newId } from '../db/ids.js';
import { bearerChallenge } from './auth.js';
import { ApiError } from './errors.js';
import { fieldErrors, validationDetail, type RequestPart } from './validation.js';

/** Sends `error` as an `application/problem+json` response. */
export function sendProblem(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('retry-after', String(Math.max(0, Math.ceil(error.retryAfter))));
  if (error.status === 401) reply.header('www-authenticate', bearerChallenge(reply.request));
  // A streamed request body the handler stopped reading (a push to a device that went away): the connection
  // closes after the answer instead of waiting for, or reading, the rest of an upload nobody wants.
  if (!reply.request.raw.complete) reply.header('connection', 'close');
  return reply
    .code(error.status)
    .header('x-request-id', reply.request.id)
    .type('application/problem+json')
    .send(error.toProblem(reply.request.id));
}

function isFastifyError(error: unknown): error is FastifyError {
  return error instanceof Error && String((error as FastifyError).code).startsWith('FST_');
}

/** Seconds a client is told to wait before retrying a request the database could not serve. */
const DATABASE_RETRY_AFTER = 2;

/** The answer to a request the database could not serve because it cannot be reached (`isDatabaseUnavailable`). */
function databaseUnavailable(): ApiError {
  return new ApiError('database_unavailable', 'The database cannot be reached; try again shortly.', {
    retryAfter: DATABASE_RETRY_AFTER,
  });
}

/**
 * The problem an error stands for, or `null` for an unexpected error (a 500 whose cause is logged, never sent).
 * Every error Fastify raises for bad input maps to a 4xx here, and a database that cannot be reached to 503
 * `database_unavailable`.
 */
export function problemFor(error: unknown, bodyLimitBytes: number): ApiError | null {
  if (error instanceof ApiError) return error;
  if (isDatabaseUnavailable(error)) return databaseUnavailable();
  if (!isFastifyError(error)) return null;
  if (error.validation && error.validationContext) {
    const part = error.validationContext as RequestPart;
    const errors = fieldErrors(part, error.validation as ErrorObject[]);
    return new ApiError('validation_failed', validationDetail(part, errors), { errors });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError('malformed_json', 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('malformed_json', 'The request body is empty; send a JSON document.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('payload_too_large', `The request body is larger than ${bodyLimitBytes} bytes.`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError('unsupported_media_type', 'Send request bodies as application/json.');
    case 'FST_ERR_BAD_URL':
      return new ApiError('invalid_encoding', 'The URL holds a percent-encoded sequence that is not UTF-8.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('malformed_request', 'The request body is not as long as its Content-Length says.');
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError('validation_failed', error.message);
  return null;
}

function replyWithError(
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
  bodyLimitBytes: number,
): FastifyReply {
  const problem = problemFor(error, bodyLimitBytes);
  if (problem === null) {
    request.log.error({ err: error }, 'request failed');
    return sendProblem(
      reply,
      new ApiError('internal_error', 'The server failed to handle the request; the error is logged.'),
    );
  }
  // The driver's own error, which says why the database cannot be reached, is for the log only.
  if (problem.code === 'database_unavailable' && problem !== error) {
    request.log.warn({ err: error }, 'the database is unavailable');
  }
  return sendProblem(reply, problem);
}

export interface ProblemHandlingOptions {
  bodyLimitBytes: number;
  /** The methods routed for a path, to tell an unknown path (404) from a wrong method (405). */
  allowedMethods(path: string): string[];
}

/** Makes every error, unknown route and framework error an `application/problem+json` response. */
export function registerProblemHandling(app: FastifyInstance, options: ProblemHandlingOptions): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) =>
    replyWithError(error, request, reply, options.bodyLimitBytes),
  );

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?', 1)[0]!;
    const allowed = options.allowedMethods(path);
    if (allowed.length === 0) return sendProblem(reply, new ApiError('not_found', `No route ${path}.`));
    reply.header('allow', allowed.join(', '));
    return sendProblem(reply, new ApiError('method_not_allowed', `${path} allows ${allowed.join(', ')}.`));
  });
}

/** For `frameworkErrors`: errors Fastify raises before routing (a malformed URL, an overlong path parameter). */
export function frameworkErrorHandler(bodyLimitBytes: number) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    replyWithError(error, request, reply, bodyLimitBytes);
  };
}

/** The path of a raw request's first line (`FOO /v1/users HTTP/1.1`), or `null`. */
function pathOfRawRequest(raw: unknown): string | null {
  const line = Buffer.isBuffer(raw) ? raw.toString('latin1').split('\r\n', 1)[0]! : '';
  const target = line.split(' ')[1];
  return target?.startsWith('/') ? target.split('?', 1)[0]! : null;
}

/** What Node's HTTP parser refuses before Fastify sees a request, as the problem to answer. */
function clientProblem(error: ConnectionError, allowedMethods: (path: string) => string[]) {
  switch (error.code) {
    case 'HPE_INVALID_METHOD': {
      const path = pathOfRawRequest((error as { rawPacket?: unknown }).rawPacket);
      if (path === null) return { problem: new ApiError('malformed_request', 'The request is not well-formed HTTP/1.1.'), allow: null };
      const allowed = allowedMethods(path);
      if (allowed.length === 0) return { problem: new ApiError('not_found', `No route ${path}.`), allow: null };
      return { problem: new ApiError('method_not_allowed', `${path} allows ${allowed.join(', ')}.`), allow: allowed.join(', ') };
    }
    case 'HPE_HEADER_OVERFLOW':
      return { problem: new ApiError('request_headers_too_large', 'The request headers are larger than the server takes.'), allow: null };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { problem: new ApiError('request_timeout', 'The request did not arrive in time.'), allow: null };
    default:
      return { problem: new ApiError('malformed_request', 'The request is not well-formed HTTP/1.1.'), allow: null };
  }
}

/**
 * For Fastify's `clientErrorHandler`: requests Node's HTTP parser refuses (an unknown method, headers over the size
 * limit, malformed HTTP, a request too slow to arrive) are answered as problems too, then the connection is closed.
 */
export function clientErrorHandler(allowedMethods: (path: string) => string[]) {
  return function (this: FastifyInstance, error: ConnectionError, socket: Socket): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const { problem, allow } = clientProblem(error, allowedMethods);
    const requestId = newId('req');
    this.log.debug({ err: error, requestId }, 'client error');
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify(problem.toProblem(requestId));
    const head = [
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}`,
      'content-type: application/problem+json',
      `content-length: ${Buffer.byteLength(body)}`,
      `x-request-id: ${requestId}`,
      ...(allow === null ? [] : [`allow: ${allow}`]),
      'connection: close',
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  };
}
