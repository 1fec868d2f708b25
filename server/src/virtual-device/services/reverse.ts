import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { fail, lengthPrefixed, parseReverseRequest, type AdbStream } from '../../adb-protocol/index.js';
import { pipeSocket } from './tcp.js';

/** One `adb reverse`: the device's local port, the host's address, and the socket that simulates the local port. */
interface Reverse {
  remote: string;
  server: Server;
  port: number;
}

/**
 * The reverse forwards of one host connection. The device's local port D of each is simulated by a real socket that
 * listens on a free port of 127.0.0.1; a connection there opens `remote` towards the host and is piped through it.
 * They end with the connection, as on a phone.
 */
export class ReverseForwards {
  readonly #forwards = new Map<number, Reverse>();

  constructor(
    /** The host's name in `list-forward`, such as `host-1`. */
    readonly hostName: string,
    private readonly openToHost: (service: string) => Promise<AdbStream>,
  ) {}

  /** The port of 127.0.0.1 that stands for the device's local port, or undefined without such a reverse. */
  listenerPort(devicePort: number): number | undefined {
    return this.#forwards.get(devicePort)?.port;
  }

  /** Adds or rebinds a reverse; a device port of 0 picks one. Resolves the device port. */
  async add(devicePort: number, remote: string): Promise<number> {
    const existing = this.#forwards.get(devicePort);
    if (existing !== undefined) {
      existing.remote = remote;
      return devicePort;
    }
    const server = createServer((socket) => this.#accept(reverse, socket));
    const reverse: Reverse = { remote, server, port: 0 };
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: 0, host: '127.0.0.1' }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    reverse.port = (server.address() as AddressInfo).port;
    const chosen = devicePort === 0 ? reverse.port : devicePort;
    this.#forwards.set(chosen, reverse);
    return chosen;
  }

  has(devicePort: number): boolean {
    return this.#forwards.has(devicePort);
  }

  remove(devicePort: number): boolean {
    const reverse = this.#forwards.get(devicePort);
    if (reverse === undefined) return false;
    this.#forwards.delete(devicePort);
    reverse.server.close();
    return true;
  }

  clear(): void {
    for (const devicePort of [...this.#forwards.keys()]) this.remove(devicePort);
  }

  /** `list-forward` lines: host name, device address, host address. */
  list(): string {
    return [...this.#forwards].map(([devicePort, { remote }]) => `${this.hostName} tcp:${devicePort} ${remote}\n`).join('');
  }

  #accept(reverse: Reverse, socket: Socket): void {
    socket.pause();
    socket.on('error', () => undefined);
    this.openToHost(reverse.remote).then(
      (stream) => pipeSocket(stream, socket),
      () => socket.destroy(),
    );
  }
}

/**
 * Serves `reverse:<request>`: `forward:[norebind:]tcp:D;<remote>`, `killforward:tcp:D`, `killforward-all` and
 * `list-forward`. Replies as adbd does: `OKAY` (with the chosen port for `tcp:0`) or `FAIL` with a message, and the
 * list without an `OKAY` before it. Then closes the stream.
 */
export async function runReverse(stream: AdbStream, forwards: ReverseForwards, request: string): Promise<void> {
  await stream.write(await reply(forwards, request));
  await stream.close();
}


async function reply(forwards: ReverseForwards, request: string): Promise<Buffer> {
  const parsed = parseReverseRequest(request);
  switch (parsed.kind) {
    case 'list':
      return lengthPrefixed(forwards.list());
    case 'remove-all':
      forwards.clear();
      return Buffer.from('OKAY');
    case 'remove': {
      const devicePort = parseTcpAddress(parsed.local);
      if (devicePort === undefined || !forwards.remove(devicePort)) return fail(`listener '${parsed.local}' not found`);
      return Buffer.from('OKAY');
    }
    case 'unknown':
      return fail(`unknown reverse request: ${request}`);
    case 'forward': {
      const devicePort = parseTcpAddress(parsed.local);
      if (devicePort === undefined) return fail(`cannot bind listener: unsupported address '${parsed.local}'`);
      if (parsed.norebind && forwards.has(devicePort)) return fail('cannot rebind existing socket');
      const chosen = await forwards.add(devicePort, parsed.remote);
      return devicePort === 0 ? Buffer.concat([Buffer.from('OKAY'), lengthPrefixed(String(chosen))]) : Buffer.from('OKAY');
    }
  }
}

function parseTcpAddress(address: string): number | undefined {
  const match = /^tcp:(\d{1,5})$/.exec(address);
  const port = match === null ? NaN : Number(match[1]);
  return port >= 0 && port <= 65535 ? port : undefined;
}
