import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Device } from './device.js';
import { defaultProfile, connectionBanner, type DeviceProfile } from './profile.js';
import { Command, PacketDecoder, PROTOCOL_VERSION, encodePacket, type Packet } from './protocol.js';
import { findService } from './services/index.js';
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
}

export interface VirtualDevice {
  readonly host: string;
  readonly port: number;
  readonly serial: string;
  /** The device's state: files and properties, shared by all connections. */
  readonly state: Device;
  /** Drops every connection and stops listening. */
  close(): Promise<void>;
}

/** Starts a device-side ADB daemon on TCP, reachable with `adb connect host:port`. */
export async function startVirtualDevice(options: VirtualDeviceOptions): Promise<VirtualDevice> {
  const host = options.host ?? '127.0.0.1';
  const state = new Device(options.profile);
  const onError = options.onError ?? ((error: unknown) => process.emitWarning(toError(error)));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new Connection(socket, state, onError);
  });
  await listen(server, options.port ?? 0, host);
  return {
    host,
    port: (server.address() as AddressInfo).port,
    serial: options.profile.serial,
    state,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/**
 * Starts `count` devices with the default profiles. With a base port they listen on base, base + 2, … like
 * emulators (so an ADB server started afterwards finds them from 5555 up); without one on free ports.
 */
export async function startVirtualDevices(count: number, basePort?: number): Promise<VirtualDevice[]> {
  const devices: VirtualDevice[] = [];
  try {
    for (let index = 0; index < count; index++) {
      const port = basePort === undefined ? 0 : basePort + 2 * index;
      devices.push(await startVirtualDevice({ port, profile: defaultProfile(index) }));
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
class Connection implements StreamLink {
  readonly #decoder = new PacketDecoder(MAX_PAYLOAD);
  readonly #streams = new Map<number, AdbStream>();
  #nextLocalId = 1;
  #connected = false;
  maxPayload = MAX_PAYLOAD;

  constructor(
    private readonly socket: Socket,
    private readonly device: Device,
    private readonly onError: (error: unknown) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    // A reset by the host only ends the connection; 'close' follows and cleans up.
    socket.on('error', () => undefined);
    socket.once('close', () => this.#closeStreams());
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
    if (!this.#connected) return;
    switch (packet.command) {
      case Command.OPEN:
        this.#open(packet.arg0, packet.data);
        return;
      case Command.OKAY:
        this.#streams.get(packet.arg1)?.acknowledged();
        return;
      case Command.WRTE: {
        const stream = this.#streams.get(packet.arg1);
        if (stream === undefined) return;
        stream.input.push(packet.data);
        this.send(Command.OKAY, stream.localId, stream.remoteId);
        return;
      }
      case Command.CLSE:
        this.#streams.get(packet.arg1)?.closedByHost();
        return;
    }
  }

  /** The host's CNXN (again, after a host restart): a fresh session. */
  #connect(packet: Packet): void {
    this.#closeStreams();
    this.maxPayload = Math.min(MAX_PAYLOAD, Math.max(MIN_PAYLOAD, packet.arg1));
    this.#connected = true;
    const banner = Buffer.from(connectionBanner(this.device.profile), 'utf8');
    this.send(Command.CNXN, Math.min(PROTOCOL_VERSION, packet.arg0), MAX_PAYLOAD, banner);
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
    service(stream, this.device).catch((error: unknown) => {
      if (error instanceof StreamClosedError) return;
      this.onError(error);
      void stream.close();
    });
  }

  #closeStreams(): void {
    for (const stream of [...this.#streams.values()]) stream.closedByHost();
  }
}
