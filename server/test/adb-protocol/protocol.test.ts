import { describe, expect, it } from 'vitest';
import { Command, HEADER_SIZE, PacketDecoder, ProtocolError, checksum, encodePacket } from '../../src/adb-protocol/protocol.js';

const open = encodePacket({ command: Command.OPEN, arg0: 7, arg1: 0, data: Buffer.from('shell:echo hi\0') });
const okay = encodePacket({ command: Command.OKAY, arg0: 1, arg1: 7, data: Buffer.alloc(0) });

describe('the ADB packet codec', () => {
  it('encodes the 24-byte header: command, args, length, byte-sum checksum, magic', () => {
    expect(open.length).toBe(HEADER_SIZE + 14);
    expect(open.toString('latin1', 0, 4)).toBe('OPEN');
    expect(open.readUInt32LE(4)).toBe(7);
    expect(open.readUInt32LE(8)).toBe(0);
    expect(open.readUInt32LE(12)).toBe(14);
    expect(open.readUInt32LE(16)).toBe(checksum(Buffer.from('shell:echo hi\0')));
    expect(open.readUInt32LE(20)).toBe((Command.OPEN ^ 0xffffffff) >>> 0);
    expect(open.subarray(HEADER_SIZE).toString()).toBe('shell:echo hi\0');
  });

  it('names the commands by their ASCII letters', () => {
    for (const [name, value] of Object.entries(Command)) {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32LE(value);
      expect(bytes.toString('latin1')).toBe(name);
    }
  });

  it('sums bytes without overflowing', () => {
    expect(checksum(Buffer.from([1, 2, 255]))).toBe(258);
    expect(checksum(Buffer.alloc(0))).toBe(0);
  });

  it('decodes several packets from one chunk', () => {
    const packets = new PacketDecoder(4096).push(Buffer.concat([open, okay]));
    expect(packets.map((p) => [p.command, p.arg0, p.arg1, p.data.toString()])).toEqual([
      [Command.OPEN, 7, 0, 'shell:echo hi\0'],
      [Command.OKAY, 1, 7, ''],
    ]);
  });

  it('decodes packets split at every byte boundary', () => {
    const stream = Buffer.concat([open, okay, open]);
    for (let split = 1; split < stream.length; split++) {
      const decoder = new PacketDecoder(4096);
      const packets = [...decoder.push(stream.subarray(0, split)), ...decoder.push(stream.subarray(split))];
      expect(packets.map((p) => p.command)).toEqual([Command.OPEN, Command.OKAY, Command.OPEN]);
      expect(packets[2]?.data.toString()).toBe('shell:echo hi\0');
    }
  });

  it('decodes a stream fed one byte at a time', () => {
    const decoder = new PacketDecoder(4096);
    const packets = [...Buffer.concat([okay, open])].flatMap((byte) => decoder.push(Buffer.of(byte)));
    expect(packets.map((p) => p.command)).toEqual([Command.OKAY, Command.OPEN]);
  });

  it('rejects a bad magic and an oversized payload', () => {
    const broken = Buffer.from(open);
    broken.writeUInt32LE(0, 20);
    expect(() => new PacketDecoder(4096).push(broken)).toThrow(ProtocolError);
    expect(() => new PacketDecoder(8).push(open)).toThrow(/exceeds 8/);
  });
});
