import type { WebSocket } from 'ws';
import type { Principal } from '../http/handler.js';
import { revokes, type Revocation, type RevocationListener } from '../revocations.js';

/**
 * The WebSocket close code sent when access ends: the lease that allowed a session, or the credential it was opened
 * with (the reason says which).
 */
const ACCESS_ENDED_CLOSE_CODE = 4001;

/** The credential a WebSocket was opened with: an API token's id, or a login session's. */
export interface WebSocketCredential {
  tokenId: string | undefined;
  sessionId: string | undefined;
}

export interface DeviceSession {
  /** Aborted when the session must stop (its lease or credential ended, the server is closing, the socket closed). */
  readonly signal: AbortSignal;
  /** Runs `listener` when the session stops. */
  onEnd(listener: () => void): void;
  /** Forgets the session once its handler is done. */
  end(): void;
}

interface Entry extends WebSocketCredential {
  deviceId: string;
  userId: string;
  socket: WebSocket;
  controller: AbortController;
}

/**
 * The open WebSocket sessions (shell, logcat, ADB tunnel) on each device, with the user and the credential that
 * opened each, so that they stop at once when the lease that allowed them ends or when that credential ends (token
 * revoked, user disabled or deleted, password changed, logout): the socket is closed with 4001 and a reason before
 * its work is aborted.
 */
export class DeviceSessions implements RevocationListener {
  readonly #entries = new Set<Entry>();

  track(deviceId: string, principal: Principal, socket: WebSocket): DeviceSession {
    const entry: Entry = {
      deviceId,
      userId: principal.userId,
      tokenId: principal.method === 'api_token' ? principal.tokenId : undefined,
      sessionId: principal.method === 'session' ? principal.sessionId : undefined,
      socket,
      controller: new AbortController(),
    };
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
      this.#stop(entry, ACCESS_ENDED_CLOSE_CODE, 'lease ended');
    }
  }

  /** Ends the sessions opened with a credential that just ended. */
  revoked(revocation: Revocation): void {
    for (const entry of [...this.#entries]) {
      if (revokes(revocation, entry)) this.#stop(entry, ACCESS_ENDED_CLOSE_CODE, revocation.reason);
    }
  }

  /**
   * Asks `ended` about the credential of every open session, once per credential however many sessions it opened,
   * and ends those it gives a reason for: the backstop of `revoked`, for changes this process was not told of (made
   * on another node, a token that expired).
   */
  async recheck(ended: (credential: WebSocketCredential) => Promise<string | null>): Promise<void> {
    const verdicts = new Map<string, Promise<string | null>>();
    for (const entry of [...this.#entries]) {
      const key = entry.tokenId === undefined ? `session ${entry.sessionId}` : `token ${entry.tokenId}`;
      let verdict = verdicts.get(key);
      if (verdict === undefined) {
        verdict = ended(entry).catch(() => null);
        verdicts.set(key, verdict);
      }
      const reason = await verdict;
      if (reason !== null && this.#entries.has(entry)) this.#stop(entry, ACCESS_ENDED_CLOSE_CODE, reason);
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
