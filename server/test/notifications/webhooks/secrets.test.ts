import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newWebhookSecret, SecretBox, SECRETS_KEY_FILE } from '../../../src/notifications/webhooks/secrets.js';

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'cloudphone-secrets-'));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('newWebhookSecret', () => {
  it('is whsec_ and the base64 of 24 random bytes', () => {
    const secrets = new Set(Array.from({ length: 50 }, () => newWebhookSecret()));
    expect(secrets.size).toBe(50);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
      expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(24);
    }
  });
});

describe('SecretBox', () => {
  it('seals to versioned text that opens to what was sealed, a fresh IV each time', async () => {
    const box = await SecretBox.open(dataDir);
    const secret = newWebhookSecret();
    const first = box.seal(secret);
    const second = box.seal(secret);
    expect(first).toMatch(/^v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(first).not.toBe(second);
    expect(first).not.toContain(secret.slice(6));
    expect(box.unseal(first)).toBe(secret);
    expect(box.unseal(second)).toBe(secret);
    expect(box.unseal(box.seal('é ✓ 🔑'))).toBe('é ✓ 🔑');
  });

  it('creates the key file once, mode 0600, and opens what another box over the same directory sealed', async () => {
    const box = await SecretBox.open(join(dataDir, 'nested'));
    const file = join(dataDir, 'nested', SECRETS_KEY_FILE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const key = await readFile(file, 'utf8');
    expect(Buffer.from(key.trim(), 'base64')).toHaveLength(32);
    const again = await SecretBox.open(join(dataDir, 'nested'));
    expect(await readFile(file, 'utf8')).toBe(key);
    expect(again.unseal(box.seal('shared'))).toBe('shared');
  });

  it('agrees on one key when many open the directory at once, leaving no stray files', async () => {
    const boxes = await Promise.all(Array.from({ length: 20 }, () => SecretBox.open(dataDir)));
    const sealed = boxes[0]!.seal('one key');
    for (const box of boxes) expect(box.unseal(sealed)).toBe('one key');
    expect(await readdir(dataDir)).toEqual([SECRETS_KEY_FILE]);
  });

  it('refuses text sealed under another key, altered, or not sealed at all', async () => {
    const box = await SecretBox.open(dataDir);
    const other = new SecretBox(Buffer.alloc(32, 7));
    const sealed = box.seal('secret');
    expect(() => other.unseal(sealed)).toThrow(/another/);
    const [version, iv, tag, ciphertext] = sealed.split(':') as [string, string, string, string];
    const flipped = Buffer.from(ciphertext, 'base64');
    flipped[0]! ^= 1;
    expect(() => box.unseal([version, iv, tag, flipped.toString('base64')].join(':'))).toThrow(/altered/);
    expect(() => box.unseal(['v2', iv, tag, ciphertext].join(':'))).toThrow(/Not a sealed secret/);
    expect(() => box.unseal('whsec_plain')).toThrow(/Not a sealed secret/);
  });

  it('refuses a key file that does not hold a 32-byte key', async () => {
    await writeFile(join(dataDir, SECRETS_KEY_FILE), 'c2hvcnQ=\n');
    await expect(SecretBox.open(dataDir)).rejects.toThrow(/32-byte key/);
  });
});
