import { AdbServerClient, type Adb } from '@yume-chan/adb';
import { AdbServerNodeTcpConnector } from '@yume-chan/adb-server-node-tcp';
import { isThroughTunnel } from '../tunnel/adb-proxy.js';
import type { DeviceKind, LiveState } from '../types.js';
import { parseAddress } from '../../address.js';
import { describeDevice } from './direct.js';
import { backoffDelay, errorMessage, pause, type DeviceSource, type SourceContext } from './source.js';

const STATES: AdbServerClient.ConnectionState[] = ['device', 'unauthorized', 'offline'];
const POLL_MS = 1000;
/** After the connection of a transport dropped, how long a stale `device` state of it is not believed. */
const STALE_DEVICE_MS = 3000;

interface Tracked {
  serial: string;
  transportId: bigint;
  /** The adb server's state string. */
  rawState: string;
  kind: DeviceKind;
  /** What we reported last. */
  reported: LiveState | undefined;
  adb: Adb | undefined;
  /** Bumped on every change, so a slow info read does not report a stale state. */
  generation: number;
  /** When the device's connection (through the server) last dropped. */
  disconnectedAt: number;
  /** A cloudphone ADB tunnel: never reported, whatever its state. */
  tunnel: boolean;
}

/**
 * An `adb_server` host: live tracking of `host:track-devices-l`. device → online (after reading its info),
 * unauthorized, anything else or gone from the list → offline. When the server cannot be reached: unreachable, every
 * device offline, retry with backoff.
 *
 * Network devices (serial `host:port`) seen on this server are remembered; when the server comes back after being
 * unreachable (a restart forgets `adb connect`ed devices), the source `adb connect`s them again. Devices that just go
 * offline are left to the server, which reconnects them itself (adb 29: after ~10 s).
 *
 * A device reached through a cloudphone ADB tunnel (`adb connect` to a `devices connect` port) is never reported:
 * its device is in the inventory already, through its own host. Only a connection tells a tunnel (its banner), so a
 * network device that was never online here is not reported offline either: it enters once it comes online.
 */
export class AdbServerSource implements DeviceSource {
  readonly #stop = new AbortController();
  readonly #devices = new Map<string, Tracked>();
  readonly #networkSerials = new Set<string>();
  readonly #host: string;
  readonly #port: number;
  #running: Promise<void> | undefined;

  constructor(
    private readonly context: SourceContext,
    address: string,
  ) {
    ({ host: this.#host, port: this.#port } = parseAddress(address));
  }

  start(): void {
    this.#running ??= this.#loop().catch((error: unknown) => {
      this.context.log.error({ err: errorMessage(error) }, 'adb server tracking failed');
    });
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
    for (const device of this.#devices.values()) void closeQuietly(device.adb);
    this.#devices.clear();
  }

  async #loop(): Promise<void> {
    const { context } = this;
    const signal = this.#stop.signal;
    let attempt = 0;
    let wasUnreachable = false;
    while (!signal.aborted) {
      context.status({ status: 'connecting', lastError: null, nextRetryAt: null });
      const client = new AdbServerClient(new AdbServerNodeTcpConnector({ host: this.#host, port: this.#port }));
      let failure: unknown;
      try {
        const observer = await client.trackDevices({ includeStates: STATES });
        // Stopped while connecting: the abort has fired already, so nothing below would ever end the tracking.
        if (signal.aborted) {
          await Promise.resolve(observer.stop()).catch(() => undefined);
          return;
        }
        attempt = 0;
        context.status({ status: 'connected', lastError: null, nextRetryAt: null });
        context.log.info('tracking adb server devices');
        const ended = new Promise<unknown>((resolve) => {
          observer.onError((error) => resolve(error ?? new Error('adb server connection lost')));
          signal.addEventListener('abort', () => resolve(undefined), { once: true });
        });
        observer.onListChange((list) => this.#apply(client, list));
        // adb 29 does not push state changes of a known transport (device → offline → device) on track-devices:
        // a light poll of the list catches them within a second.
        const poll = setInterval(() => {
          client.getDevices(STATES).then(
            (list) => this.#apply(client, list),
            () => undefined,
          );
        }, POLL_MS);
        signal.addEventListener('abort', () => clearInterval(poll), { once: true });
        void ended.finally(() => clearInterval(poll));
        if (wasUnreachable) void this.#reconnectRemembered(client, observer.current);
        wasUnreachable = false;
        failure = await ended;
        await Promise.resolve(observer.stop()).catch(() => undefined);
      } catch (error) {
        failure = error;
      }
      if (signal.aborted) return;
      wasUnreachable = true;
      this.#allOffline();
      const delay = backoffDelay(attempt++, context.retry);
      const message = errorMessage(failure);
      context.log.warn({ err: message, retryInMs: delay }, 'adb server unreachable');
      context.status({ status: 'unreachable', lastError: message, nextRetryAt: new Date(Date.now() + delay) });
      await pause(delay, signal);
    }
  }

  #apply(client: AdbServerClient, list: readonly AdbServerClient.Device[]): void {
    if (this.#stop.signal.aborted) return;
    const seen = new Set<string>();
    for (const entry of list) {
      seen.add(entry.serial);
      let device = this.#devices.get(entry.serial);
      if (device?.tunnel !== true && isNetworkSerial(entry.serial)) this.#networkSerials.add(entry.serial);
      if (device !== undefined && device.transportId === entry.transportId && device.rawState === entry.state) continue;
      if (
        device?.rawState === 'disconnected' &&
        entry.state === 'device' &&
        device.transportId === entry.transportId &&
        Date.now() - device.disconnectedAt < STALE_DEVICE_MS
      ) {
        continue; // the list has not caught up with the drop yet
      }
      if (device === undefined) {
        device = {
          serial: entry.serial,
          transportId: entry.transportId,
          rawState: entry.state,
          kind: 'physical',
          reported: undefined,
          adb: undefined,
          generation: 0,
          disconnectedAt: 0,
          tunnel: false,
        };
        this.#devices.set(entry.serial, device);
      }
      device.generation++;
      device.transportId = entry.transportId;
      device.rawState = entry.state;
      void closeQuietly(device.adb);
      device.adb = undefined;
      if (entry.state === 'device') void this.#bringOnline(client, device, device.generation);
      else this.#report(device, entry.state === 'unauthorized' ? 'unauthorized' : 'offline');
    }
    for (const device of [...this.#devices.values()]) {
      if (seen.has(device.serial) || device.rawState === 'gone') continue;
      if (device.tunnel) {
        // Forgotten, so that a device connected at that address later is judged afresh.
        this.#devices.delete(device.serial);
        continue;
      }
      device.generation++;
      device.rawState = 'gone';
      void closeQuietly(device.adb);
      device.adb = undefined;
      this.#report(device, 'offline');
    }
  }

  async #bringOnline(client: AdbServerClient, device: Tracked, generation: number): Promise<void> {
    const { context } = this;
    let adb: Adb | undefined;
    try {
      adb = await client.createAdb({ transportId: device.transportId });
      if (isThroughTunnel(adb)) {
        void closeQuietly(adb);
        if (!device.tunnel) context.log.warn({ serial: device.serial }, 'ignoring a cloudphone ADB tunnel seen on the adb server');
        device.tunnel = true;
        this.#networkSerials.delete(device.serial);
        return;
      }
      const described = await describeDevice(adb, device.serial, 'adb_server');
      if (device.generation !== generation || this.#stop.signal.aborted) {
        void closeQuietly(adb);
        return;
      }
      device.kind = described.kind;
      device.adb = adb;
      context.log.info({ serial: device.serial }, 'device online');
      device.reported = 'online';
      context.emit({ hostId: context.hostId, serial: device.serial, kind: device.kind, state: 'online', info: described.info }, adb);
      // The server tells a dropped transport through this device's connection at once, not on track-devices.
      void adb.disconnected
        .catch(() => undefined)
        .then(() => {
          if (device.generation !== generation || this.#stop.signal.aborted) return;
          device.generation++;
          device.rawState = 'disconnected';
          device.disconnectedAt = Date.now();
          device.adb = undefined;
          context.log.info({ serial: device.serial }, 'device connection dropped');
          this.#report(device, 'offline');
        });
    } catch (error) {
      void closeQuietly(adb);
      if (device.generation !== generation || this.#stop.signal.aborted) return;
      context.log.warn(
        { serial: device.serial, err: errorMessage(error) },
        'could not read the device information; reporting it offline',
      );
      this.#report(device, 'offline');
    }
  }

  #report(device: Tracked, state: LiveState): void {
    if (device.tunnel) return;
    if (device.reported === undefined && state === 'offline') {
      // A network device never online here may be a cloudphone tunnel, which only its banner tells: not reported.
      if (isNetworkSerial(device.serial)) return;
      // First sight of another device in the offline state: report it, with the kind its serial tells.
      device.kind = kindFromSerial(device.serial);
    }
    if (device.reported === state) return;
    if (device.reported === undefined && state === 'unauthorized') device.kind = kindFromSerial(device.serial);
    device.reported = state;
    this.context.emit({ hostId: this.context.hostId, serial: device.serial, kind: device.kind, state, info: null }, undefined);
  }

  #allOffline(): void {
    for (const device of this.#devices.values()) {
      device.generation++;
      device.rawState = 'gone';
      void closeQuietly(device.adb);
      device.adb = undefined;
      this.#report(device, 'offline');
    }
  }

  /** After a server restart: `adb connect` the network devices it knew before. */
  async #reconnectRemembered(client: AdbServerClient, current: readonly AdbServerClient.Device[]): Promise<void> {
    const present = new Set(current.map((device) => device.serial));
    for (const serial of this.#networkSerials) {
      if (present.has(serial) || this.#stop.signal.aborted) continue;
      try {
        await client.wireless.connect(serial);
        this.context.log.info({ serial }, 'reconnected network device after adb server restart');
      } catch (error) {
        if (error instanceof AdbServerClient.AlreadyConnectedError) continue;
        this.context.log.debug({ serial, err: errorMessage(error) }, 'reconnect failed');
      }
    }
  }
}

/** `host:port` or `[v6]:port`: a device `adb connect`ed over TCP. */
function isNetworkSerial(serial: string): boolean {
  return /^[^:]+:\d+$/.test(serial) || /^\[.*\]:\d+$/.test(serial);
}

function kindFromSerial(serial: string): DeviceKind {
  if (/^emulator-\d+$/.test(serial)) return 'emulator';
  if (serial.includes(':') || serial.includes('._adb-tls-connect._tcp')) return 'network';
  return 'physical';
}

async function closeQuietly(adb: Adb | undefined): Promise<void> {
  if (adb === undefined) return;
  try {
    await adb.close();
  } catch {
    // gone already
  }
}
