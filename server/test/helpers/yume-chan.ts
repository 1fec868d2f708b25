import { createConnection } from 'node:net';
import {
  Adb,
  AdbDaemonTransport,
  AdbPacket,
  AdbPacketSerializeStream,
  AdbServerClient,
  type AdbCredentialStore,
  type AdbDaemonConnection,
} from '@yume-chan/adb';
import { AdbServerNodeTcpConnector } from '@yume-chan/adb-server-node-tcp';
import {
  Consumable,
  PushReadableStream,
  ReadableStream,
  StructDeserializeStream,
  WritableStream,
  pipeFrom,
  tryClose,
} from '@yume-chan/stream-extra';

/** A credential store without keys: a device without AUTH never asks for one. */
const NO_KEYS: AdbCredentialStore = {
  generateKey() {
    throw new Error('the virtual device needs no key');
  },
  *iterateKeys() {},
};

/** @yume-chan/adb straight over TCP to a device, with no adb binary or server in between. */
export async function connectDirect(host: string, port: number): Promise<Adb> {
  const socket = createConnection({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.setNoDelay(true);
  const bytes = new PushReadableStream<Uint8Array>((controller) => {
    socket.on('data', (data: Buffer) => {
      socket.pause();
      void controller.enqueue(data).then(() => socket.resume());
    });
    socket.once('end', () => tryClose(controller));
    socket.once('error', (error) => controller.error(error));
  });
  const sink = new WritableStream<Consumable<Uint8Array>>({
    write: (chunk) =>
      chunk.tryConsume(
        (data) => new Promise<void>((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve()))),
      ),
    close: () => void socket.end(),
  });
  const connection: AdbDaemonConnection = {
    readable: bytes.pipeThrough(new StructDeserializeStream(AdbPacket)) as ReadableStream<AdbPacket>,
    writable: pipeFrom(sink, new AdbPacketSerializeStream()),
  };
  const transport = await AdbDaemonTransport.authenticate({
    serial: `${host}:${port}`,
    connection,
    credentialStore: NO_KEYS,
  });
  return new Adb(transport);
}

/** A client of the ADB server on `port` (the real adb's), and the device at `address` through it (connected if need be). */
export async function connectThroughServer(port: number, address: string): Promise<{ client: AdbServerClient; adb: Adb }> {
  const client = new AdbServerClient(new AdbServerNodeTcpConnector({ host: '127.0.0.1', port }));
  try {
    await client.wireless.connect(address);
  } catch (error) {
    if (!(error instanceof AdbServerClient.AlreadyConnectedError)) throw error;
  }
  await client.waitFor({ serial: address }, 'device');
  return { client, adb: await client.createAdb({ serial: address }) };
}

/** A readable stream of `data` in chunks, for `sync.write`. */
export function chunked(data: Uint8Array, size = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= data.length) {
        controller.close();
        return;
      }
      controller.enqueue(data.subarray(offset, offset + size));
      offset += size;
    },
  });
}

/** Everything a readable stream of bytes yields, joined. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const reader = stream.getReader();
  for (let result = await reader.read(); !result.done; result = await reader.read()) chunks.push(Buffer.from(result.value));
  return Buffer.concat(chunks);
}
