import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * One log line per completed request (method, route, operation, status, duration) instead of Fastify's two, and
 * nothing from the request itself: headers and bodies carry credentials. Every line has the `requestId` binding.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'requestId' });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = {
      method: request.method,
      route: request.routeOptions.url ?? null,
      operationId: request.routeOptions.config.operationId,
      path: request.url.split('?', 1)[0],
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (error) request.log.error({ ...line, err: error }, 'request failed while responding');
    else request.log.info(line, 'request completed');
  }
}
