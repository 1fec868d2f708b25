import { ByteQueue } from '../../src/adb-protocol/index.js';
import type { Device } from '../../src/virtual-device/device.js';

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs one command line on a device's userland with the given standard input and collects what it printed. */
export async function runCommand(device: Device, line: string, input: Buffer | Buffer[] = []): Promise<CommandResult> {
  let stdout = '';
  let stderr = '';
  const stdin = new ByteQueue();
  for (const chunk of Array.isArray(input) ? input : [input]) stdin.push(chunk);
  stdin.end();
  const status = await device.userland.run(line, {
    stdin,
    stdout: async (data) => void (stdout += data.toString()),
    stderr: async (data) => void (stderr += data.toString()),
    signal: new AbortController().signal,
  });
  return { status, stdout, stderr };
}
