import type { Adb, AdbSocket } from '@yume-chan/adb';
import {
  fail,
  lengthPrefixed,
  parseReverseRequest,
  type AdbdEndpoint,
  type AdbStream,
  type StreamHandler,
} from '../../adb-protocol/index.js';

/** Pipes a stream of the tunnel's host and a socket of the device until either closes. */
export type PipeToDevice = (stream: AdbStream, socket: AdbSocket) => Promise<void>;

/**
 * The `adb reverse` forwards one tunnel made on its device. Each is a reverse on the device itself (through
 * @yume-chan/adb, whichever way the device is reached): when an app on the device connects to its local port, the
 * connection arrives here and is opened towards the tunnel's host (`OPEN <remote>`), as adbd would open it, and
 * piped. They are the tunnel's own: listed, removed and, when the tunnel ends, taken off the device.
 */
export class TunnelReverses {
  /** Device address (`tcp:8081`) → where the host wants its connections (`tcp:8081` on the host). */
  readonly #forwards = new Map<string, string>();

  constructor(
    private readonly adb: Adb,
    private readonly pipe: PipeToDevice,
  ) {}

  /** The handler of a `reverse:<request>` stream: the answer adbd gives, then the stream closes. */
  serve(request: string, endpoint: AdbdEndpoint): StreamHandler {
    return async (stream) => {
      await stream.write(await this.#reply(request, endpoint));
      await stream.close();
    };
  }

  /** Takes every forward of this tunnel off the device (the tunnel is over). */
  async removeAll(): Promise<void> {
    const addresses = [...this.#forwards.keys()];
    this.#forwards.clear();
    await Promise.allSettled(addresses.map((address) => this.adb.reverse.remove(address)));
  }

  async #reply(request: string, endpoint: AdbdEndpoint): Promise<Buffer> {
    const parsed = parseReverseRequest(request);
    switch (parsed.kind) {
      case 'list':
        return lengthPrefixed([...this.#forwards].map(([local, remote]) => `host ${local} ${remote}\n`).join(''));
      case 'remove-all':
        await this.removeAll();
        return Buffer.from('OKAY');
      case 'remove':
        if (!this.#forwards.delete(parsed.local)) return fail(`listener '${parsed.local}' not found`);
        await this.adb.reverse.remove(parsed.local).catch(() => undefined);
        return Buffer.from('OKAY');
      case 'unknown':
        return fail(`unknown reverse request: ${request}`);
      case 'forward': {
        const { local, remote, norebind } = parsed;
        if (this.#forwards.has(local)) {
          if (norebind) return fail('cannot rebind existing socket');
          this.#forwards.set(local, remote);
          return Buffer.from('OKAY');
        }
        let bound: string;
        try {
          bound = await this.adb.reverse.add(local, (socket) => this.#accept(bound, socket, endpoint));
        } catch (error) {
          return fail(error instanceof Error ? error.message : String(error));
        }
        this.#forwards.set(bound, remote);
        // For tcp:0 the device chose the port: adbd answers it after the OKAY.
        return local === bound ? Buffer.from('OKAY') : Buffer.concat([Buffer.from('OKAY'), lengthPrefixed(bound.replace(/^tcp:/, ''))]);
      }
    }
  }

  /**
   * A connection an app made to the device's local port: opened towards the host, then piped in the background
   * (the device gets its acknowledgement when this returns), or closed if the host refuses it.
   */
  async #accept(local: string, socket: AdbSocket, endpoint: AdbdEndpoint): Promise<void> {
    const remote = this.#forwards.get(local);
    let stream: AdbStream;
    try {
      if (remote === undefined) throw new Error(`no reverse for ${local}`);
      stream = await endpoint.openToHost(remote);
    } catch {
      await socket.close();
      return;
    }
    void this.pipe(stream, socket);
  }
}
