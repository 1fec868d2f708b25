import type { Readable } from 'node:stream';
import type { Adb } from '@yume-chan/adb';
import { createWebSocketStream, type WebSocket } from 'ws';
import { callerOf } from '../caller.js';
import { ApiError } from '../http/errors.js';
import { webSocketHandler, type Handlers, type RequestContext } from '../http/handler.js';
import type { LeaseService } from '../leases/service.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import {
  DeviceCommandError,
  DeviceFileNotFoundError,
  DeviceOfflineError,
  DevicePathRefusedError,
  DeviceStorageFullError,
  DeviceTimeoutError,
  InvalidDevicePathError,
} from './adb/errors.js';
import {
  dumpLogcat,
  followLogcat,
  listDirectory,
  listPackages,
  openShellSession,
  pullFile,
  pushFile,
  rebootDevice,
  runShell,
  sendInput,
  takeScreenshot,
  validateDevicePath,
  type LogcatFilter,
  type ShellSession,
} from './adb/operations.js';
import type { DeviceInventory } from './inventory.js';
import { serveAdbTunnel } from './tunnel/adb-proxy.js';
import type { DeviceSessions } from './sessions.js';

export type DeviceHandlers = Pick<
  Handlers,
  | 'listDevices'
  | 'getDevice'
  | 'updateDevice'
  | 'runDeviceShell'
  | 'openDeviceShell'
  | 'listDeviceFiles'
  | 'pushDeviceFile'
  | 'pullDeviceFile'
  | 'takeDeviceScreenshot'
  | 'getDeviceLogcat'
  | 'followDeviceLogcat'
  | 'rebootDevice'
  | 'sendDeviceInput'
  | 'listDevicePackages'
  | 'openDeviceAdbTunnel'
>;

export interface DeviceHandlerDeps {
  inventory: DeviceInventory;
  leases: LeaseService;
  /** Open WebSocket sessions per device, closed when the lease that allowed them ends. */
  sessions: DeviceSessions;
  /** The largest file `pushDeviceFile` accepts. */
  maxPushBytes: number;
}

const DEFAULT_SHELL_TIMEOUT_SECONDS = 60;
const DEFAULT_REBOOT_TIMEOUT_SECONDS = 120;
/** How long a reboot may take to start: the device must drop its connection within this. */
const REBOOT_START_MS = 30_000;

/** The device-layer failure as the API reports it; anything else is rethrown as is. */
export function deviceProblem(error: unknown, deviceId: string): unknown {
  if (error instanceof ApiError) return error;
  if (error instanceof DeviceOfflineError) {
    return new ApiError('device_offline', `Device ${deviceId} went offline: ${error.message}.`);
  }
  if (error instanceof DeviceTimeoutError) return new ApiError('device_timeout', `${capitalise(error.message)}.`);
  if (error instanceof DeviceFileNotFoundError) {
    return new ApiError('file_not_found', `There is no file ${error.path} on device ${deviceId}.`);
  }
  if (error instanceof InvalidDevicePathError) {
    return new ApiError('invalid_device_path', `${capitalise(error.message)}.`, {
      errors: [{ field: '/path', message: error.message }],
    });
  }
  if (error instanceof DevicePathRefusedError) {
    return new ApiError('device_path_refused', `Device ${deviceId} refused ${error.path}: ${error.message}.`, {
      errors: [{ field: '/path', message: error.message }],
    });
  }
  if (error instanceof DeviceStorageFullError) {
    return new ApiError('device_storage_full', `Device ${deviceId} has no room for ${error.path}: ${error.message}.`);
  }
  if (error instanceof DeviceCommandError) {
    return new ApiError('device_command_failed', `Device ${deviceId}: ${error.message}`);
  }
  return error;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function devicePath(path: string): string {
  try {
    return validateDevicePath(path);
  } catch (error) {
    throw deviceProblem(error, '');
  }
}

function logcatFilter(query: { priority?: LogcatFilter['priority']; tag?: string[]; pid?: number; tail?: number }): LogcatFilter {
  return {
    ...(query.priority !== undefined ? { priority: query.priority } : {}),
    ...(query.tag !== undefined && query.tag.length > 0 ? { tags: query.tag } : {}),
    ...(query.pid !== undefined ? { pid: query.pid } : {}),
    ...(query.tail !== undefined ? { tail: query.tail } : {}),
  };
}

/** Client messages of a shell stream queued before the socket stops reading. */
const MAX_PENDING_MESSAGES = 16;

/** One client message of a shell stream: binary is stdin; text is a JSON control message. */
async function applyShellMessage(shell: ShellSession, bytes: Buffer, isBinary: boolean): Promise<void> {
  if (isBinary) {
    await shell.write(bytes);
    return;
  }
  let message: { type?: unknown; rows?: unknown; cols?: unknown };
  try {
    message = JSON.parse(bytes.toString('utf8')) as typeof message;
  } catch {
    return;
  }
  if (message.type === 'eof') await shell.closeStdin();
  else if (message.type === 'kill') await shell.kill();
  else if (message.type === 'resize' && typeof message.rows === 'number' && typeof message.cols === 'number') {
    await shell.resize(message.rows, message.cols);
  }
}

/** Closes a WebSocket with an error frame in the operation's framing. */
function failSocket(socket: WebSocket, error: unknown, deviceId: string): void {
  const problem = deviceProblem(error, deviceId);
  const body =
    problem instanceof ApiError
      ? { type: 'error', code: problem.code, detail: problem.message }
      : { type: 'error', code: 'internal_error', detail: 'The session failed.' };
  if (socket.readyState === socket.OPEN) {
    socket.send(JSON.stringify(body));
    socket.close(1011, body.code);
  }
}

/** The request body of a push, counted: more than `limit` bytes fails the push with 413. */
async function* limited(body: Readable, limit: number): AsyncGenerator<Uint8Array> {
  let received = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > limit) {
      throw new ApiError('payload_too_large', `The file is larger than the server's limit of ${limit} bytes.`);
    }
    yield chunk;
  }
}

export function deviceHandlers({ inventory, leases, sessions, maxPushBytes }: DeviceHandlerDeps): DeviceHandlers {
  /**
   * The device's connection for a device operation: the device must exist (404), the caller must hold it through a
   * lease or be an admin (403 `lease_required`), and it must be connected (409 `device_offline`).
   */
  const connectionFor = async (ctx: RequestContext, deviceId: string): Promise<Adb> => {
    await inventory.know(deviceId);
    await leases.assertCanOperate(callerOf(ctx), deviceId);
    return inventory.adbFor(deviceId);
  };
  /** `connectionFor`, once the baseline of a lease just granted on the device is taken (at once otherwise). */
  const operate = async (ctx: RequestContext, deviceId: string): Promise<Adb> => {
    await connectionFor(ctx, deviceId);
    await leases.baselineTaken(deviceId);
    return connectionFor(ctx, deviceId);
  };
  /**
   * The device's connection inside a WebSocket handler: `beforeUpgrade` checked the device and the lease, and an
   * await here would lose the socket's first messages.
   */
  const upgradedConnection = (deviceId: string): Adb => inventory.adbFor(deviceId);
  const guarded = async <T>(deviceId: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw deviceProblem(error, deviceId);
    }
  };
  /**
   * Checks run before a WebSocket upgrade, so that a refusal is an ordinary problem response; the baseline wait is
   * here too, since a socket's messages are not held while its handler waits.
   */
  const beforeUpgrade = async ({ params, ctx }: { params: { deviceId: string }; ctx: RequestContext }): Promise<void> => {
    await operate(ctx, params.deviceId);
  };

  return {
    listDevices: async ({ query }) => ({
      status: 200,
      body: await inventory.list({ ...query, limit: query.limit ?? DEFAULT_PAGE_SIZE }),
    }),
    getDevice: async ({ params }) => ({ status: 200, body: await inventory.get(params.deviceId) }),
    updateDevice: async ({ params, body, ctx }) => ({
      status: 200,
      body: await inventory.update(callerOf(ctx), params.deviceId, body, ctx.requestId),
    }),

    runDeviceShell: async ({ params, body, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const command = body.argv ?? body.command;
      if (command === undefined || (body.argv !== undefined && body.command !== undefined)) {
        throw new ApiError('validation_failed', 'Give the command either as `command` or as `argv`, not both.', {
          errors: [{ field: '/command', message: 'exactly one of command and argv is required' }],
        });
      }
      const timeoutMs = (body.timeoutSeconds ?? DEFAULT_SHELL_TIMEOUT_SECONDS) * 1000;
      const stdin = body.stdin === undefined ? undefined : Buffer.from(body.stdin, 'utf8');
      const result = await guarded(params.deviceId, () =>
        runShell(adb, command, { timeoutMs, ...(stdin ? { stdin } : {}) }),
      );
      return { status: 200, body: result };
    },

    listDeviceFiles: async ({ params, query, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const path = devicePath(query.path);
      const entries = await guarded(params.deviceId, () => listDirectory(adb, path));
      return { status: 200, body: { path, entries } };
    },

    // A Content-Length over maxPushBytes was refused before the body was read (the route's binary body limit).
    pushDeviceFile: async ({ params, query, body, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const path = devicePath(query.path);
      const mode = query.mode === undefined ? undefined : Number.parseInt(query.mode, 8);
      const { size } = await guarded(params.deviceId, () =>
        pushFile(adb, path, limited(body, maxPushBytes), mode === undefined ? {} : { mode }),
      );
      return { status: 201, body: { path, size } };
    },

    pullDeviceFile: async ({ params, query, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const path = devicePath(query.path);
      const { size, stream } = await guarded(params.deviceId, () => pullFile(adb, path));
      const name = path.slice(path.lastIndexOf('/') + 1) || 'file';
      return {
        status: 200,
        body: stream,
        headers: {
          'content-length': String(size),
          'content-disposition': `attachment; filename="${name.replace(/["\\\r\n]/g, '_')}"`,
        },
      };
    },

    takeDeviceScreenshot: async ({ params, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const png = await guarded(params.deviceId, () => takeScreenshot(adb));
      return { status: 200, body: png, headers: { 'cache-control': 'no-store' } };
    },

    getDeviceLogcat: async ({ params, query, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const entries = await guarded(params.deviceId, () => dumpLogcat(adb, logcatFilter(query)));
      return { status: 200, body: { entries } };
    },

    rebootDevice: async ({ params, body, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const wait = body?.wait ?? true;
      const timeoutMs = (body?.timeoutSeconds ?? DEFAULT_REBOOT_TIMEOUT_SECONDS) * 1000;
      const back = wait ? inventory.waitForReconnect(params.deviceId, adb, timeoutMs + REBOOT_START_MS) : undefined;
      await guarded(params.deviceId, () => rebootDevice(adb));
      if (back !== undefined) await guarded(params.deviceId, () => back);
      return { status: 200, body: await inventory.get(params.deviceId) };
    },

    sendDeviceInput: async ({ params, body, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      await guarded(params.deviceId, () => sendInput(adb, body));
      return { status: 204, body: undefined };
    },

    listDevicePackages: async ({ params, query, ctx }) => {
      const adb = await operate(ctx, params.deviceId);
      const data = await guarded(params.deviceId, () => listPackages(adb, { thirdParty: query.thirdParty ?? false, versionNames: true }));
      return { status: 200, body: { data } };
    },

    openDeviceShell: webSocketHandler<'openDeviceShell'>(
      async (socket, { params, query, ctx }) => {
        const { deviceId } = params;
        const adb = upgradedConnection(deviceId);
        const session = sessions.track(deviceId, callerOf(ctx), socket);
        const opening = openShellSession(adb, {
          pty: query.pty ?? query.command === undefined,
          ...(query.command !== undefined ? { command: query.command } : {}),
          ...(query.rows !== undefined ? { rows: query.rows } : {}),
          ...(query.cols !== undefined ? { cols: query.cols } : {}),
        });
        // Client messages are applied one at a time, in order (stdin bytes, then an `eof` after them), and those
        // sent before the shell is open wait for it.
        let inbox: Promise<unknown> = opening;
        let pending = 0;
        socket.on('message', (data, isBinary) => {
          const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]);
          if (++pending > MAX_PENDING_MESSAGES) socket.pause();
          inbox = inbox
            .then(async () => applyShellMessage(await opening, bytes, isBinary))
            .catch(() => undefined)
            .finally(() => {
              if (--pending <= MAX_PENDING_MESSAGES) socket.resume();
            });
        });
        try {
          const shell = await opening;
          session.onEnd(() => void shell.kill().catch(() => undefined));
          socket.on('close', () => void shell.kill().catch(() => undefined));
          const forward = async (channel: number, output: AsyncIterable<Uint8Array> | null): Promise<void> => {
            if (output === null) return;
            for await (const chunk of output) {
              if (socket.readyState !== socket.OPEN) return;
              const frame = Buffer.allocUnsafe(chunk.byteLength + 1);
              frame[0] = channel;
              frame.set(chunk, 1);
              await new Promise<void>((resolve) => socket.send(frame, { binary: true }, () => resolve()));
            }
          };
          await Promise.all([forward(1, shell.stdout), forward(2, shell.stderr)]);
          const exitCode = await shell.exited;
          if (socket.readyState === socket.OPEN) {
            socket.send(JSON.stringify({ type: 'exit', exitCode }));
            socket.close(1000, 'exited');
          }
        } catch (error) {
          failSocket(socket, error, deviceId);
        } finally {
          session.end();
        }
      },
      { preUpgrade: beforeUpgrade },
    ),

    followDeviceLogcat: webSocketHandler<'followDeviceLogcat'>(
      async (socket, { params, query, ctx }) => {
        const { deviceId } = params;
        const adb = upgradedConnection(deviceId);
        const session = sessions.track(deviceId, callerOf(ctx), socket);
        try {
          for await (const entry of followLogcat(adb, logcatFilter(query), session.signal)) {
            if (socket.readyState !== socket.OPEN) break;
            await new Promise<void>((resolve) => socket.send(JSON.stringify(entry), () => resolve()));
          }
          if (!session.signal.aborted && socket.readyState === socket.OPEN) socket.close(1000, 'logcat ended');
        } catch (error) {
          if (!session.signal.aborted) failSocket(socket, error, deviceId);
        } finally {
          session.end();
        }
      },
      { preUpgrade: beforeUpgrade },
    ),

    openDeviceAdbTunnel: webSocketHandler<'openDeviceAdbTunnel'>(
      async (socket, { params, ctx }) => {
        const { deviceId } = params;
        const adb = upgradedConnection(deviceId);
        const session = sessions.track(deviceId, callerOf(ctx), socket);
        try {
          await serveAdbTunnel(createWebSocketStream(socket), adb, { signal: session.signal });
        } finally {
          session.end();
        }
      },
      { preUpgrade: beforeUpgrade },
    ),
  };
}
