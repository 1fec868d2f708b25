import type { Adb } from '@yume-chan/adb';
import type { Battery, DeviceInfo, DeviceKind } from '../types.js';
import { guard } from './guard.js';

const INFO_TIMEOUT_MS = 15_000;

/** All system properties (`getprop` with no argument), by name. */
export async function readSystemProperties(adb: Adb): Promise<Map<string, string>> {
  const text = await guard(adb, adb.subprocess.noneProtocol.spawnWaitText('getprop'), {
    timeoutMs: INFO_TIMEOUT_MS,
    what: 'getprop',
  });
  return parseGetprop(text);
}

export function parseGetprop(text: string): Map<string, string> {
  const properties = new Map<string, string>();
  for (const match of text.matchAll(/^\[([^\]]+)\]: \[([^\]]*)\]\s*$/gm)) properties.set(match[1]!, match[2]!);
  return properties;
}

/** What the inventory shows of a device: its identity from `getprop`, its screen and its battery. */
export async function readDeviceInfo(adb: Adb, systemProperties?: ReadonlyMap<string, string>): Promise<DeviceInfo> {
  const props = systemProperties ?? (await readSystemProperties(adb));
  const get = (key: string): string => props.get(key) ?? '';
  const abiList = get('ro.product.cpu.abilist');
  const abis = (abiList === '' ? [get('ro.product.cpu.abi'), get('ro.product.cpu.abi2')] : abiList.split(','))
    .map((abi) => abi.trim())
    .filter((abi) => abi !== '');
  const sdk = Number.parseInt(get('ro.build.version.sdk'), 10);
  const [screen, battery, bootId] = await Promise.all([readScreen(adb), readBattery(adb), readBootId(adb)]);
  const identity = [get('ro.serialno'), bootId ?? ''].filter((part) => part !== '').join('/');
  return {
    properties: {
      manufacturer: get('ro.product.manufacturer'),
      model: get('ro.product.model'),
      brand: get('ro.product.brand'),
      device: get('ro.product.device'),
      androidVersion: get('ro.build.version.release'),
      sdk: Number.isFinite(sdk) ? sdk : 0,
      abis,
      screen,
    },
    battery,
    identity: identity === '' ? null : identity,
  };
}

/** The kernel's random id of the current boot: two transports showing the same one reach the same device. */
async function readBootId(adb: Adb): Promise<string | null> {
  const text = await shellText(adb, 'cat /proc/sys/kernel/random/boot_id');
  const match = text === null ? null : /^\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s*$/.exec(text);
  return match?.[1] ?? null;
}

/**
 * The kind of a device. `direct` is for devices the server connects to over TCP itself (adb_device hosts and
 * virtual ones).
 */
export function kindOf(serial: string, systemProperties: ReadonlyMap<string, string>, via: 'adb_server' | 'direct'): DeviceKind {
  if (systemProperties.get('ro.cloudphone.virtual') === '1') return 'virtual';
  if (systemProperties.get('ro.kernel.qemu') === '1' || /^emulator-\d+$/.test(serial)) return 'emulator';
  if (via === 'direct' || serial.includes(':') || serial.includes('._adb-tls-connect._tcp')) return 'network';
  return 'physical';
}

async function shellText(adb: Adb, command: string): Promise<string | null> {
  try {
    return await guard(adb, adb.subprocess.noneProtocol.spawnWaitText(command), { timeoutMs: INFO_TIMEOUT_MS });
  } catch {
    return null;
  }
}

/** `wm size` / `wm density`, preferring the override values; null when either cannot be read. */
export async function readScreen(adb: Adb): Promise<{ width: number; height: number; density: number } | null> {
  const [size, density] = await Promise.all([shellText(adb, 'wm size'), shellText(adb, 'wm density')]);
  if (size === null || density === null) return null;
  const sizeMatch =
    /Override size:\s*(\d+)x(\d+)/.exec(size) ?? /Physical size:\s*(\d+)x(\d+)/.exec(size);
  const densityMatch = /Override density:\s*(\d+)/.exec(density) ?? /Physical density:\s*(\d+)/.exec(density);
  if (sizeMatch === null || densityMatch === null) return null;
  return { width: Number(sizeMatch[1]), height: Number(sizeMatch[2]), density: Number(densityMatch[1]) };
}

/** `dumpsys battery`; null when it cannot be read (no battery service, a TV box…). */
export async function readBattery(adb: Adb): Promise<Battery | null> {
  const text = await shellText(adb, 'dumpsys battery');
  return text === null ? null : parseBattery(text);
}

export function parseBattery(text: string): Battery | null {
  const field = (name: string): string | undefined =>
    new RegExp(`^\\s*${name}:\\s*(.+?)\\s*$`, 'm').exec(text)?.[1];
  const level = Number(field('level'));
  if (field('level') === undefined || !Number.isFinite(level)) return null;
  const scale = Number(field('scale') ?? 100);
  const percent = Math.round(scale > 0 && scale !== 100 ? (level * 100) / scale : level);
  const powered = ['AC powered', 'USB powered', 'Wireless powered', 'Dock powered'].some((name) => field(name) === 'true');
  // status 2 is BATTERY_STATUS_CHARGING, 5 FULL (still on power).
  const status = Number(field('status'));
  const temperature = Number(field('temperature'));
  return {
    level: Math.max(0, Math.min(100, percent)),
    charging: status === 2 || (powered && status === 5),
    temperatureC: field('temperature') !== undefined && Number.isFinite(temperature) ? temperature / 10 : null,
  };
}
