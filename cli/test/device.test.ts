import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/lib/errors.js';
import { DEVICE_ENV, resolveDeviceId } from '../src/lib/device.js';
import { buildRequest, type OperationSpec } from '../src/lib/request.js';

const DEVICE = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';
const OTHER = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K1';

describe('resolveDeviceId', () => {
  it('takes the argument, then --device, then CLOUDPHONE_DEVICE', () => {
    const env = { [DEVICE_ENV]: 'from-env' };
    expect(resolveDeviceId({ arg: DEVICE, flag: OTHER }, env)).toBe(DEVICE);
    expect(resolveDeviceId({ flag: OTHER }, env)).toBe(OTHER);
    expect(resolveDeviceId({}, env)).toBe('from-env');
  });

  it('is a usage error (exit 2) naming all three ways when the id is nowhere', () => {
    let error: unknown;
    try {
      resolveDeviceId({}, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    expect((error as Error).message).toBe(
      'Missing device-id: give it as the argument <device-id>, -s/--device or the CLOUDPHONE_DEVICE environment variable',
    );
  });
});

describe('buildRequest with x-cli-flag / x-cli-env path parameters', () => {
  const op: OperationSpec = {
    id: 'getDevice',
    authenticated: true,
    path: { 'device-id': 'deviceId' },
    pathFallbacks: { 'device-id': { flag: 'device', env: DEVICE_ENV } },
    query: {},
    body: null,
    list: null,
    paginated: false,
    idempotent: false,
    destructive: false,
    columns: [],
  };

  it('resolves the path value from the argument or the flag', () => {
    expect(buildRequest(op, { 'device-id': DEVICE }, {})).toEqual({ path: { deviceId: DEVICE } });
    expect(buildRequest(op, {}, { device: OTHER })).toEqual({ path: { deviceId: OTHER } });
  });

  it('falls back to the environment variable', () => {
    const saved = process.env[DEVICE_ENV];
    process.env[DEVICE_ENV] = DEVICE;
    try {
      expect(buildRequest(op, {}, {})).toEqual({ path: { deviceId: DEVICE } });
    } finally {
      if (saved === undefined) delete process.env[DEVICE_ENV];
      else process.env[DEVICE_ENV] = saved;
    }
  });
});
