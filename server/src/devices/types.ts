import type { Adb } from '@yume-chan/adb';

/** How a device is reached, as the inventory reports it. */
export type DeviceKind = 'physical' | 'emulator' | 'network' | 'virtual';

/** The state of a device's connection, as its host reports it. */
export type LiveState = 'online' | 'offline' | 'unauthorized';

export type HostType = 'adb_server' | 'adb_device' | 'virtual';

export interface DeviceProperties {
  manufacturer: string;
  model: string;
  brand: string;
  device: string;
  androidVersion: string;
  sdk: number;
  abis: string[];
  screen: { width: number; height: number; density: number } | null;
}

export interface Battery {
  level: number;
  charging: boolean;
  temperatureC: number | null;
}

export interface DeviceInfo {
  properties: DeviceProperties;
  battery: Battery | null;
  /**
   * What tells this device apart from every other, whatever transport reaches it: `ro.serialno` and the kernel's
   * boot id (`/proc/sys/kernel/random/boot_id`), whichever can be read; null when neither can.
   */
  identity?: string | null;
}

/** What a host reported about one device. */
export interface DeviceUpdate {
  hostId: string;
  serial: string;
  kind: DeviceKind;
  state: LiveState;
  /** Read once per connection when the device comes online; null otherwise. */
  info: DeviceInfo | null;
}

/** A source of devices to track. */
export interface HostSpec {
  id: string;
  type: HostType;
  /** `host:port`; `in-process` for the virtual host. */
  address: string;
}

export interface HostLiveStatus {
  status: 'connecting' | 'connected' | 'unreachable';
  lastError: string | null;
  nextRetryAt: Date | null;
}

/** The live side of the device layer: hosts being tracked and the devices they report. */
export interface LiveDevices {
  addHost(spec: HostSpec): void;
  removeHost(hostId: string): Promise<void>;
  hostStatus(hostId: string): HostLiveStatus;
  snapshot(hostId?: string): DeviceUpdate[];
  adb(hostId: string, serial: string): Adb | undefined;
  onUpdate(listener: (update: DeviceUpdate) => void): () => void;
  onHostStatus(listener: (hostId: string, status: HostLiveStatus) => void): () => void;
  close(): Promise<void>;
}

/** What the shared storage held: each path under the root, `d` for a directory, else `f:<size>:<mtime>`. */
export interface StorageListing {
  root: string;
  entries: Record<string, string>;
  /** The walk stopped at its bound. */
  truncated: boolean;
  /** Directories that could not be listed (an app's private folder under Android/, say). */
  unreadable: string[];
}

/** A device's state at the start of a lease, which the reset at its end restores and checks against. */
export interface DeviceBaseline {
  /** Third-party packages. */
  packages: string[];
  /** The shared storage; null when it could not be read (nothing there is then removed). */
  storage: StorageListing | null;
  /**
   * The device's `ro.serialno`: a reset refuses a device that answers with another one (an address now reaching a
   * different phone). Absent or empty: not checked.
   */
  serialNo?: string | null;
}

/**
 * What a reset after a lease did on one device: `succeeded` only when the device is back to its baseline, `failed`
 * when a step failed or a difference remains (`differences`), `skipped` when the device was offline.
 */
export interface DeviceReset {
  status: 'succeeded' | 'failed' | 'skipped';
  finishedAt: string;
  uninstalled: string[];
  clearedTmp: boolean;
  /** Files and folders removed from /data/local/tmp and the shared storage. */
  removed: string[];
  /** How the device still differs from its baseline. */
  differences: string[];
  error: string | null;
}
