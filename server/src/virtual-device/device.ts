import { DeviceSystem, type InputEvent } from './device-system.js';
import { DEFAULT_STORAGE_BYTES, FileSystem } from './file-system.js';
import { PackageStore } from './package-store.js';
import { systemProperties, type DeviceProfile } from './profile.js';
import { DeviceUserland } from './userland.js';
import type { Userland } from './userland/command.js';
import type { LogEntry, LogPriority } from './userland/logs.js';

/** A virtual device's state, shared by all its connections and kept for its lifetime. */
export class Device {
  readonly files: FileSystem;
  readonly userland: Userland;
  /** Screen, battery, settings, injected input and the log. */
  readonly system: DeviceSystem;
  /** Installed packages, system ones included. */
  readonly packages: PackageStore;

  /** `reboot` restarts the device through `onReboot`, which the daemon serving it provides. */
  constructor(
    readonly profile: DeviceProfile,
    onReboot: () => void = () => undefined,
  ) {
    const capacity = profile.storageMiB === undefined ? DEFAULT_STORAGE_BYTES : profile.storageMiB * 1024 * 1024;
    this.files = new FileSystem({ capacity });
    this.system = new DeviceSystem(profile);
    this.packages = new PackageStore(profile);
    this.userland = new DeviceUserland(systemProperties(profile), this.files, onReboot, this.system, this.packages);
  }

  /** Appends a line to the device's log, which `logcat` shows (as system_server). */
  log(priority: LogPriority, tag: string, message: string): LogEntry {
    return this.system.log(priority, tag, message);
  }

  /** What `input` injected, oldest first. */
  get inputs(): readonly InputEvent[] {
    return this.system.inputs;
  }

  /** Drops every connection; the device listens again after its reboot delay. */
  reboot(): void {
    this.userland.reboot();
  }
}
