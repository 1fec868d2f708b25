import { FileSystem } from './file-system.js';
import { systemProperties, type DeviceProfile } from './profile.js';
import { Userland } from './userland.js';

/** A virtual device's state, shared by all its connections and kept for its lifetime. */
export class Device {
  readonly files = new FileSystem();
  readonly userland: Userland;

  constructor(readonly profile: DeviceProfile) {
    this.userland = new Userland(systemProperties(profile), this.files);
  }
}
