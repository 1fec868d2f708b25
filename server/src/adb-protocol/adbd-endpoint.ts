import type { KeyObject } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { AuthType, newAuthToken, verifyAdbSignature } from './auth.js';
import { Command, PacketDecoder, PROTOCOL_VERSION, encodePacket, type Packet } from './protocol.js';
import { AdbStream, StreamClosedError, type StreamLink } from './stream.js';

/** The largest payload the device accepts, announced in its CNXN. */
export const MAX_PAYLOAD = 256 * 1024;
/** The maxdata of the first protocol version; a host announcing less is treated as announcing this. */
const MIN_PAYLOAD = 4096;

/** Serves one stream the host opened, until it is done; the stream is already acknowledged (OKAY sent). */
export type StreamHandler = (stream: AdbStream) => Promise<void>;

/**
 * The handler of a service name (the OPEN payload without its trailing NUL), or undefined when there is no such
 * service (the host gets CLSE). A promise delays the OKAY until it settles: a resolver that must open something
 * first (a socket on a real device) answers OKAY only once that worked, and CLSE when it resolves undefined or
 * rejects.
 */
export type ServiceResolver = (
  name: string,
  endpoint: AdbdEndpoint,
) => StreamHandler | undefined | Promise<StreamHandler | undefined>;

export interface AdbdEndpointOptions {
  /** The CNXN payload, such as `device::ro.product.name=…;ro.product.model=…;ro.product.device=…;features=…`. */
  banner: string | (() => string);
  services: ServiceResolver;
  /**
   * With it, a host must sign the AUTH token with one of these keys before it gets the CNXN; other hosts see the
   * device as `unauthorized`. Without it, no AUTH: every host is accepted.
   */
  authorizedKeys?: readonly KeyObject[];
  /** Errors a handler did not expect (its stream is then closed). */
  onError: (error: unknown) => void;
}

/**
 * The device side of one ADB transport over any byte duplex (a TCP socket, a WebSocket stream…): the handshake
 * (CNXN, optional AUTH), and the streams the host opens, each with per-stream flow control (see AdbStream).
 */
export class AdbdEndpoint implements StreamLink {
  readonly #decoder = new PacketDecoder(MAX_PAYLOAD);
  readonly #streams = new Map<number, AdbStream>();
  /** Streams the device opened towards the host, waiting for the host's OKAY or CLSE. */
  readonly #opening = new Map<number, { resolve(stream: AdbStream): void; reject(error: Error): void }>();
  readonly #closeListeners: (() => void)[] = [];
  #nextLocalId = 1;
  #connected = false;
  /** Counts host CNXNs: a stream resolved asynchronously belongs to the session it was opened in. */
  #session = 0;
  #ended = false;
  /** The token of the last AUTH(TOKEN), while the host is not yet authorised. */
  #token: Buffer | undefined;
  #hostVersion = PROTOCOL_VERSION;
  maxPayload = MAX_PAYLOAD;

  constructor(
    private readonly duplex: Duplex,
    private readonly options: AdbdEndpointOptions,
  ) {
    const noDelay = (duplex as Partial<{ setNoDelay(noDelay?: boolean): unknown }>).setNoDelay;
    if (typeof noDelay === 'function') noDelay.call(duplex, true);
    duplex.on('data', (chunk: Buffer | string) => this.#receive(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    // A reset by the host only ends the connection; 'close' follows and cleans up.
    duplex.on('error', () => this.drop());
    // The host's EOF ends the transport, as in adbd.
    duplex.once('end', () => this.drop());
    duplex.once('close', () => this.#end());
  }

  /** Whether the transport is gone. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Runs `listener` once when the transport ends (at once if it already has). */
  onClose(listener: () => void): void {
    if (this.#ended) listener();
    else this.#closeListeners.push(listener);
  }

  /** Ends the connection, as when the device goes away. */
  drop(): void {
    if (!this.duplex.destroyed) this.duplex.destroy();
    this.#end();
  }

  send(command: number, arg0: number, arg1: number, data: Buffer = Buffer.alloc(0)): void {
    if (!this.duplex.destroyed && !this.#ended) this.duplex.write(encodePacket({ command, arg0, arg1, data }));
  }

  release(localId: number): void {
    this.#streams.delete(localId);
  }

  /** Opens a stream towards the host (an `adb reverse` connection); rejects if the host refuses it. */
  openToHost(service: string): Promise<AdbStream> {
    if (!this.#connected || this.#ended) return Promise.reject(new StreamClosedError('not connected'));
    const localId = this.#nextLocalId++;
    return new Promise((resolve, reject) => {
      this.#opening.set(localId, { resolve, reject });
      this.send(Command.OPEN, localId, 0, Buffer.from(`${service}\0`));
    });
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#connected = false;
    this.#closeStreams();
    for (const listener of this.#closeListeners.splice(0)) {
      try {
        listener();
      } catch (error) {
        this.options.onError(error);
      }
    }
  }

  #receive(chunk: Buffer): void {
    if (this.#ended) return;
    let packets: Packet[];
    try {
      packets = this.#decoder.push(chunk);
    } catch {
      // A malformed packet means the transport is out of step; adbd drops the connection too.
      this.drop();
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
    this.#session++;
    this.maxPayload = Math.min(MAX_PAYLOAD, Math.max(MIN_PAYLOAD, packet.arg1));
    this.#hostVersion = packet.arg0;
    this.#connected = false;
    if (this.options.authorizedKeys === undefined) this.#accept();
    else this.#sendToken();
  }

  /**
   * AUTH from the host: a SIGNATURE of the token by an authorised key gets the CNXN, any other a new token. A
   * RSAPUBLICKEY is the host asking the user to accept its key; nobody answers, so the host stays unauthorised.
   */
  #authenticate(packet: Packet): void {
    if (packet.arg0 !== AuthType.SIGNATURE || this.#token === undefined) return;
    const token = this.#token;
    if (this.options.authorizedKeys?.some((key) => verifyAdbSignature(key, token, packet.data))) this.#accept();
    else this.#sendToken();
  }

  #sendToken(): void {
    this.#token = newAuthToken();
    this.send(Command.AUTH, AuthType.TOKEN, 0, this.#token);
  }

  #accept(): void {
    this.#token = undefined;
    this.#connected = true;
    const banner = typeof this.options.banner === 'function' ? this.options.banner() : this.options.banner;
    this.send(Command.CNXN, Math.min(PROTOCOL_VERSION, this.#hostVersion), MAX_PAYLOAD, Buffer.from(banner, 'utf8'));
  }

  #open(remoteId: number, payload: Buffer): void {
    const name = payload.toString('utf8').replace(/\0+$/, '');
    let resolved: ReturnType<ServiceResolver>;
    try {
      resolved = this.options.services(name, this);
    } catch (error) {
      this.options.onError(error);
      resolved = undefined;
    }
    if (!(resolved instanceof Promise)) {
      this.#start(remoteId, resolved);
      return;
    }
    const session = this.#session;
    resolved.then(
      (handler) => {
        if (session === this.#session && this.#connected) {
          this.#start(remoteId, handler);
          return;
        }
        // The transport (or session) went away meanwhile: the handler still runs, on a closed stream, to clean up.
        if (handler === undefined) return;
        const stream = new AdbStream(this, this.#nextLocalId++, remoteId);
        stream.closedByHost();
        this.#run(stream, handler);
      },
      (error: unknown) => {
        if (!(error instanceof StreamClosedError)) this.options.onError(error);
        if (session === this.#session) this.send(Command.CLSE, 0, remoteId);
      },
    );
  }

  #start(remoteId: number, handler: StreamHandler | undefined): void {
    if (handler === undefined) {
      this.send(Command.CLSE, 0, remoteId);
      return;
    }
    const stream = new AdbStream(this, this.#nextLocalId++, remoteId);
    this.#streams.set(stream.localId, stream);
    this.send(Command.OKAY, stream.localId, remoteId);
    this.#run(stream, handler);
  }

  #run(stream: AdbStream, handler: StreamHandler): void {
    let running: Promise<void>;
    try {
      running = handler(stream);
    } catch (error) {
      running = Promise.reject(error);
    }
    running.catch((error: unknown) => {
      if (error instanceof StreamClosedError) return;
      this.options.onError(error);
      void stream.close();
    });
  }

  #closeStreams(): void {
    for (const stream of [...this.#streams.values()]) stream.closedByHost();
    for (const opening of this.#opening.values()) opening.reject(new StreamClosedError('connection closed'));
    this.#opening.clear();
  }
}
