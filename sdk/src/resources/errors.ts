import { CloudPhoneError } from '../core/errors.js';
import type { Lease, LeaseStatus } from '../generated/models.js';

/**
 * A lease that was waited for ended without being granted (`timed_out`, `cancelled`, …), or was still `queued`
 * when the caller's own time limit passed. `lease` is its last known state.
 */
export class LeaseNotGrantedError extends CloudPhoneError {
  /** The lease's final status (`queued` when the caller's time limit passed first). */
  readonly status: LeaseStatus;
  readonly lease: Lease;

  constructor(lease: Lease, message?: string) {
    super(message ?? `Lease ${lease.id} was not granted: it is ${lease.status}${lease.endReason ? ` (${lease.endReason})` : ''}.`);
    this.status = lease.status;
    this.lease = lease;
  }
}

/**
 * A device stream (`openShell`, `followLogcat`) ended abnormally: the server sent an error frame
 * (`{"type":"error","code":…}`, then close 1011) or the connection closed without a clean end.
 */
export class DeviceStreamError extends CloudPhoneError {
  /** The server's error code (`device_offline`, `lease_ended`, …), or `connection_closed` for a bare abnormal close. */
  readonly code: string;
  /** The WebSocket close code, when the socket closed (1011, 4001, 1006, …). */
  readonly closeCode: number | null;
  /** The server's explanation, when it gave one. */
  readonly detail: string | undefined;

  constructor(code: string, options: { closeCode?: number | null; detail?: string; message?: string; cause?: unknown } = {}) {
    super(
      options.message ??
        `Device stream ended: ${code}${options.detail ? `: ${options.detail}` : ''}${options.closeCode ? ` (close ${options.closeCode})` : ''}.`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.closeCode = options.closeCode ?? null;
    this.detail = options.detail;
  }
}

/** The lease holding the device ended while a stream was open: the server closed it with 4001 "lease ended". */
export class LeaseEndedError extends DeviceStreamError {
  constructor(options: { closeCode?: number | null; detail?: string } = {}) {
    super('lease_ended', { closeCode: options.closeCode ?? 4001, detail: options.detail ?? 'lease ended' });
  }
}

/** The WebSocket close code the server uses when the lease holding the device ends. */
export const LEASE_ENDED_CLOSE_CODE = 4001;

/** The error for a stream that closed with `closeCode` (and maybe an error frame before it), or `null` for a clean end. */
export function streamCloseError(
  closeCode: number,
  reason: string,
  errorFrame: { code?: unknown; detail?: unknown } | undefined,
): DeviceStreamError | null {
  const detail = typeof errorFrame?.detail === 'string' ? errorFrame.detail : reason || undefined;
  if (errorFrame !== undefined) {
    const code = typeof errorFrame.code === 'string' ? errorFrame.code : 'stream_error';
    if (code === 'lease_ended') return new LeaseEndedError({ closeCode, ...(detail ? { detail } : {}) });
    return new DeviceStreamError(code, { closeCode, ...(detail ? { detail } : {}) });
  }
  if (closeCode === LEASE_ENDED_CLOSE_CODE) return new LeaseEndedError({ closeCode, ...(reason ? { detail: reason } : {}) });
  if (closeCode === 1000) return null;
  return new DeviceStreamError(closeCode === 1011 ? 'stream_error' : 'connection_closed', {
    closeCode,
    ...(reason ? { detail: reason } : {}),
  });
}
