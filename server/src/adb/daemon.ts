import type { KeyObject } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleepFor } from 'node:timers/promises';
import { AuthType, newAuthToken, parseAdbPublicKey, verifyAdbSignature } from './auth.js';
import { Device } from './device.js';
import { connectionBanner, type DeviceProfile } from './profile.js';
import { builtInProfile, instantiate, type ProfileTemplate } from './profiles.js';
import { Command, PacketDecoder, PROTOCOL_VERSION, encodePacket, type Packet } from './protocol.js';
import { findService, type HostConnection } from './services/index.js';
import { ReverseForwards } from './services/reverse.js';
import { AdbStream, StreamClosedError, type StreamLink } from './stream.js';

/** The largest payload the device accepts, announced in its CNXN. */
export const MAX_PAYLOAD = 256 * 1024;
/** The maxdata of the first protocol version; a host announcing less is treated as announcing this. */
const MIN_PAYLOAD = 4096;

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

/** One host connection: the transport state and its streams, keyed by our local id. */
class Connection implements StreamLink, HostConnection {
  readonly #decoder = new PacketDecoder(MAX_PAYLOAD);
  readonly #streams = new Map<number, AdbStream>();
  /** Streams the device opened towards the host, waiting for the host's OKAY or CLSE. */
  readonly #opening = new Map<number, { resolve(stream: AdbStream): void; reject(error: Error): void }>();
  readonly reverse: ReverseForwards;
  #nextLocalId = 1;
  #connected = false;
  /** The token of the last AUTH(TOKEN), while the host is not yet authorised. */
  #token: Buffer | undefined;
  #hostVersion = PROTOCOL_VERSION;
  maxPayload = MAX_PAYLOAD;

  constructor(
    private readonly socket: Socket,
    private readonly device: Device,
    private readonly onError: (error: unknown) => void,
    private readonly authorizedKeys: KeyObject[] | undefined,
    hostName: string,
  ) {
    this.reverse = new ReverseForwards(hostName, (service) => this.#openToHost(service));
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    // A reset by the host only ends the connection; 'close' follows and cleans up.
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.#closeStreams();
      this.reverse.clear();
    });
  }

  /** Ends the connection, as when the device goes away. */
  drop(): void {
    this.socket.destroy();
  }

  send(command: number, arg0: number, arg1: number, data: Buffer = Buffer.alloc(0)): void {
    if (!this.socket.destroyed) this.socket.write(encodePacket({ command, arg0, arg1, data }));
  }

  release(localId: number): void {
    this.#streams.delete(localId);
  }

  #receive(chunk: Buffer): void {
    let packets: Packet[];
    try {
      packets = this.#decoder.push(chunk);
    } catch {
      // A malformed packet means the transport is out of step; adbd drops the connection too.
      this.socket.destroy();
      return;
    }
    for (const packet of packets) this.#handle(packet);
  }

  #handle(packet: Packet): void {
    if (packet.command === Command.CNXN) {
      this.#connect(packet);
      return;
    }
    if (!this.#connected) {
      if (packet.command === Command.AUTH) this.#authenticate(packet);
      return;
    }
    switch (packet.command) {
      case Command.OPEN:
        this.#open(packet.arg0, packet.data);
        return;
      case Command.OKAY: {
        const opening = this.#opening.get(packet.arg1);
        if (opening === undefined) {
          this.#streams.get(packet.arg1)?.acknowledged();
          return;
        }
        this.#opening.delete(packet.arg1);
        const stream = new AdbStream(this, packet.arg1, packet.arg0);
        this.#streams.set(stream.localId, stream);
        opening.resolve(stream);
        return;
      }
      case Command.WRTE:
        this.#streams.get(packet.arg1)?.received(packet.data);
        return;
      case Command.CLSE: {
        const opening = this.#opening.get(packet.arg1);
        this.#opening.delete(packet.arg1);
        opening?.reject(new StreamClosedError('the host refused the stream'));
        this.#streams.get(packet.arg1)?.closedByHost();
        return;
      }
    }
  }

  /** The host's CNXN (again, after a host restart): a fresh session, behind AUTH when keys are configured. */
  #connect(packet: Packet): void {
    this.#closeStreams();
    this.maxPayload = Math.min(MAX_PAYLOAD, Math.max(MIN_PAYLOAD, packet.arg1));
    this.#hostVersion = packet.arg0;
    this.#connected = false;
    if (this.authorizedKeys === undefined) this.#accept();
    else this.#sendToken();
  }

  /**
   * AUTH from the host: a SIGNATURE of the token by an authorised key gets the CNXN, any other a new token. A
   * RSAPUBLICKEY is the host asking the user to accept its key; nobody answers, so the host stays unauthorised.
   */
  #authenticate(packet: Packet): void {
    if (packet.arg0 !== AuthType.SIGNATURE || this.#token === undefined) return;
    const token = this.#token;
    if (this.authorizedKeys?.some((key) => verifyAdbSignature(key, token, packet.data))) this.#accept();
    else this.#sendToken();
  }

  #sendToken(): void {
    this.#token = newAuthToken();
    this.send(Command.AUTH, AuthType.TOKEN, 0, this.#token);
  }

  #accept(): void {
    this.#token = undefined;
    this.#connected = true;
    const banner = Buffer.from(connectionBanner(this.device.profile), 'utf8');
    this.send(Command.CNXN, Math.min(PROTOCOL_VERSION, this.#hostVersion), MAX_PAYLOAD, banner);
  }

  /** Opens a stream towards the host (an `adb reverse` connection); rejects if the host refuses it. */
  #openToHost(service: string): Promise<AdbStream> {
    if (!this.#connected) return Promise.reject(new StreamClosedError('not connected'));
    const localId = this.#nextLocalId++;
    return new Promise((resolve, reject) => {
      this.#opening.set(localId, { resolve, reject });
      this.send(Command.OPEN, localId, 0, Buffer.from(`${service}\0`));
    });
  }

  #open(remoteId: number, payload: Buffer): void {
    const service = findService(payload);
    if (service === undefined) {
      this.send(Command.CLSE, 0, remoteId);
      return;
    }
    const stream = new AdbStream(this, this.#nextLocalId++, remoteId);
    this.#streams.set(stream.localId, stream);
    this.send(Command.OKAY, stream.localId, remoteId);
    service(stream, this.device, this).catch((error: unknown) => {
      if (error instanceof StreamClosedError) return;
      this.onError(error);
      void stream.close();
    });
  }

  #closeStreams(): void {
    for (const stream of [...this.#streams.values()]) stream.closedByHost();
    for (const opening of this.#opening.values()) opening.reject(new StreamClosedError('connection closed'));
    this.#opening.clear();
  }
}
