import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { defaultProfile, type DeviceProfile } from './profile.js';

/** A profile without its serial: what several devices of the same kind share. */
export type ProfileTemplate = Omit<DeviceProfile, 'serial'> & { serial?: string };

const ARM64 = ['arm64-v8a', 'armeabi-v7a', 'armeabi'];

/** Built-in profiles, by name, that look like real phones (and one emulator). */
export const BUILT_IN_PROFILES: Readonly<Record<string, ProfileTemplate>> = {
  virtual: withoutSerial(defaultProfile(0)),
  'pixel-8': {
    model: 'Pixel 8',
    product: 'shiba',
    device: 'shiba',
    manufacturer: 'Google',
    brand: 'google',
    release: '14',
    sdk: 34,
    abis: ['arm64-v8a'],
    screen: { width: 1080, height: 2400, density: 420 },
    battery: { level: 78, status: 'charging', plugged: 'usb', temperature: 291, voltage: 4123 },
  },
  'pixel-6a': {
    model: 'Pixel 6a',
    product: 'bluejay',
    device: 'bluejay',
    manufacturer: 'Google',
    brand: 'google',
    release: '13',
    sdk: 33,
    abis: ARM64,
    screen: { width: 1080, height: 2400, density: 420 },
    battery: { level: 64, status: 'discharging', plugged: 'none', temperature: 305, voltage: 3921 },
  },
  'galaxy-s21': {
    model: 'SM-G991B',
    product: 'o1sxeea',
    device: 'o1s',
    manufacturer: 'samsung',
    brand: 'samsung',
    release: '12',
    sdk: 31,
    abis: ARM64,
    screen: { width: 1080, height: 2400, density: 421 },
    battery: { level: 100, status: 'full', plugged: 'ac', temperature: 276, voltage: 4388 },
  },
  'pixel-3': {
    model: 'Pixel 3',
    product: 'blueline',
    device: 'blueline',
    manufacturer: 'Google',
    brand: 'google',
    release: '9',
    sdk: 28,
    abis: ARM64,
    screen: { width: 1080, height: 2160, density: 440 },
    battery: { level: 42, status: 'discharging', plugged: 'none', temperature: 318, voltage: 3795 },
  },
  'emulator-x86_64': {
    model: 'sdk_gphone64_x86_64',
    product: 'sdk_gphone64_x86_64',
    device: 'emu64x',
    manufacturer: 'Google',
    brand: 'google',
    release: '15',
    sdk: 35,
    abis: ['x86_64', 'arm64-v8a'],
    screen: { width: 1080, height: 2400, density: 420 },
    battery: { level: 100, status: 'charging', plugged: 'ac', temperature: 250, voltage: 5000 },
  },
};

export class ProfileError extends Error {
  override readonly name = 'ProfileError';
}

export function builtInProfile(name: string): ProfileTemplate {
  const profile = Object.hasOwn(BUILT_IN_PROFILES, name) ? BUILT_IN_PROFILES[name] : undefined;
  if (profile === undefined) {
    throw new ProfileError(`unknown profile "${name}"; built-in: ${Object.keys(BUILT_IN_PROFILES).join(', ')}`);
  }
  return profile;
}

const word = z.string().min(1).regex(/^[^;:=\s]([^;:=]*[^;:=\s])?$/, 'must not contain ";", ":" or "=" or be blank');
const templateSchema = z.strictObject({
  serial: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1 to 64 letters, digits, ".", "_" or "-"').optional(),
  model: word,
  product: word,
  device: word,
  manufacturer: word,
  brand: word,
  release: word,
  sdk: z.number().int().min(1).max(99),
  abis: z.array(z.enum(['arm64-v8a', 'armeabi-v7a', 'armeabi', 'x86_64', 'x86', 'riscv64'])).min(1),
  screen: z
    .strictObject({
      width: z.number().int().min(1).max(8192),
      height: z.number().int().min(1).max(8192),
      density: z.number().int().min(72).max(1000),
    })
    .optional(),
  battery: z
    .strictObject({
      level: z.number().int().min(0).max(100),
      status: z.enum(['unknown', 'charging', 'discharging', 'not-charging', 'full']),
      plugged: z.enum(['none', 'ac', 'usb', 'wireless']),
      temperature: z.number().int(),
      voltage: z.number().int().min(0),
    })
    .optional(),
  storageMiB: z.number().int().min(1).max(65536).optional(),
});

/** Checks a parsed JSON profile; the error is one line naming the first bad field. */
export function parseProfile(value: unknown, source = 'profile'): ProfileTemplate {
  const result = templateSchema.safeParse(value);
  if (result.success) return result.data;
  const [issue] = result.error.issues;
  const path = issue === undefined || issue.path.length === 0 ? '' : ` ${issue.path.join('.')}:`;
  throw new ProfileError(`${source}:${path} ${issue?.message ?? 'invalid'}`);
}

/** Reads a JSON profile file: every field of a profile, with serial, screen and battery optional. */
export async function loadProfileFile(path: string): Promise<ProfileTemplate> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ProfileError(`${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ProfileError(`${path}: not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  return parseProfile(value, path);
}

let serialsIssued = 0;

/** A serial no other device of this process has: `CPVIRT0001`, `CPVIRT0002`, … */
export function nextSerial(): string {
  serialsIssued++;
  return `CPVIRT${String(serialsIssued).padStart(4, '0')}`;
}

/**
 * The profile of the `index`th device made from a template: the template's serial (suffixed `-2`, `-3`, … after the
 * first device) or a fresh one.
 */
export function instantiate(template: ProfileTemplate, index: number): DeviceProfile {
  const { serial, ...rest } = template;
  if (serial === undefined) return { ...rest, serial: nextSerial() };
  return { ...rest, serial: index === 0 ? serial : `${serial}-${index + 1}` };
}

function withoutSerial(profile: DeviceProfile): ProfileTemplate {
  const { serial: _serial, ...rest } = profile;
  return rest;
}
