import type { ErrorObject } from 'ajv/dist/2020.js';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

/**
 * The problem an error stands for, or `null` for an unexpected error (a 500 whose cause is logged, never sent).
 * Every error Fastify raises for bad input maps to a 4xx here.
 */
export function problemFor(error: unknown, bodyLimitBytes: number): ApiError | null {
  if (error instanceof ApiError) return error;
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
  if (problem) return sendProblem(reply, problem);
  request.log.error({ err: error }, 'request failed');
  return sendProblem(
    reply,
    new ApiError('internal_error', 'The server failed to handle the request; the error is logged.'),
  );
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
