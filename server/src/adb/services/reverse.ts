import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { AdbStream } from '../stream.js';
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

/** A `reverse:` request, as adbd reads it. */
export type ReverseRequest =
  | { kind: 'list' }
  | { kind: 'remove-all' }
  | { kind: 'remove'; local: string }
  | { kind: 'forward'; norebind: boolean; local: string; remote: string }
  | { kind: 'unknown' };

/** Reads `forward:[norebind:]<local>;<remote>`, `killforward:<local>`, `killforward-all` or `list-forward`. */
export function parseReverseRequest(request: string): ReverseRequest {
  if (request === 'list-forward') return { kind: 'list' };
  if (request === 'killforward-all') return { kind: 'remove-all' };
  if (request.startsWith('killforward:')) return { kind: 'remove', local: request.slice('killforward:'.length) };
  const forward = /^forward:(norebind:)?([^;]*);(.+)$/s.exec(request);
  if (forward === null) return { kind: 'unknown' };
  return { kind: 'forward', norebind: forward[1] !== undefined, local: forward[2] ?? '', remote: forward[3] ?? '' };
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

/** `FAIL` and the length-prefixed message, as adbd refuses a request. */
export function fail(message: string): Buffer {
  return Buffer.concat([Buffer.from('FAIL'), lengthPrefixed(message)]);
}

/** The smart-socket framing: four hex digits of length, then the text. */
export function lengthPrefixed(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from(body.length.toString(16).padStart(4, '0')), body]);
}
