import type { Device } from '../device.js';
import type { AdbStream } from '../stream.js';
import { parseShellService, runShell } from './shell.js';
import { runSync } from './sync.js';

/** Serves one opened stream until it is done; the stream is already acknowledged. */
export type Service = (stream: AdbStream, device: Device) => Promise<void>;

/** The service for an OPEN payload, with or without its trailing NUL; undefined for services the device lacks. */
export function findService(payload: Buffer): Service | undefined {
  const name = payload.toString('utf8').replace(/\0+$/, '');
  if (name === 'sync:') return runSync;
  const shell = parseShellService(name);
  if (shell !== undefined) return (stream, device) => runShell(stream, device, shell);
  return undefined;
}
