import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';

/**
 * Logs every WebSocket session twice, under its upgrade request's id: `websocket opened` (operation, path, caller)
 * and `websocket closed` (the same, with the close code and reason, `ms` open, and the bytes received and sent on
 * the connection after the upgrade, WebSocket framing included). Upgrades hijack the reply, so the request log has
 * no line of its own for them.
 */
export class WebSocketSessionLog {
  readonly #upgrades = new WeakMap<IncomingMessage, FastifyRequest>();

  /** Call for every request that asks for an upgrade, before its route runs. */
  upgrading(request: FastifyRequest): void {
    this.#upgrades.set(request.raw, request);
  }

  /** Follows the sessions the server accepts from now on. */
  follow(server: WebSocketServer): void {
    server.on('connection', (socket: WebSocket, raw: IncomingMessage) => {
      const request = this.#upgrades.get(raw);
      if (request !== undefined) this.#session(socket, request);
    });
  }

  #session(socket: WebSocket, request: FastifyRequest): void {
    const connection = request.raw.socket;
    const opened = performance.now();
    const readBefore = connection.bytesRead;
    const writtenBefore = connection.bytesWritten;
    const fields = {
      operationId: request.routeOptions.config.operationId,
      path: request.url.split('?', 1)[0],
      userId: request.principal?.userId ?? null,
    };
    request.log.info(fields, 'websocket opened');
    socket.once('close', (code: number, reason: Buffer) => {
      request.log.info(
        {
          ...fields,
          code,
          reason: reason.toString(),
          ms: Math.round(performance.now() - opened),
          bytesIn: connection.bytesRead - readBefore,
          bytesOut: connection.bytesWritten - writtenBefore,
        },
        'websocket closed',
      );
    });
  }
}
