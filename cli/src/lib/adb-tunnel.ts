import type { IncomingMessage } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocket, createWebSocketStream } from 'ws';

export interface AdbTunnelOptions {
  /** `ws(s)://…/v1/devices/<id>/adb`. */
  url: string;
  /** Sent with every upgrade, such as `Authorization`. */
  headers: Record<string, string>;
  /** The local port; 0 (the default) picks a free one. */
  port?: number;
  host?: '127.0.0.1';
  /** Errors of one connection after the tunnel is open (that connection is dropped, the tunnel stays). */
  onError?: (error: Error) => void;
}

export interface AdbTunnel {
  /** The local port: `adb connect 127.0.0.1:<port>`. */
  readonly port: number;
  /** Stops listening and drops every connection. */
  close(): Promise<void>;
  /** How many local connections are open. */
  connections(): number;
}

/** The server refused the WebSocket upgrade (or it failed before the upgrade). */
export class AdbTunnelError extends Error {
  constructor(
    message: string,
    /** The HTTP status of a refused upgrade; undefined when the server was not reached. */
    readonly status: number | undefined,
    /** The problem's `code`, if the server sent problem JSON. */
    readonly code: string | undefined,
    readonly detail: string | undefined,
  ) {
    super(message);
    this.name = 'AdbTunnelError';
  }
}

/**
 * Opens a local TCP port where each connection is one WebSocket to the server's ADB tunnel of a device (binary
 * frames = raw ADB transport bytes), so that the real `adb connect 127.0.0.1:<port>` reaches the device. The first
 * upgrade is tried before it resolves: it rejects with an AdbTunnelError when the server refuses it (no lease, …).
 */
export async function openAdbTunnel(options: AdbTunnelOptions): Promise<AdbTunnel> {
  const host = options.host ?? '127.0.0.1';
  const onError = options.onError ?? (() => undefined);
  // Fail fast: one upgrade now, so a refusal is the command's error, not a silent `adb connect` failure later.
  const probe = await connectWebSocket(options.url, options.headers);
  probe.close(1000, 'probe');
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    void bridge(socket, options, onError).catch((error: unknown) => {
      socket.destroy();
      onError(error instanceof Error ? error : new Error(String(error)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: options.port ?? 0, host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port,
    connections: () => sockets.size,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

/** Pipes one local connection through a new WebSocket, with backpressure both ways, until either side ends. */
async function bridge(
  socket: Socket,
  options: AdbTunnelOptions,
  onClosedByServer: (error: AdbTunnelError) => void,
): Promise<void> {
  socket.pause();
  const ws = await connectWebSocket(options.url, options.headers, socket);
  if (socket.destroyed) {
    ws.terminate();
    return;
  }
  // A close code of the application range (such as 4001 "lease ended") is worth telling the user.
  ws.once('close', (code: number, reason: Buffer) => {
    if (code >= 4000) {
      const why = reason.length > 0 ? reason.toString('utf8') : 'closed';
      onClosedByServer(new AdbTunnelError(`The server closed the ADB tunnel: ${why} (${code})`, undefined, undefined, why));
    }
  });
  const remote = createWebSocketStream(ws);
  const end = (): void => {
    socket.destroy();
    remote.destroy();
  };
  remote.on('error', end);
  remote.once('close', end);
  socket.once('close', end);
  socket.pipe(remote);
  remote.pipe(socket);
  socket.resume();
}

/** Opens a WebSocket; rejects with an AdbTunnelError telling why the upgrade failed. Aborted if `local` closes. */
function connectWebSocket(url: string, headers: Record<string, string>, local?: Socket): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: 15_000 });
    ws.binaryType = 'nodebuffer';
    const abort = (): void => ws.terminate();
    local?.once('close', abort);
    const settle = (): void => {
      local?.off('close', abort);
      ws.off('open', opened);
      ws.off('error', failed);
      ws.off('unexpected-response', refused);
    };
    const opened = (): void => {
      settle();
      resolve(ws);
    };
    const failed = (error: Error): void => {
      settle();
      ws.on('error', () => undefined);
      reject(new AdbTunnelError(`Cannot open the ADB tunnel at ${url}: ${error.message}`, undefined, undefined, undefined));
    };
    const refused = (_request: unknown, response: IncomingMessage): void => {
      settle();
      ws.on('error', () => undefined);
      void readProblem(response).then((problem) => {
        ws.terminate();
        const status = response.statusCode ?? 0;
        const what = problem.detail ?? problem.title ?? response.statusMessage ?? 'refused';
        const code = problem.code === undefined ? '' : ` (${problem.code})`;
        reject(new AdbTunnelError(`The server refused the ADB tunnel: ${status} ${what}${code}`, status, problem.code, problem.detail));
      });
    };
    ws.once('open', opened);
    ws.once('error', failed);
    ws.once('unexpected-response', refused);
  });
}

/** The problem JSON of a refused upgrade, as far as it can be read. */
async function readProblem(response: IncomingMessage): Promise<{ code?: string; title?: string; detail?: string }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of response) {
      chunks.push(chunk as Buffer);
      if (chunks.reduce((sum, item) => sum + item.length, 0) > 64 * 1024) break;
    }
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof body !== 'object' || body === null) return {};
    const pick = (key: string): string | undefined => {
      const value = (body as Record<string, unknown>)[key];
      return typeof value === 'string' ? value : undefined;
    };
    return { code: pick('code'), title: pick('title'), detail: pick('detail') };
  } catch {
    return {};
  }
}
