/** What a virtual device says it is: the values behind its banner and `getprop`. */
export interface DeviceProfile {
  serial: string;
  model: string;
  /** `ro.product.name`. */
  product: string;
  /** `ro.product.device`. */
  device: string;
  manufacturer: string;
  brand: string;
  /** `ro.build.version.release`, e.g. "14". */
  release: string;
  /** `ro.build.version.sdk`, e.g. 34. */
  sdk: number;
  /** Supported ABIs, preferred first. */
  abis: string[];
  /** What `wm size`, `wm density` and `screencap` report; 1080x2400 at 420 dpi when left out. */
  screen?: Screen;
  /** What `dumpsys battery` reports; 85 %, on USB power, when left out. */
  battery?: BatteryState;
  /** The storage the shell user's files share, in MiB; 64 when left out. A write past it fails with ENOSPC. */
  storageMiB?: number;
  /** Features announced in the banner (DEVICE_FEATURES when left out); the host picks services by them. */
  features?: readonly string[];
  /** What `am instrument` reports, per test package: its tests in the order they run. */
  instrumentation?: Record<string, InstrumentationTest[]>;
}

/** One scripted test outcome for `am instrument`. */
export interface InstrumentationTest {
  class: string;
  method: string;
  result: 'pass' | 'fail' | 'ignored' | 'assumption_failure';
  /** The stack trace reported for a failure or an assumption failure. */
  stack?: string;
}

export interface Screen {
  width: number;
  height: number;
  /** Dots per inch, as `wm density` prints it. */
  density: number;
}

export interface BatteryState {
  /** 0 to 100. */
  level: number;
  status: 'unknown' | 'charging' | 'discharging' | 'not-charging' | 'full';
  plugged: 'none' | 'ac' | 'usb' | 'wireless';
  /** Tenths of a degree Celsius, as Android reports it. */
  temperature: number;
  /** Millivolts. */
  voltage: number;
}

export const DEFAULT_SCREEN: Screen = { width: 1080, height: 2400, density: 420 };
export const DEFAULT_BATTERY: BatteryState = {
  level: 85,
  status: 'charging',
  plugged: 'usb',
  temperature: 250,
  voltage: 4200,
};

/** The features the device advertises in its CNXN banner; the host picks services by them. */
export const DEVICE_FEATURES = ['shell_v2', 'cmd', 'stat_v2', 'ls_v2', 'fixed_push_mkdir', 'abb_exec'] as const;

export function defaultProfile(index: number): DeviceProfile {
  return {
    serial: `CPVIRT${String(index + 1).padStart(4, '0')}`,
    model: 'Virtual Phone',
    product: 'cloudphone_virtual',
    device: 'virtual',
    manufacturer: 'cloudphone',
    brand: 'cloudphone',
    release: '14',
    sdk: 34,
    abis: ['x86_64', 'arm64-v8a'],
  };
}

export function systemProperties(profile: DeviceProfile): Map<string, string> {
  return new Map([
    ['ro.build.version.release', profile.release],
    // Marks a cloudphone virtual device, so hosts report it with kind `virtual`.
    ['ro.cloudphone.virtual', '1'],
    ['ro.build.version.sdk', String(profile.sdk)],
    ['ro.product.brand', profile.brand],
    ['ro.product.cpu.abi', profile.abis[0] ?? ''],
    ['ro.product.cpu.abilist', profile.abis.join(',')],
    ['ro.product.device', profile.device],
    ['ro.product.manufacturer', profile.manufacturer],
    ['ro.product.model', profile.model],
    ['ro.product.name', profile.product],
    ['ro.serialno', profile.serial],
  ]);
}

/** The CNXN payload: `device::` followed by the identifying properties and the feature list. */
export function connectionBanner(profile: DeviceProfile): string {
  return (
    `device::ro.product.name=${profile.product};ro.product.model=${profile.model};` +
    `ro.product.device=${profile.device};features=${(profile.features ?? DEVICE_FEATURES).join(',')}`
  );
}
