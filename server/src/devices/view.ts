import type { components } from '../generated/types.js';
import type { DeviceRow, DeviceViewRow, HostCounts, HostRow } from './repository.js';
import type { Battery, DeviceProperties, HostLiveStatus } from './types.js';

type Schemas = components['schemas'];

export type Device = Schemas['Device'];
export type DeviceSummary = Schemas['DeviceSummary'];
export type DeviceState = Schemas['DeviceState'];
export type Host = Schemas['Host'];

/** The state the API shows: `maintenance` overrides the live state. */
export function viewState(row: Pick<DeviceRow, 'state' | 'maintenance'>): DeviceState {
  return row.maintenance === 1 ? 'maintenance' : row.state;
}

/** Online, not in maintenance, not resetting, its host not draining, and not in a lease. */
export function isAvailable(row: DeviceViewRow): boolean {
  return (
    row.state === 'online' &&
    row.maintenance === 0 &&
    row.resetting === 0 &&
    row.host_draining === 0 &&
    row.lease_id === null
  );
}

export function toDevice(row: DeviceViewRow): Device {
  return {
    id: row.id,
    serial: row.serial,
    hostId: row.host_id,
    hostName: row.host_name,
    kind: row.kind,
    state: viewState(row),
    connected: row.state === 'online',
    available: isAvailable(row),
    properties: row.properties === null ? null : (JSON.parse(row.properties) as DeviceProperties),
    battery: row.battery === null ? null : (JSON.parse(row.battery) as Battery),
    labels: JSON.parse(row.labels) as Record<string, string>,
    lease:
      row.lease_id === null
        ? null
        : {
            id: row.lease_id,
            userId: row.lease_user_id ?? '',
            username: row.lease_username ?? '',
            // A granted lease always has an expiry; the fallback only guards a row caught mid-change.
            expiresAt: row.lease_expires_at ?? row.updated_at,
          },
    resetting: row.resetting === 1,
    firstSeenAt: row.first_seen_at,
    lastSeenAt: row.last_seen_at,
  };
}

export function toDeviceSummary(
  row: Pick<DeviceRow, 'id' | 'serial' | 'host_id' | 'kind' | 'state' | 'maintenance' | 'model'>,
): DeviceSummary {
  return {
    id: row.id,
    serial: row.serial,
    hostId: row.host_id,
    kind: row.kind,
    state: viewState(row),
    model: row.model,
  };
}

export function toHost(
  row: HostRow,
  live: HostLiveStatus,
  counts: HostCounts | undefined,
  trackedBy: string | null,
): Host {
  return {
    id: row.id,
    type: row.type,
    address: row.address,
    name: row.name,
    origin: row.origin,
    draining: row.draining === 1,
    status: live.status,
    lastError: live.lastError,
    nextRetryAt: live.nextRetryAt === null ? null : live.nextRetryAt.toISOString(),
    deviceCount: counts?.deviceCount ?? 0,
    onlineCount: counts?.onlineCount ?? 0,
    trackedBy,
    createdAt: row.created_at,
  };
}
