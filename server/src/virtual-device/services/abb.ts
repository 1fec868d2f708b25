import type { Device } from '../device.js';
import type { AdbStream } from '../../adb-protocol/index.js';
import { cmd } from '../userland/packages.js';

/**
 * `abb_exec:<service>\0<arg>\0…`: runs `cmd <service> <args>` without a shell. Standard input is what the host
 * writes on the stream; stdout and stderr go back raw, then the stream closes.
 */
export async function runAbbExec(stream: AdbStream, device: Device, request: string): Promise<void> {
  const argv = request.split('\0');
  if (argv[argv.length - 1] === '') argv.pop();
  await cmd(
    argv,
    {
      stdin: stream.input,
      stdout: (data) => stream.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data),
      stderr: (data) => stream.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data),
      signal: stream.signal,
    },
    device.userland,
  );
  await stream.close();
}
