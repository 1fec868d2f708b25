import { createConnection, type Socket } from 'node:net';
import type { AdbStream } from '../../adb-protocol/index.js';

/**
 * The port of `tcp:<port>`, the service a host opens for each connection to an `adb forward` to the device; undefined
 * for other names or ports out of range.
 */
export function parseTcpService(name: string): number | undefined {
  const match = /^tcp:(\d{1,5})$/.exec(name);
  if (match === null) return undefined;
  const port = Number(match[1]);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/**
 * Connects to `port` on the device's localhost, which is the loopback of the machine running the virtual device, and
 * pipes both ways. The stream closes when the connection fails or ends.
 */
export async function runTcp(stream: AdbStream, port: number): Promise<void> {
  await pipeSocket(stream, createConnection({ port, host: '127.0.0.1' }));
}

/**
 * Pipes an open stream and a socket (connected or connecting) both ways with flow control on each side: the next
 * chunk from the socket waits for the host's OKAY, and the host's next WRTE waits until the socket has taken the last
 * one. Closes both when either ends or fails.
 */
export async function pipeSocket(stream: AdbStream, socket: Socket): Promise<void> {
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  stream.pipeInputTo(
    (data) =>
      new Promise((resolve, reject) => {
        socket.write(data, (error) => (error ? reject(error) : resolve()));
      }),
  );
  stream.signal.addEventListener('abort', () => socket.end(), { once: true });
  try {
    for await (const chunk of socket as AsyncIterable<Buffer>) await stream.write(chunk);
  } catch {
    // The socket failed or the host closed the stream; either way both ends are closed now.
  }
  socket.destroy();
  await stream.close();
}
