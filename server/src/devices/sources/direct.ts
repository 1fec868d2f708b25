import { createConnection, type Socket } from 'node:net';
import {
  Adb,
  AdbDaemonTransport,
  AdbPacket,
  AdbPacketSerializeStream,
  AdbPublicKeyAuthenticator,
  AdbSignatureAuthenticator,
  type AdbAuthenticator,
  type AdbCredentialStore,
  type AdbDaemonConnection,
} from '@yume-chan/adb';
import {
  PushReadableStream,
  StructDeserializeStream,
  WritableStream,
  pipeFrom,
  tryClose,
  type Consumable,
  type ReadableStream,
} from '@yume-chan/stream-extra';
import { closeAdb } from '../adb/guard.js';
import { kindOf, readDeviceInfo, readSystemProperties } from '../adb/info.js';
import { parseAddress } from '../../address.js';
import { isThroughTunnel } from '../tunnel/adb-proxy.js';
import type { DeviceKind, DeviceUpdate } from '../types.js';
import { backoffDelay, errorMessage, pause, type DeviceSource, type SourceContext } from './source.js';

/** How long a device may take to answer the handshake (unless it is waiting for the user to accept our key). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface DirectConnectOptions {
  host: string;
  port: number;
  serial: string;
  credentialStore: AdbCredentialStore;
  /** Called when the device refused our signature and we offered our public key: it waits for the user. */
  onUnauthorized?: () => void;
  signal?: AbortSignal;
  handshakeTimeoutMs?: number;
}

/** Connects to an adbd over TCP and authenticates with our key: @yume-chan/adb with no adb server in between. */
export async function connectDirectAdb(options: DirectConnectOptions): Promise<Adb> {
  options.signal?.throwIfAborted();
  const socket = await openSocket(options.host, options.port, options.signal);
  let unauthorized = false;
  const publicKey: AdbAuthenticator = (store, next) => {
    unauthorized = true;
    options.onUnauthorized?.();
    return AdbPublicKeyAuthenticator(store, next);
  };
  const timeoutMs = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const abort = () => socket.destroy(new Error('aborted'));
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    const handshake = AdbDaemonTransport.authenticate({
      serial: options.serial,
      connection: socketConnection(socket),
      credentialStore: options.credentialStore,
      // The signature authenticator may be given a wrapped PublicKey one: only the latter means "unauthorized".
      authenticators: [AdbSignatureAuthenticator, publicKey],
    });
    const timeout = new Promise<never>((_, reject) => {
      const check = () => {
        if (unauthorized) return; // the user may accept later; the socket's end ends the wait
        reject(new Error(`no ADB handshake from ${options.host}:${options.port} within ${timeoutMs} ms`));
      };
      timer = setTimeout(check, timeoutMs);
    });
    const closed = new Promise<never>((_, reject) => {
      socket.once('close', () => reject(new Error(`connection to ${options.host}:${options.port} closed during the handshake`)));
    });
    const transport = await Promise.race([handshake, timeout, closed]);
    return new Adb(transport);
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', abort);
  }
}

function openSocket(host: string, port: number, signal: AbortSignal | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port, signal });
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 5_000);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function socketConnection(socket: Socket): AdbDaemonConnection {
  const bytes = new PushReadableStream<Uint8Array>((controller) => {
    socket.on('data', (data: Buffer) => {
      socket.pause();
      void controller.enqueue(data).then(
        () => socket.resume(),
        () => socket.destroy(),
      );
    });
    socket.once('end', () => tryClose(controller));
    socket.once('close', () => tryClose(controller));
    socket.on('error', (error) => {
      try {
        controller.error(error);
      } catch {
        // already closed
      }
    });
  });
  const sink = new WritableStream<Consumable<Uint8Array>>({
    write: (chunk) =>
      chunk.tryConsume(
        (data) =>
          new Promise<void>((resolve) => {
            // A packet for a connection that is gone is dropped: the readable side reports the end.
            if (socket.destroyed || !socket.writable) {
              resolve();
              return;
            }
            socket.write(data, () => resolve());
          }),
      ),
    close: () => void socket.end(),
    abort: () => void socket.destroy(),
  });
  return {
    readable: bytes.pipeThrough(new StructDeserializeStream(AdbPacket)) as ReadableStream<AdbPacket>,
    writable: pipeFrom(sink, new AdbPacketSerializeStream()),
  };
}

/** Reads identity and info of a freshly connected device; retries once. */
export async function describeDevice(
  adb: Adb,
  serial: string,
  via: 'adb_server' | 'direct',
): Promise<{ kind: DeviceKind; info: NonNullable<DeviceUpdate['info']> }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const properties = await readSystemProperties(adb);
      return { kind: kindOf(serial, properties, via), info: await readDeviceInfo(adb, properties) };
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * Keeps one direct connection to a device up: connect, report it online (with its info), wait for the drop, report
 * it offline, reconnect with backoff. `hostStatus` tells the host's status too when the device is the whole host.
 */
export class DirectDeviceLink {
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #adb: Adb | undefined;
  #known: DeviceKind | undefined;

  constructor(
    private readonly context: SourceContext,
    private readonly target: { host: string; port: number; serial: string; kind?: DeviceKind; reportsHost: boolean },
  ) {}

  start(): void {
    this.#running ??= this.#loop().catch((error: unknown) => {
      this.context.log.error({ err: error }, 'device link failed');
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    const adb = this.#adb;
    if (adb !== undefined) await closeAdb(adb);
    await this.#running;
  }

  async #loop(): Promise<void> {
    const { context, target } = this;
    const signal = this.#stop.signal;
    let attempt = 0;
    while (!signal.aborted) {
      if (target.reportsHost) context.status({ status: 'connecting', lastError: null, nextRetryAt: null });
      let adb: Adb | undefined;
      try {
        adb = await connectDirectAdb({
          host: target.host,
          port: target.port,
          serial: target.serial,
          credentialStore: context.adbKey.credentialStore,
          signal,
          onUnauthorized: () => {
            if (signal.aborted) return;
            context.log.warn({ serial: target.serial }, 'device has not authorised our adb key');
            if (target.reportsHost) context.status({ status: 'connected', lastError: null, nextRetryAt: null });
            this.#emit('unauthorized', null);
          },
        });
        if (signal.aborted) {
          await closeAdb(adb);
          return;
        }
        if (isThroughTunnel(adb)) throw new TunnelRefusedError(`${target.host}:${target.port}`);
        this.#adb = adb;
        const described = await describeDevice(adb, target.serial, 'direct');
        if (signal.aborted) return;
        this.#known = target.kind ?? described.kind;
        attempt = 0;
        if (target.reportsHost) context.status({ status: 'connected', lastError: null, nextRetryAt: null });
        context.log.info({ serial: target.serial }, 'device online');
        this.#emit('online', described.info, adb);
        await adb.disconnected.catch(() => undefined);
        if (signal.aborted) return;
        context.log.info({ serial: target.serial }, 'device connection dropped');
        this.#emit('offline', null);
      } catch (error) {
        if (signal.aborted) return;
        if (adb !== undefined) await closeAdb(adb);
        this.#emit('offline', null);
        const delay = backoffDelay(attempt++, context.retry);
        const message = errorMessage(error);
        if (error instanceof TunnelRefusedError) context.log.warn({ serial: target.serial, err: message }, 'device refused');
        else context.log.debug({ serial: target.serial, err: message, delay }, 'device connect failed');
        if (target.reportsHost) {
          context.status({ status: 'unreachable', lastError: message, nextRetryAt: new Date(Date.now() + delay) });
        }
        this.#adb = undefined;
        await pause(delay, signal);
        continue;
      }
      this.#adb = undefined;
      // Dropped after being online: retry soon (the first retry is quick, then it backs off).
      await pause(backoffDelay(attempt++, context.retry), signal);
    }
  }

  /** Reports a state; offline only for a device already reported, so unknown targets do not appear. */
  #emit(state: DeviceUpdate['state'], info: DeviceUpdate['info'], adb?: Adb): void {
    if (state === 'offline' && this.#known === undefined) return;
    this.#known ??= this.target.kind ?? 'network';
    this.context.emit(
      { hostId: this.context.hostId, serial: this.target.serial, kind: this.#known, state, info },
      state === 'online' ? adb : undefined,
    );
  }
}

/** The address is a cloudphone ADB tunnel: its device is in the inventory already, through its own host. */
class TunnelRefusedError extends Error {
  constructor(address: string) {
    super(`${address} is a cloudphone ADB tunnel, not a device: add the device's own host instead`);
    this.name = 'TunnelRefusedError';
  }
}

/** An `adb_device` host: one device at `host:port`, connected with the server's key; serial = address. */
export class DirectSource implements DeviceSource {
  readonly #link: DirectDeviceLink;

  constructor(context: SourceContext, address: string) {
    const { host, port } = parseAddress(address);
    this.#link = new DirectDeviceLink(context, { host, port, serial: address, reportsHost: true });
  }

  start(): void {
    this.#link.start();
  }

  stop(): Promise<void> {
    return this.#link.stop();
  }
}

