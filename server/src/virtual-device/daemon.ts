import type { KeyObject } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { AdbdEndpoint, parseAdbPublicKey } from '../adb-protocol/index.js';
import { Device } from './device.js';
import { connectionBanner, type DeviceProfile } from './profile.js';
import { builtInProfile, instantiate, type ProfileTemplate } from './profiles.js';
import { findService, type HostConnection } from './services/index.js';
import { ReverseForwards } from './services/reverse.js';

export interface VirtualDeviceOptions {
  /** 0, the default, picks a free port. */
  port?: number;
  host?: string;
  profile: DeviceProfile;
  /** Called with errors a service did not expect; the stream is closed. Default: a process warning. */
  onError?: (error: unknown) => void;
  /**
   * With it, a host must sign the device's AUTH token with one of these keys (lines of `~/.android/adbkey.pub`) before
   * it gets the CNXN; other hosts see the device as `unauthorized`. Without it, no AUTH: every host is accepted.
   */
  auth?: { authorizedKeys: string[] };
  /** How long a reboot keeps the device away before it listens again on the same port. Default: 3000 ms. */
  rebootDelayMs?: number;
}

export interface VirtualDevice {
  readonly host: string;
  readonly port: number;
  readonly serial: string;
  /** The device's state: files and properties, shared by all connections. */
  readonly state: Device;
  /**
   * The port of 127.0.0.1 where a process "on the device" connects to reach the device's local port `devicePort` of an
   * `adb reverse tcp:<devicePort> …`; undefined while there is no such reverse.
   */
  reversePort(devicePort: number): number | undefined;
  /** Drops every connection and stops listening. */
  close(): Promise<void>;
}

/** Starts a device-side ADB daemon on TCP, reachable with `adb connect host:port`. */
export async function startVirtualDevice(options: VirtualDeviceOptions): Promise<VirtualDevice> {
  const host = options.host ?? '127.0.0.1';
  const rebootDelayMs = options.rebootDelayMs ?? 3000;
  const authorizedKeys = options.auth?.authorizedKeys.map(parseAdbPublicKey);
  const onError = options.onError ?? ((error: unknown) => process.emitWarning(toError(error)));
  const connections = new Set<Connection>();
  let hostNumber = 0;
  const server = createServer((socket) => {
    const connection = new Connection(socket, state, onError, authorizedKeys, `host-${++hostNumber}`);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  });
  const powerOff = new AbortController();
  let rebooting = false;
  const stop = async (): Promise<void> => {
    const closed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined;
    for (const connection of connections) connection.drop();
    await closed;
  };
  const reboot = async (): Promise<void> => {
    if (rebooting || powerOff.signal.aborted) return;
    rebooting = true;
    try {
      await stop();
      await sleepFor(rebootDelayMs, undefined, { signal: powerOff.signal });
      await listen(server, port, host);
    } catch (error) {
      if (!powerOff.signal.aborted) onError(error);
    } finally {
      rebooting = false;
    }
  };
  const state = new Device(options.profile, () => void reboot());
  await listen(server, options.port ?? 0, host);
  const port = (server.address() as AddressInfo).port;
  return {
    host,
    port,
    serial: options.profile.serial,
    state,
    reversePort(devicePort) {
      for (const connection of connections) {
        const listening = connection.reverse.listenerPort(devicePort);
        if (listening !== undefined) return listening;
      }
      return undefined;
    },
    async close() {
      powerOff.abort();
      await stop();
    },
  };
}

/**
 * Starts `count` devices, each with its own serial, from one profile (a built-in name or a template; the `virtual`
 * profile by default). With a base port other than 0 they listen on base, base + 2, … like emulators (so an ADB
 * server started afterwards finds them from 5555 up); otherwise on free ports.
 */
export async function startVirtualDevices(
  count: number,
  basePort?: number,
  options: { profile?: string | ProfileTemplate; host?: string } = {},
): Promise<VirtualDevice[]> {
  const template = typeof options.profile === 'object' ? options.profile : builtInProfile(options.profile ?? 'virtual');
  const devices: VirtualDevice[] = [];
  try {
    for (let index = 0; index < count; index++) {
      const port = basePort === undefined || basePort === 0 ? 0 : basePort + 2 * index;
      const profile = instantiate(template, index);
      devices.push(await startVirtualDevice({ port, profile, host: options.host }));
    }
  } catch (error) {
    await Promise.all(devices.map((device) => device.close()));
    throw error;
  }
  return devices;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** One host connection of a virtual device: an adbd endpoint serving the device's services, with its reverses. */
class Connection implements HostConnection {
  readonly reverse: ReverseForwards;
  readonly #endpoint: AdbdEndpoint;

  constructor(
    socket: Socket,
    device: Device,
    onError: (error: unknown) => void,
    authorizedKeys: KeyObject[] | undefined,
    hostName: string,
  ) {
    this.#endpoint = new AdbdEndpoint(socket, {
      banner: () => connectionBanner(device.profile),
      authorizedKeys,
      onError,
      services: (name) => {
        const service = findService(name);
        return service === undefined ? undefined : (stream) => service(stream, device, this);
      },
    });
    this.reverse = new ReverseForwards(hostName, (service) => this.#endpoint.openToHost(service));
    this.#endpoint.onClose(() => this.reverse.clear());
  }

  /** Ends the connection, as when the device goes away. */
  drop(): void {
    this.#endpoint.drop();
  }
}
