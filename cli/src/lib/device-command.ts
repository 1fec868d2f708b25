import { Flags, type Command } from '@oclif/core';
import type { CloudPhone } from '@cloudphone/sdk';
import { BaseCommand } from '../base/base-command.js';
import { DEVICE_ENV, resolveDeviceId } from './device.js';

/** `--device/-s <id>` of the handwritten device commands (like adb's `-s`). */
export const deviceOption = () =>
  Flags.string({
    char: 's',
    summary: `The device id (instead of the argument; default: ${DEVICE_ENV}).`,
    helpValue: '<id>',
  });

/** What the device commands share: the device they work on and an authenticated client. */
export abstract class DeviceCommand<T extends typeof Command> extends BaseCommand<T> {
  /** The device: `arg` (the positional DEVICE, when given), else `--device`, else CLOUDPHONE_DEVICE. */
  protected deviceId(arg?: string): string {
    const flags = this.flags as { device?: string };
    return resolveDeviceId({ arg, flag: flags.device });
  }

  protected api(): Promise<CloudPhone> {
    return this.client({ authenticated: true });
  }

  /**
   * Replaces the base command's Ctrl-C handler (exit 130 at once) with `handler`, for commands that clean up
   * first or for which Ctrl-C is the normal way to stop.
   */
  protected onInterrupt(handler: () => void): void {
    for (const listener of process.listeners('SIGINT')) process.off('SIGINT', listener);
    process.on('SIGINT', handler);
  }
}
