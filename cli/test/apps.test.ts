import { describe, expect, it } from 'vitest';
import { dispositionFileName, failedDeviceLines, formatProgressBar, installDeviceLine } from '../src/lib/apps.js';

const device = (status: 'pending' | 'installing' | 'installed' | 'failed', reason: string | null = null) => ({
  deviceId: 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0',
  serial: 'CPVIRT0001',
  status,
  reason,
  startedAt: null,
  finishedAt: null,
});

describe('app command helpers', () => {
  it('draws a progress bar, or just the bytes without a total', () => {
    expect(formatProgressBar(512, 1024, 10)).toBe('[#####-----]  50% 512 B / 1.0 KiB');
    expect(formatProgressBar(1024, 1024, 4)).toBe('[####] 100% 1.0 KiB / 1.0 KiB');
    expect(formatProgressBar(2048, null)).toBe('2.0 KiB');
  });

  it('describes a device of an install job, with the reason when it failed', () => {
    expect(installDeviceLine(device('installing'))).toBe('CPVIRT0001 (dev_01JDX6A1B2C3D4E5F6G7H8J9K0): installing…');
    expect(installDeviceLine(device('failed', 'INSTALL_FAILED_OLDER_SDK: x'))).toBe(
      'CPVIRT0001 (dev_01JDX6A1B2C3D4E5F6G7H8J9K0): failed: INSTALL_FAILED_OLDER_SDK: x',
    );
    expect(failedDeviceLines({ devices: [device('installed'), device('failed', 'boom')] })).toEqual([
      '  CPVIRT0001 (dev_01JDX6A1B2C3D4E5F6G7H8J9K0): boom',
    ]);
  });

  it('takes a safe file name from Content-Disposition', () => {
    expect(dispositionFileName('attachment; filename="app-debug.apk"')).toBe('app-debug.apk');
    expect(dispositionFileName("attachment; filename=\"x.apk\"; filename*=UTF-8''caf%C3%A9.apk")).toBe('café.apk');
    expect(dispositionFileName('attachment; filename=plain.apk')).toBe('plain.apk');
    expect(dispositionFileName('attachment; filename="../../etc/passwd"')).toBe('passwd');
    expect(dispositionFileName('attachment; filename=".."')).toBe(null);
    expect(dispositionFileName('attachment')).toBe(null);
    expect(dispositionFileName(undefined)).toBe(null);
  });
});
