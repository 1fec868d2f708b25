/** The device is not connected, or its connection went away during the operation. */
export class DeviceOfflineError extends Error {
  override readonly name = 'DeviceOfflineError';
  constructor(detail = 'the device is offline', options?: ErrorOptions) {
    super(detail, options);
  }
}

/** The operation did not finish within its timeout. */
export class DeviceTimeoutError extends Error {
  override readonly name = 'DeviceTimeoutError';
  constructor(
    readonly timeoutMs: number,
    what = 'the device operation',
  ) {
    super(`${what} did not finish within ${timeoutMs} ms`);
  }
}

/** A device path that does not exist. */
export class DeviceFileNotFoundError extends Error {
  override readonly name = 'DeviceFileNotFoundError';
  constructor(readonly path: string) {
    super(`no such file on the device: ${path}`);
  }
}

/** A device path that is not acceptable (relative, `..`, NUL, too long) or of the wrong type for the operation. */
export class InvalidDevicePathError extends Error {
  override readonly name = 'InvalidDevicePathError';
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`invalid device path ${JSON.stringify(path)}: ${reason}`);
  }
}

/** The device answered with an error that maps to nothing above. */
export class DeviceCommandError extends Error {
  override readonly name = 'DeviceCommandError';
}

/** The device refused a file operation on `path` (e.g. `Permission denied`, `Is a directory`); `message` is its own. */
export class DevicePathRefusedError extends Error {
  override readonly name = 'DevicePathRefusedError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** The device has no space left for the file written to `path`; `message` is the device's own. */
export class DeviceStorageFullError extends Error {
  override readonly name = 'DeviceStorageFullError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}
