import { createConnection, type Socket } from 'node:net';
import { Command, PacketDecoder, PROTOCOL_VERSION, encodePacket, type Packet } from '../../src/adb-protocol/index.js';

/** A minimal ADB host over TCP for in-process tests: raw packets in and out, nothing automatic. */
export class TestHost {
  readonly #received: Packet[] = [];
  #waiting: ((packet: Packet) => void) | undefined;

  private constructor(private readonly socket: Socket) {
    const decoder = new PacketDecoder(16 * 1024 * 1024);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const packet of decoder.push(chunk)) this.#deliver(packet);
    });
  }

  static async connect(port: number, maxPayload = 1024 * 1024): Promise<{ host: TestHost; reply: Packet }> {
    const socket = createConnection({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const host = new TestHost(socket);
    host.send(Command.CNXN, PROTOCOL_VERSION, maxPayload, Buffer.from('host::features=shell_v2\0'));
    return { host, reply: await host.next() };
  }

  send(command: number, arg0: number, arg1: number, data: Buffer = Buffer.alloc(0)): void {
    this.socket.write(encodePacket({ command, arg0, arg1, data }));
  }

  next(): Promise<Packet> {
    const packet = this.#received.shift();
    if (packet !== undefined) return Promise.resolve(packet);
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /** Opens a service and returns the device's local id, or undefined when the device refused it with CLSE. */
  async open(localId: number, service: string): Promise<number | undefined> {
    this.send(Command.OPEN, localId, 0, Buffer.from(service));
    const reply = await this.next();
    if (reply.command === Command.CLSE) return undefined;
    if (reply.command !== Command.OKAY || reply.arg1 !== localId) throw new Error('unexpected reply to OPEN');
    return reply.arg0;
  }

  /** Reads the stream's data until the device closes it, acknowledging every WRTE; returns the WRTE payloads. */
  async readUntilClose(localId: number, remoteId: number): Promise<Buffer[]> {
    const payloads: Buffer[] = [];
    for (;;) {
      const packet = await this.next();
      if (packet.command === Command.CLSE) return payloads;
      if (packet.command !== Command.WRTE || packet.arg1 !== localId) throw new Error('unexpected packet');
      payloads.push(packet.data);
      this.send(Command.OKAY, localId, remoteId);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  #deliver(packet: Packet): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting !== undefined) waiting(packet);
    else this.#received.push(packet);
  }
}
