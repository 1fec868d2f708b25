import type { Device, LeaseDevice } from '../generated/models.js';
import { DevicesResource } from '../generated/resources.js';
import { DeviceHandle } from './device.js';

/** `cp.devices`: the generated device operations, plus `handle(id)` for a `DeviceHandle`. */
export class Devices extends DevicesResource {
  /**
   * A handle on a device, for `shell`, `push`, `pull`, `screenshot`, `openShell`, …. Makes no request; the
   * device's operations need a granted lease on it (or the admin role).
   *
   * @example
   * ```ts
   * const device = cp.devices.handle('dev_01JDX6A1B2C3D4E5F6G7H8J9K0');
   * await device.tap(540, 1200);
   * ```
   */
  handle(deviceId: string, fields?: Partial<Device> | LeaseDevice): DeviceHandle {
    return new DeviceHandle(this.client, deviceId, fields);
  }
}
