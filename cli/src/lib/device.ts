import { Flags } from '@oclif/core';
import { resolvePathValue } from './request.js';

/** The environment variable naming the default device, like adb's `ANDROID_SERIAL`. */
export const DEVICE_ENV = 'CLOUDPHONE_DEVICE';

/** `--device <id>`, for handwritten device commands (generated ones get it from the contract's `x-cli-flag`). */
export const deviceFlag = () =>
  Flags.string({
    summary: `The device id (instead of the argument; default: ${DEVICE_ENV}).`,
    helpValue: '<id>',
  });

/**
 * The device a command works on: its positional argument, else `--device`, else `CLOUDPHONE_DEVICE`. Missing
 * everywhere: a `UsageError` (exit 2) naming all three.
 */
export function resolveDeviceId(
  sources: { arg?: string | undefined; flag?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): string {
  return resolvePathValue('device-id', { arg: sources.arg, flagValue: sources.flag }, { flag: 'device', env: DEVICE_ENV }, env);
}
