import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevices } from '../../src/virtual-device/daemon.js';
import { Device } from '../../src/virtual-device/device.js';
import {
  BUILT_IN_PROFILES,
  ProfileError,
  builtInProfile,
  instantiate,
  loadProfileFile,
  parseProfile,
} from '../../src/virtual-device/profiles.js';

const CUSTOM = {
  model: 'Pixel 7',
  product: 'panther',
  device: 'panther',
  manufacturer: 'Google',
  brand: 'google',
  release: '14',
  sdk: 34,
  abis: ['arm64-v8a'],
  screen: { width: 1080, height: 2400, density: 420 },
};

describe('device profiles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cloudphone-profiles-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has built-in phones across SDK 28 to 35 with arm64 and x86_64', () => {
    expect(Object.keys(BUILT_IN_PROFILES)).toEqual(
      expect.arrayContaining(['virtual', 'pixel-8', 'pixel-6a', 'galaxy-s21', 'pixel-3', 'emulator-x86_64']),
    );
    expect(builtInProfile('pixel-8')).toMatchObject({
      model: 'Pixel 8',
      sdk: 34,
      abis: ['arm64-v8a'],
      screen: { width: 1080, height: 2400, density: 420 },
    });
    expect(builtInProfile('pixel-3')).toMatchObject({ sdk: 28, abis: ['arm64-v8a', 'armeabi-v7a', 'armeabi'] });
    expect(builtInProfile('emulator-x86_64')).toMatchObject({ sdk: 35, abis: ['x86_64', 'arm64-v8a'] });
    for (const profile of Object.values(BUILT_IN_PROFILES)) expect(() => parseProfile(profile)).not.toThrow();
    expect(() => builtInProfile('nokia-3310')).toThrow(/unknown profile "nokia-3310"; built-in: virtual, pixel-8/);
  });

  it('gives every device a serial of its own', () => {
    const a = instantiate(builtInProfile('pixel-8'), 0);
    const b = instantiate(builtInProfile('pixel-8'), 1);
    expect(a.serial).toMatch(/^CPVIRT\d{4}$/);
    expect(b.serial).not.toBe(a.serial);
    const named = { ...CUSTOM, serial: 'LAB7' };
    expect([0, 1, 2].map((index) => instantiate(named, index).serial)).toEqual(['LAB7', 'LAB7-2', 'LAB7-3']);
  });

  it('loads a JSON profile file', async () => {
    const file = join(dir, 'pixel-7.json');
    await writeFile(file, JSON.stringify(CUSTOM));
    const template = await loadProfileFile(file);
    expect(template).toEqual(CUSTOM);
    const device = new Device(instantiate(template, 0));
    expect(device.system.screen).toEqual(CUSTOM.screen);
    expect(device.files.capacity).toBe(64 * 1024 * 1024);
  });

  it('gives a device the storage its profile names, in MiB', async () => {
    const file = join(dir, 'small.json');
    await writeFile(file, JSON.stringify({ ...CUSTOM, storageMiB: 2 }));
    const device = new Device(instantiate(await loadProfileFile(file), 0));
    expect(device.files.capacity).toBe(2 * 1024 * 1024);
    expect(() => parseProfile({ ...CUSTOM, storageMiB: 0 })).toThrow(/storageMiB: /);
    expect(() => parseProfile({ ...CUSTOM, storageMiB: 1.5 })).toThrow(/storageMiB: /);
  });

  it('refuses a bad profile file with a one-line error', async () => {
    const bad = async (content: string) => {
      const file = join(dir, 'bad.json');
      await writeFile(file, content);
      const error = await loadProfileFile(file).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ProfileError);
      const message = (error as Error).message;
      expect(message).not.toContain('\n');
      return message;
    };
    expect(await bad('{ nope')).toMatch(/bad\.json: not JSON: /);
    expect(await bad(JSON.stringify({ ...CUSTOM, sdk: 'fourteen' }))).toMatch(/bad\.json: sdk: .*number/);
    expect(await bad(JSON.stringify({ ...CUSTOM, abis: ['mips64'] }))).toMatch(/bad\.json: abis\.0: /);
    expect(await bad(JSON.stringify({ ...CUSTOM, model: 'a;b' }))).toMatch(/bad\.json: model: must not contain/);
    expect(await bad(JSON.stringify({ ...CUSTOM, colour: 'red' }))).toMatch(/bad\.json: .*colour/);
    const { model: _model, ...withoutModel } = CUSTOM;
    expect(await bad(JSON.stringify(withoutModel))).toMatch(/bad\.json: model: /);
    await expect(loadProfileFile(join(dir, 'missing.json'))).rejects.toThrow(/missing\.json: ENOENT/);
  });

  it('starts several devices from one profile, each with its own serial', async () => {
    const devices = await startVirtualDevices(2, 0, { profile: 'galaxy-s21' });
    try {
      expect(devices.map((device) => device.state.profile.model)).toEqual(['SM-G991B', 'SM-G991B']);
      expect(new Set(devices.map((device) => device.serial)).size).toBe(2);
      expect(devices[0]!.state.userland.properties.get('ro.serialno')).toBe(devices[0]!.serial);
    } finally {
      await Promise.all(devices.map((device) => device.close()));
    }
  });
});
