import { ChunkBuffer } from './chunk-buffer.js';

/** Transport commands: the four ASCII letters read as a little-endian u32. */
export const Command = {
  CNXN: 0x4e584e43,
  AUTH: 0x48545541,
  OPEN: 0x4e45504f,
  OKAY: 0x59414b4f,
  WRTE: 0x45545257,
  CLSE: 0x45534c43,
} as const;

/** The protocol version a device answers with (adb 1.0.41, checksums optional). */
export const PROTOCOL_VERSION = 0x01000001;

export const HEADER_SIZE = 24;

export interface Packet {
  command: number;
  arg0: number;
  arg1: number;
  data: Buffer;
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** The sum of all bytes, as the header's checksum field carries it. */
export function checksum(data: Uint8Array): number {
  let sum = 0;
  for (const byte of data) sum += byte;
  return sum >>> 0;
}

export function encodePacket(packet: Packet): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + packet.data.length);
  out.writeUInt32LE(packet.command, 0);
  out.writeUInt32LE(packet.arg0 >>> 0, 4);
  out.writeUInt32LE(packet.arg1 >>> 0, 8);
  out.writeUInt32LE(packet.data.length, 12);
  out.writeUInt32LE(checksum(packet.data), 16);
  out.writeUInt32LE((packet.command ^ 0xffffffff) >>> 0, 20);
  packet.data.copy(out, HEADER_SIZE);
  return out;
}

/**
 * Reassembles packets from TCP chunks: a packet may span chunks and a chunk may hold several packets. The checksum
 * is not verified, because hosts speaking version 0x01000001 send zero there.
 */
export class PacketDecoder {
  readonly #buffer = new ChunkBuffer();
  #header: Buffer | undefined;

  constructor(private readonly maxPayload: number) {}

  push(chunk: Buffer): Packet[] {
    this.#buffer.push(chunk);
    const packets: Packet[] = [];
    for (;;) {
      if (this.#header === undefined) {
        if (this.#buffer.length < HEADER_SIZE) return packets;
        this.#header = this.#readHeader(this.#buffer.take(HEADER_SIZE));
      }
      const length = this.#header.readUInt32LE(12);
      if (this.#buffer.length < length) return packets;
      const header = this.#header;
      this.#header = undefined;
      packets.push({
        command: header.readUInt32LE(0),
        arg0: header.readUInt32LE(4),
        arg1: header.readUInt32LE(8),
        data: length === 0 ? Buffer.alloc(0) : this.#buffer.take(length),
      });
    }
  }

  #readHeader(header: Buffer): Buffer {
    const command = header.readUInt32LE(0);
    if (header.readUInt32LE(20) !== (command ^ 0xffffffff) >>> 0) {
      throw new ProtocolError(`bad magic for command 0x${command.toString(16)}`);
    }
    const length = header.readUInt32LE(12);
    if (length > this.maxPayload) throw new ProtocolError(`payload of ${length} bytes exceeds ${this.maxPayload}`);
    return header;
  }
}
