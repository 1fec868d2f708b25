import type { DeviceReset } from '../devices/types.js';
import type { components } from '../generated/types.js';
import type { LeaseDeviceDetail, LeaseRow, LeaseStatus, LeaseWithUser } from './repository.js';

type Schemas = components['schemas'];

export type Lease = Schemas['Lease'];
export type LeaseDevice = Schemas['LeaseDevice'];
export type LeaseSummary = Schemas['LeaseSummary'];
export type LeaseEndReason = Schemas['LeaseEndReason'];
export type DeviceSelector = Schemas['DeviceSelector'];

export function toLeaseDevice(row: LeaseDeviceDetail): LeaseDevice {
  return {
    id: row.deviceId,
    serial: row.serial,
    model: row.model,
    sdk: row.sdk,
    kind: row.kind,
    reset: row.reset === null ? null : storedReset(row.reset),
  };
}

/** A recorded reset; those recorded before resets listed removed files and differences show empty lists. */
function storedReset(stored: string): DeviceReset {
  const reset = JSON.parse(stored) as Omit<DeviceReset, 'removed' | 'differences'> & Partial<DeviceReset>;
  return { ...reset, removed: reset.removed ?? [], differences: reset.differences ?? [] };
}

export function toLease(row: LeaseWithUser, devices: readonly LeaseDeviceDetail[], queuePosition: number | null): Lease {
  return {
    id: row.id,
    status: row.status,
    userId: row.user_id,
    username: row.username,
    selector: JSON.parse(row.selector) as DeviceSelector,
    count: row.count,
    ttlSeconds: row.ttl_seconds,
    note: row.note,
    project: row.project,
    createdAt: row.created_at,
    waitUntil: row.wait_until,
    queuePosition: row.status === 'queued' ? queuePosition : null,
    grantedAt: row.granted_at,
    expiresAt: row.expires_at,
    endedAt: row.ended_at,
    endReason: row.end_reason as LeaseEndReason | null,
    devices: devices.map(toLeaseDevice),
  };
}

export function toLeaseSummary(row: LeaseRow): LeaseSummary {
  return { id: row.id, userId: row.user_id, status: row.status, count: row.count, expiresAt: row.expires_at };
}
