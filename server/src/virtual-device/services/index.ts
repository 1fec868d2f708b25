import type { Device } from '../device.js';
import type { AdbStream } from '../../adb-protocol/index.js';
import { runAbbExec } from './abb.js';
import { runFramebuffer } from './framebuffer.js';
import { runReverse, type ReverseForwards } from './reverse.js';
import { parseShellService, runShell } from './shell.js';
import { runSync } from './sync.js';
import { parseTcpService, runTcp } from './tcp.js';

/** What a service may use of the host connection that opened it. */
export interface HostConnection {
  /** The connection's `adb reverse` forwards. */
  readonly reverse: ReverseForwards;
}

/** Serves one opened stream until it is done; the stream is already acknowledged. */
export type Service = (stream: AdbStream, device: Device, connection: HostConnection) => Promise<void>;

/** The service for an OPEN payload, with or without its trailing NUL; undefined for services the device lacks. */
export function findService(payload: Buffer | string): Service | undefined {
  const name = (typeof payload === 'string' ? payload : payload.toString('utf8')).replace(/\0+$/, '');
  if (name === 'sync:') return runSync;
  if (name === 'framebuffer:') return runFramebuffer;
  if (name.startsWith('reboot:')) return rebootService;
  if (name.startsWith('abb_exec:')) {
    return (stream, device) => runAbbExec(stream, device, name.slice('abb_exec:'.length));
  }
  if (name.startsWith('reverse:')) {
    const request = name.slice('reverse:'.length);
    return (stream, _device, connection) => runReverse(stream, connection.reverse, request);
  }
  const tcpPort = parseTcpService(name);
  if (tcpPort !== undefined) return (stream) => runTcp(stream, tcpPort);
  const shell = parseShellService(name);
  if (shell !== undefined) return (stream, device) => runShell(stream, device, shell);
  return undefined;
}

/** `reboot:[target]`: closes the stream, then the device goes down and comes back; every target is a plain reboot. */
async function rebootService(stream: AdbStream, device: Device): Promise<void> {
  await stream.close();
  device.reboot();
}
