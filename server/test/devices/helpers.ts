import type { Adb } from '@yume-chan/adb';
import pino from 'pino';
import type { FastifyBaseLogger } from 'fastify';
import { loadOrCreateAdbKey, type AdbKeyPair } from '../../src/devices/adb/key.js';
import { connectDirectAdb } from '../../src/devices/sources/direct.js';
import type { VirtualDevice } from '../../src/virtual-device/index.js';

let key: Promise<AdbKeyPair> | undefined;

/** One in-memory key for the whole test file (RSA generation takes a moment). */
export function testKey(): Promise<AdbKeyPair> {
  key ??= loadOrCreateAdbKey(null);
  return key;
}

export function silentLog(): FastifyBaseLogger {
  return pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) as unknown as FastifyBaseLogger;
}

export async function connectToVirtual(device: VirtualDevice): Promise<Adb> {
  return connectDirectAdb({
    host: device.host,
    port: device.port,
    serial: device.serial,
    credentialStore: (await testKey()).credentialStore,
  });
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
