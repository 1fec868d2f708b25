import type { WebSocket } from 'ws';

/** The WebSocket close code sent when the lease that allowed a session ends. */
export const LEASE_ENDED_CLOSE_CODE = 4001;

export interface DeviceSession {
  /** Aborted when the session must stop (its lease ended, the server is closing, or the socket closed). */
  readonly signal: AbortSignal;
  /** Runs `listener` when the session stops. */
  onEnd(listener: () => void): void;
  /** Forgets the session once its handler is done. */
  end(): void;
}

interface Entry {
  deviceId: string;
  userId: string;
  socket: WebSocket;
  controller: AbortController;
}

/**
 * The open WebSocket sessions (shell, logcat, ADB tunnel) on each device, so that they stop when the lease that
 * allowed them ends: the socket is closed with 4001 "lease ended" before its work is aborted.
 */
export class DeviceSessions {
  readonly #entries = new Set<Entry>();

  track(deviceId: string, userId: string, socket: WebSocket): DeviceSession {
    const entry: Entry = { deviceId, userId, socket, controller: new AbortController() };
    this.#entries.add(entry);
    socket.once('close', () => entry.controller.abort());
    return {
      signal: entry.controller.signal,
      onEnd: (listener) => entry.controller.signal.addEventListener('abort', listener, { once: true }),
      end: () => {
        this.#entries.delete(entry);
        entry.controller.abort();
      },
    };
  }

  /** Ends the sessions `userId` opened on `deviceIds`: their lease is over. */
  leaseEnded(userId: string, deviceIds: readonly string[]): void {
    const devices = new Set(deviceIds);
    for (const entry of [...this.#entries]) {
      if (entry.userId !== userId || !devices.has(entry.deviceId)) continue;
      this.#stop(entry, LEASE_ENDED_CLOSE_CODE, 'lease ended');
    }
  }

  /** Ends every session, as the server shuts down. */
  closeAll(): void {
    for (const entry of [...this.#entries]) this.#stop(entry, 1001, 'server shutting down');
  }

  #stop(entry: Entry, code: number, reason: string): void {
    this.#entries.delete(entry);
    if (entry.socket.readyState === entry.socket.OPEN) entry.socket.close(code, reason);
    entry.controller.abort();
  }
}
