import type { DeviceKind } from '../devices/types.js';

/** Which devices a lease asks for; every given criterion must hold (AND). */
export interface DeviceSelector {
  deviceIds?: string[] | undefined;
  model?: string | undefined;
  kind?: DeviceKind | undefined;
  sdkMin?: number | undefined;
  sdkMax?: number | undefined;
  abi?: string | undefined;
  labels?: Record<string, string> | undefined;
  hostId?: string | undefined;
}

/** What the scheduler needs to know about a device. */
export interface SchedulableDevice {
  id: string;
  hostId: string;
  kind: DeviceKind;
  model: string | null;
  sdk: number | null;
  abis: readonly string[];
  labels: Readonly<Record<string, string>>;
  /** Online, not in maintenance, not resetting, its host not draining, and in no unreleased lease. */
  available: boolean;
  /** When the device was last granted to a lease (ISO), null if never: the least recently leased go first. */
  lastLeasedAt: string | null;
}

export interface QueuedLease {
  id: string;
  selector: DeviceSelector;
  count: number;
}

export interface Grant {
  leaseId: string;
  deviceIds: string[];
}

export function matchesSelector(selector: DeviceSelector, device: SchedulableDevice): boolean {
  if (selector.deviceIds !== undefined && !selector.deviceIds.includes(device.id)) return false;
  if (selector.hostId !== undefined && selector.hostId !== device.hostId) return false;
  if (selector.kind !== undefined && selector.kind !== device.kind) return false;
  if (selector.model !== undefined && (device.model ?? '').toLowerCase() !== selector.model.toLowerCase()) return false;
  if (selector.sdkMin !== undefined && (device.sdk === null || device.sdk < selector.sdkMin)) return false;
  if (selector.sdkMax !== undefined && (device.sdk === null || device.sdk > selector.sdkMax)) return false;
  if (selector.abi !== undefined && !device.abis.includes(selector.abi)) return false;
  if (selector.labels !== undefined) {
    for (const [key, value] of Object.entries(selector.labels)) {
      if (device.labels[key] !== value) return false;
    }
  }
  return true;
}

/** The stable preference among free devices: least recently leased first (never leased before all), then by id. */
export function preferenceOrder(a: SchedulableDevice, b: SchedulableDevice): number {
  if (a.lastLeasedAt !== b.lastLeasedAt) {
    if (a.lastLeasedAt === null) return -1;
    if (b.lastLeasedAt === null) return 1;
    return a.lastLeasedAt < b.lastLeasedAt ? -1 : 1;
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Fair FIFO with backfill. Queued leases are considered in creation order (`queued` must be given in that order).
 * A lease is granted all its `count` devices at once when that many available matching devices remain; a lease that
 * cannot be granted reserves every available device it matches, so no later lease can take them (it is not starved
 * by smaller requests behind it), while later leases for other devices still proceed. A lease `admit` refuses (its
 * quotas or budget) is skipped and reserves nothing.
 */
export function schedule(
  queued: readonly QueuedLease[],
  devices: readonly SchedulableDevice[],
  admit?: (lease: QueuedLease, chosen: readonly SchedulableDevice[]) => boolean,
): Grant[] {
  const free = devices.filter((device) => device.available).sort(preferenceOrder);
  const taken = new Set<string>();
  const grants: Grant[] = [];
  for (const lease of queued) {
    const candidates = free.filter((device) => !taken.has(device.id) && matchesSelector(lease.selector, device));
    if (candidates.length >= lease.count) {
      const chosen = candidates.slice(0, lease.count);
      // A lease its quotas or budget do not admit now waits without holding devices back from others.
      if (admit !== undefined && !admit(lease, chosen)) continue;
      for (const device of chosen) taken.add(device.id);
      grants.push({ leaseId: lease.id, deviceIds: chosen.map((device) => device.id) });
    } else {
      for (const device of candidates) taken.add(device.id);
    }
    if (taken.size === free.length) break;
  }
  return grants;
}
