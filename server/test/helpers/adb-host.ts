import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface AdbResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A private `adb nodaemon server` (Debian's adb) on a free port with its own HOME, and a client bound to it. */
export interface AdbHost {
  readonly port: number;
  /** The server's HOME; it writes its key pair to `.android/adbkey{,.pub}` there when it starts. */
  readonly home: string;
  /** Runs `adb -P <port> …args`; never starts another server because this one is already up. */
  run(...args: string[]): Promise<AdbResult>;
  stop(): Promise<void>;
}

const DEADLINE_MS = 15_000;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `port`: listen there (to restart a server where a killed one was); a free port by default. */
export async function startAdbHost(options: { port?: number } = {}): Promise<AdbHost> {
  const home = await mkdtemp(join(tmpdir(), 'cloudphone-adb-'));
  const port = options.port ?? (await freePort());
  const env = { ...process.env, HOME: home, ANDROID_ADB_SERVER_PORT: String(port) };
  const server = spawn('adb', ['-P', String(port), 'nodaemon', 'server'], { env, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
    await exited;
    await rm(home, { recursive: true, force: true });
  };
  try {
    await waitForListener(port, server);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    home,
    run: (...args) => runAdb(['-P', String(port), ...args], env),
    stop,
  };
}

function runAdb(args: string[], env: NodeJS.ProcessEnv): Promise<AdbResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('adb', args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: DEADLINE_MS });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === null) reject(new Error(`adb ${args.join(' ')} ended by ${signal}`));
      else resolve({ code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() });
    });
  });
}

/** Polls until the server accepts connections, within a bounded deadline. */
async function waitForListener(port: number, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`adb server exited with ${server.exitCode}`);
    if (await accepts(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`adb server did not listen on ${port} within ${DEADLINE_MS} ms`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** `adb connect` to a virtual device on 127.0.0.1 and waits until it is `device`; resolves its serial. */
export async function connectDevice(adb: AdbHost, port: number): Promise<string> {
  const serial = `127.0.0.1:${port}`;
  const connected = await adb.run('connect', serial);
  if (!connected.stdout.includes(`connected to ${serial}`)) throw new Error(`adb connect ${serial}: ${connected.stdout}`);
  const waited = await adb.run('-s', serial, 'wait-for-device');
  if (waited.code !== 0) throw new Error(`adb wait-for-device ${serial}: ${waited.stderr}`);
  return serial;
}
