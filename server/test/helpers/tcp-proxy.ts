import { createServer, connect, type Server, type Socket } from 'node:net';

/** How a cut proxy treats the connections that arrive while it is cut. */
export type CutMode =
  /** Nothing listens: connections are refused, as when the database server is stopped. */
  | 'refuse'
  /** Connections are accepted and never answered, as when the database host is unreachable. */
  | 'blackhole';

export interface TcpProxy {
  /** The loopback port the proxy listens on. */
  port: number;
  /** Ends every open connection (both sides reset) and treats new ones as `mode` says. */
  cut(mode?: CutMode): Promise<void>;
  /** Forwards new connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
}

/**
 * A TCP proxy on a loopback port that forwards each connection to `target` (a loopback port) and that a test can
 * cut and restore, to take a database away from a server and give it back.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let state: 'forward' | CutMode = 'forward';
  const track = (socket: Socket) => {
    open.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => open.delete(socket));
  };
  const server = createServer((client) => {
    track(client);
    if (state === 'blackhole') return;
    const upstream = connect(target.port, target.host);
    track(upstream);
    // An end or an error on one side ends the other once the data before it is through.
    client.pipe(upstream);
    upstream.pipe(client);
    client.once('error', () => upstream.end());
    upstream.once('error', () => client.end());
  });
  await listen(server, 0);
  const { port } = server.address() as { port: number };
  const resetAll = () => {
    for (const socket of open) socket.resetAndDestroy();
  };
  return {
    port,
    async cut(mode = 'refuse') {
      state = mode;
      const closed = mode === 'refuse' ? closeServer(server) : Promise.resolve();
      resetAll();
      await closed;
    },
    async restore() {
      resetAll();
      state = 'forward';
      if (!server.listening) await listen(server, port);
    },
    async close() {
      resetAll();
      await closeServer(server);
    },
  };
}
