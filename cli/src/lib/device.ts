import { resolvePathValue } from './request.js';

/** The environment variable naming the default device, like adb's `ANDROID_SERIAL`. */
export const DEVICE_ENV = 'CLOUDPHONE_DEVICE';

/**
 * The WebSocket close code the server sends when access to a device ends: the lease that allowed it, or the
 * credential the socket was opened with (the close reason says which).
 */
export const ACCESS_ENDED_CLOSE_CODE = 4001;

/**
 * The device a command works on: its positional argument, else `--device`, else `CLOUDPHONE_DEVICE`. Missing
 * everywhere: a `UsageError` (exit 2) naming all three.
 */
export function resolveDeviceId(
  sources: { arg?: string | undefined; flag?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): string {
  return resolvePathValue('device-id', { arg: sources.arg, flagValue: sources.flag }, { flag: 'device', char: 's', env: DEVICE_ENV }, env);
}
