import { ByteQueue, type AdbStream } from '../../adb-protocol/index.js';
import type { Device } from '../device.js';
import { LineInput, Sh, toBuffer } from '../sh.js';
import { runInteractiveShell, terminalOutput } from '../terminal.js';
import type { CommandInput, CommandIo } from '../userland/command.js';

/**
 * Packet ids of the shell protocol (`shell_v2`): one id byte, a u32 LE length, the data. The host's stdin packets
 * feed the command's standard input, close-stdin ends it, and window-size packets are ignored (the size changes
 * nothing on the virtual device).
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
  /** A pty: output lines end in CR LF, stderr goes with stdout, and with no command the shell is interactive. */
  pty: boolean;
  command: string;
}

/**
 * Reads `shell:<cmd>`, `shell,<args>:<cmd>` (args among `v2`, `raw`, `pty`, `TERM=…`, in any order) and
 * `exec:<cmd>`. As adbd does, a shell gets a pty when it has no command and none of `raw`/`pty` says otherwise;
 * `exec:` never has one. Unknown args are ignored.
 */
export function parseShellService(name: string): ShellRequest | undefined {
  if (name.startsWith('exec:')) return { protocol: 'none', pty: false, command: name.slice('exec:'.length) };
  const match = /^shell(?:,([^:]*))?:(.*)$/s.exec(name);
  if (match === null) return undefined;
  const args = (match[1] ?? '').split(',');
  const command = match[2] ?? '';
  const pty = args.includes('pty') || (!args.includes('raw') && command === '');
  return { protocol: args.includes('v2') ? 'v2' : 'none', pty, command };
}

function encodeShellPacket(id: number, data: Buffer): Buffer {
  const packet = Buffer.allocUnsafe(SHELL_PACKET_HEADER_SIZE + data.length);
  packet.writeUInt8(id, 0);
  packet.writeUInt32LE(data.length, 1);
  data.copy(packet, SHELL_PACKET_HEADER_SIZE);
  return packet;
}

/**
 * Runs the command, sends its output (framed for v2, with the exit code last), then closes the stream. Without a
 * command, runs a shell: interactive on a pty, else reading its script from the standard input.
 */
export async function runShell(stream: AdbStream, device: Device, request: ShellRequest): Promise<void> {
  const v2 = request.protocol === 'v2';
  const stdin = v2 ? shellProtocolInput(stream) : stream.input;
  const write = (id: number) => (data: Buffer | string) =>
    v2 ? writeFramed(stream, id, toBuffer(data)) : stream.write(toBuffer(data));
  const stdout = request.pty ? terminalOutput(write(ShellPacket.STDOUT)) : write(ShellPacket.STDOUT);
  const io: CommandIo = { stdin, stdout, stderr: request.pty ? stdout : write(ShellPacket.STDERR), signal: stream.signal };
  let status: number;
  if (request.command !== '') status = await device.userland.run(request.command, io);
  else if (request.pty) status = await runInteractiveShell(device.userland, stdin, io);
  else status = await new Sh(device.userland).runInput(new LineInput(stdin), io);
  if (v2) await stream.write(encodeShellPacket(ShellPacket.EXIT, Buffer.of(status & 0xff)));
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
