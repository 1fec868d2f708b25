import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAdbPublicKey, verifyAdbSignature } from '../../src/adb-protocol/index.js';
import { defaultProfile, startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/index.js';
import { loadOrCreateAdbKey } from '../../src/devices/adb/key.js';
import { runShell } from '../../src/devices/adb/operations.js';
import { connectDirectAdb } from '../../src/devices/sources/direct.js';
import { testKey } from './helpers.js';
import { constants, createPrivateKey, privateEncrypt, randomBytes } from 'node:crypto';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

describe('loadOrCreateAdbKey', () => {
  it('creates the key once, mode 0600, and loads it again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cloudphone-key-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const first = await loadOrCreateAdbKey(join(dir, 'data'));
    const file = join(dir, 'data', 'adbkey');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toBe(first.privateKey);
    expect(first.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const again = await loadOrCreateAdbKey(join(dir, 'data'));
    expect(again.publicKey).toBe(first.publicKey);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(first.publicKey).toMatch(/^[A-Za-z0-9+/]+=* cloudphone@\S+$/);
    expect(first.fingerprint).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  });

  it('the public line matches the private key (adb signature verifies)', async () => {
    const pair = await testKey();
    const token = randomBytes(20);
    const digestInfo = Buffer.from('3021300906052b0e03021a05000414', 'hex');
    const signature = privateEncrypt(
      { key: createPrivateKey(pair.privateKey), padding: constants.RSA_PKCS1_PADDING },
      Buffer.concat([digestInfo, token]),
    );
    expect(verifyAdbSignature(parseAdbPublicKey(pair.publicKey), token, signature)).toBe(true);
    const keys = [...(pair.credentialStore.iterateKeys() as Iterable<unknown>)];
    expect(keys).toHaveLength(1);
  });

  it('in memory when dataDir is null: a new key each time', async () => {
    const a = await loadOrCreateAdbKey(null);
    const b = await loadOrCreateAdbKey(null);
    expect(a.publicKey).not.toBe(b.publicKey);
  });
});

describe('authenticating to a device that checks keys', () => {
  async function device(authorizedKeys: string[]): Promise<VirtualDevice> {
    const started = await startVirtualDevice({ profile: defaultProfile(0), auth: { authorizedKeys } });
    cleanup.push(() => started.close());
    return started;
  }

  it('is accepted with an authorised key', async () => {
    const pair = await testKey();
    const target = await device([pair.publicKey]);
    const adb = await connectDirectAdb({ host: target.host, port: target.port, serial: 'x', credentialStore: pair.credentialStore });
    cleanup.push(async () => void (await adb.close()));
    expect((await runShell(adb, 'echo ok', { timeoutMs: 5000 })).stdout).toBe('ok\n');
  });

  it('is unauthorized without it', async () => {
    const other = await loadOrCreateAdbKey(null);
    const target = await device([other.publicKey]);
    const pair = await testKey();
    let unauthorized = false;
    const stop = new AbortController();
    const connecting = connectDirectAdb({
      host: target.host,
      port: target.port,
      serial: 'x',
      credentialStore: pair.credentialStore,
      onUnauthorized: () => {
        unauthorized = true;
        stop.abort();
      },
      signal: stop.signal,
    });
    await expect(connecting).rejects.toThrow();
    expect(unauthorized).toBe(true);
  });
});
