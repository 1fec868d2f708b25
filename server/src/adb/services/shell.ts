import { ByteQueue } from '../chunk-buffer.js';
import type { Device } from '../device.js';
import type { AdbStream } from '../stream.js';
import type { CommandInput, CommandIo } from '../userland.js';

/**
 * Packet ids of the shell protocol (`shell_v2`): one id byte, a u32 LE length, the data. The host's stdin packets
 * feed the command's standard input, close-stdin ends it, and window-size packets are ignored (no pty here).
 */
export const ShellPacket = {
  STDIN: 0,
  STDOUT: 1,
  STDERR: 2,
  EXIT: 3,
  CLOSE_STDIN: 4,
  WINDOW_SIZE: 5,
} as const;

const SHELL_PACKET_HEADER_SIZE = 5;

export interface ShellRequest {
  /** `v2` frames output and reports the exit code; `none` sends raw bytes and just closes. */
  protocol: 'v2' | 'none';
  command: string;
}

/**
 * Reads `shell:<cmd>`, `shell,<args>:<cmd>` (args among `v2`, `raw`, `pty`, `TERM=…`, in any order) and
 * `exec:<cmd>`. Unknown args are ignored, as adbd does.
 */
export function parseShellService(name: string): ShellRequest | undefined {
  if (name.startsWith('exec:')) return { protocol: 'none', command: name.slice('exec:'.length) };
  const match = /^shell(?:,([^:]*))?:(.*)$/s.exec(name);
  if (match === null) return undefined;
  const args = (match[1] ?? '').split(',');
  return { protocol: args.includes('v2') ? 'v2' : 'none', command: match[2] ?? '' };
}

function encodeShellPacket(id: number, data: Buffer): Buffer {
  const packet = Buffer.allocUnsafe(SHELL_PACKET_HEADER_SIZE + data.length);
  packet.writeUInt8(id, 0);
  packet.writeUInt32LE(data.length, 1);
  data.copy(packet, SHELL_PACKET_HEADER_SIZE);
  return packet;
}

/** Runs the command, sends its output (framed for v2, with the exit code last), then closes the stream. */
export async function runShell(stream: AdbStream, device: Device, request: ShellRequest): Promise<void> {
  const io: CommandIo =
    request.protocol === 'v2'
      ? {
          stdout: (data) => writeFramed(stream, ShellPacket.STDOUT, toBuffer(data)),
          stderr: (data) => writeFramed(stream, ShellPacket.STDERR, toBuffer(data)),
          stdin: shellProtocolInput(stream),
          signal: stream.signal,
        }
      : {
          stdin: stream.input,
          stdout: (data) => stream.write(toBuffer(data)),
          stderr: (data) => stream.write(toBuffer(data)),
          signal: stream.signal,
        };
  const status = await device.userland.run(request.command, io);
  if (request.protocol === 'v2') await stream.write(encodeShellPacket(ShellPacket.EXIT, Buffer.of(status & 0xff)));
  await stream.close();
}

/** The stdin packets' data, until close-stdin or the end of the stream; other packets are skipped. */
function shellProtocolInput(stream: AdbStream): CommandInput {
  const input = new ByteQueue();
  const demultiplex = async (): Promise<void> => {
    for (;;) {
      const header = await stream.input.read(SHELL_PACKET_HEADER_SIZE);
      if (header === undefined) break;
      const data = await stream.input.read(header.readUInt32LE(1));
      if (data === undefined) break;
      const id = header.readUInt8(0);
      if (id === ShellPacket.CLOSE_STDIN) break;
      if (id === ShellPacket.STDIN) input.push(data);
    }
    input.end();
  };
  void demultiplex();
  return input;
}

/** Output in packets that each fit one WRTE. */
async function writeFramed(stream: AdbStream, id: number, data: Buffer): Promise<void> {
  const room = stream.maxPayload - SHELL_PACKET_HEADER_SIZE;
  for (let offset = 0; offset < data.length; offset += room) {
    await stream.write(encodeShellPacket(id, data.subarray(offset, offset + room)));
  }
}

function toBuffer(data: Buffer | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}
