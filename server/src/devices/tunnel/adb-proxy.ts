import type { Duplex } from 'node:stream';
import type { Adb, AdbSocket } from '@yume-chan/adb';
import { AdbdEndpoint, StreamClosedError, type AdbStream, type StreamHandler } from '../../adb-protocol/index.js';
import { TunnelReverses } from './reverse.js';

export interface AdbTunnelOptions {
  /** Aborting it ends every proxied stream (the device sockets are closed) and the duplex. */
  signal?: AbortSignal;
  /** Unexpected errors of a proxied stream (the stream is closed on both sides). Default: ignored. */
  onError?: (error: unknown) => void;
}

/**
 * Transport features of the device we do not implement on the tunnel's host side: they are negotiated per
 * transport, so the host must not see them.
 */
const TRANSPORT_FEATURES: ReadonlySet<string> = new Set(['delayed_ack']);

/**
 * The feature every tunnel adds to its banner, so that the device layer recognises a device reached through one of
 * cloudphone's own tunnels (directly or through an ADB server, which passes a transport's features on) and keeps it
 * out of the inventory: a device leased once must not come back as a second, leasable device.
 */
const TUNNEL_FEATURE = 'cloudphone_tunnel';

/** Whether `adb` reaches its device through a cloudphone ADB tunnel (its banner carries `TUNNEL_FEATURE`). */
export function isThroughTunnel(adb: Adb): boolean {
  return (adb.banner.features as readonly string[]).includes(TUNNEL_FEATURE);
}

/**
 * The CNXN banner the tunnel shows the host: the device's identity and features, less the transport-level ones,
 * plus `TUNNEL_FEATURE`.
 */
export function tunnelBanner(adb: Adb): string {
  const { product, model, device } = adb.banner;
  const features = adb.banner.features as readonly string[];
  const shown = [...features.filter((feature) => !TRANSPORT_FEATURES.has(feature) && feature !== TUNNEL_FEATURE), TUNNEL_FEATURE];
  return (
    `device::ro.product.name=${product ?? ''};ro.product.model=${model ?? ''};` +
    `ro.product.device=${device ?? ''};features=${shown.join(',')}`
  );
}

/**
 * Plays adbd over `duplex` (raw ADB transport bytes from an ADB host, such as the real `adb` behind
 * `adb connect`) and forwards every stream the host opens to the device behind `adb`, with flow control both ways.
 * No AUTH: whoever reaches the duplex was authorised before (the lease). Every service the device refuses is refused
 * (CLSE). `reverse:` requests become reverses on the device whose connections are opened towards this host
 * (TunnelReverses); they end with the tunnel. Resolves once the duplex is closed, the tunnel's reverses are off the
 * device and every proxied stream has ended.
 */
export function serveAdbTunnel(duplex: Duplex, adb: Adb, options: AdbTunnelOptions = {}): Promise<void> {
  const onError = options.onError ?? (() => undefined);
  const running = new Set<Promise<void>>();
  const pipe = (stream: AdbStream, socket: AdbSocket): Promise<void> => {
    const piping = pipeStream(adb, stream, socket, onError);
    running.add(piping);
    const forgetPiping = (): void => void running.delete(piping);
    piping.then(forgetPiping, forgetPiping);
    return piping;
  };
  const reverses = new TunnelReverses(adb, pipe);
  const endpoint = new AdbdEndpoint(duplex, {
    banner: tunnelBanner(adb),
    onError,
    services: (name, self) => {
      if (name.startsWith('reverse:')) return reverses.serve(name.slice('reverse:'.length), self);
      return openOnDevice(adb, name, pipe);
    },
  });
  const signal = options.signal;
  const stop = (): void => endpoint.drop();
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  // The device going away takes the tunnel with it, so the host sees the disconnect.
  const forget = onDisconnected(adb, stop);
  return new Promise<void>((resolve) => {
    endpoint.onClose(() => {
      signal?.removeEventListener('abort', stop);
      forget();
      // The tunnel's reverses go with it (unless the device went away, taking them along).
      const removing = isDisconnected(adb) ? Promise.resolve() : reverses.removeAll();
      void Promise.allSettled([removing, ...running]).then(() => resolve());
    });
  });
}

/**
 * One reaction per Adb on `adb.disconnected`, shared by its tunnels, so that many short sessions on a long-lived
 * connection leave nothing behind (a promise's reactions cannot be removed). Returns the way to stop listening.
 */
const disconnectListeners = new WeakMap<Adb, { gone: boolean; listeners: Set<() => void> }>();

function onDisconnected(adb: Adb, listener: () => void): () => void {
  let entry = disconnectListeners.get(adb);
  if (entry === undefined) {
    const created = { gone: false, listeners: new Set<() => void>() };
    const fire = (): void => {
      created.gone = true;
      for (const each of [...created.listeners]) each();
      created.listeners.clear();
    };
    adb.disconnected.then(fire, fire);
    disconnectListeners.set(adb, created);
    entry = created;
  }
  if (entry.gone) {
    listener();
    return () => undefined;
  }
  const { listeners } = entry;
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function isDisconnected(adb: Adb): boolean {
  return disconnectListeners.get(adb)?.gone ?? false;
}

/** Opens `service` on the device: the handler once it is open, undefined (CLSE) if the device refuses it. */
async function openOnDevice(
  adb: Adb,
  service: string,
  pipe: (stream: AdbStream, socket: AdbSocket) => Promise<void>,
): Promise<StreamHandler | undefined> {
  let socket: AdbSocket;
  try {
    socket = await adb.createSocket(service);
  } catch {
    return undefined;
  }
  return (stream) => pipe(stream, socket);
}

/**
 * Pipes one host stream and one device socket. Host → device: each WRTE is written to the device socket and the
 * host gets its OKAY only once that write is done. Device → host: each chunk is sent as WRTE(s) of at most the
 * host's maxdata, the next only after the host's OKAY (AdbStream.write); until then nothing more is read from the
 * device socket, so the device waits for our OKAY too. Either side closing closes the other.
 */
async function pipeStream(
  adb: Adb,
  stream: AdbStream,
  socket: AdbSocket,
  onError: (error: unknown) => void,
): Promise<void> {
  const reader = socket.readable.getReader();
  const writer = socket.writable.getWriter();
  let closing = false;
  const closeDevice = (): void => {
    if (closing) return;
    closing = true;
    // Once the device's transport is gone there is nobody to send CLSE to (and writing would fail).
    if (!isDisconnected(adb)) {
      void Promise.resolve()
        .then(() => socket.close())
        .catch(() => undefined);
    }
    reader.cancel().catch(() => undefined);
    writer.abort().catch(() => undefined);
  };
  if (stream.signal.aborted) closeDevice();
  else stream.signal.addEventListener('abort', closeDevice, { once: true });
  // A failed write means the device closed its socket meanwhile (its CLSE reaches the host through the read loop):
  // the host's data is dropped, as adbd drops what arrives after it closed, and the stream closes.
  stream.pipeInputTo((data) => writer.write(data));
  try {
    for (;;) {
      const result = await reader.read();
      if (result.done) {
        // The device closed the socket (or its transport is gone): yume-chan has answered it, nothing to send.
        closing = true;
        break;
      }
      const chunk = result.value;
      await stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    }
  } catch (error) {
    if (!closing && !(error instanceof StreamClosedError)) onError(error);
  } finally {
    stream.signal.removeEventListener('abort', closeDevice);
    await stream.close().catch(() => undefined);
    closeDevice();
  }
}
