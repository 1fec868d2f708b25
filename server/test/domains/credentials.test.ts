import { describe, expect, it } from 'vitest';
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../../src/auth/passwords.js';
import { newSecret, randomBase62, secretDigest } from '../../src/auth/secrets.js';

describe('passwords', () => {
  it('hashes with scrypt N=16384 r=8 p=1, a 16-byte salt and a 32-byte key', async () => {
    const encoded = await hashPassword('correct-horse-battery-staple');
    const [scheme, n, r, p, salt, hash] = encoded.split('$');
    expect([scheme, n, r, p]).toEqual(['scrypt', '16384', '8', '1']);
    expect(Buffer.from(salt!, 'base64')).toHaveLength(16);
    expect(Buffer.from(hash!, 'base64')).toHaveLength(32);
  });

  it('salts every hash', async () => {
    const [a, b] = await Promise.all([hashPassword('same password'), hashPassword('same password')]);
    expect(a).not.toBe(b);
  });

  it('verifies the right password and rejects others', async () => {
    const encoded = await hashPassword('correct-horse-battery-staple');
    expect(await verifyPassword('correct-horse-battery-staple', encoded)).toBe(true);
    expect(await verifyPassword('correct-horse-battery-stapl', encoded)).toBe(false);
    expect(await verifyPassword('', encoded)).toBe(false);
  });

  it('treats canonically equivalent Unicode spellings as one password', async () => {
    const encoded = await hashPassword('caf\u00e9-au-lait-123');
    expect(await verifyPassword('cafe\u0301-au-lait-123', encoded)).toBe(true);
  });

  it('refuses malformed hashes and parameters beyond its limits', async () => {
    const encoded = await hashPassword('correct-horse-battery-staple');
    const [, , , , salt, hash] = encoded.split('$');
    for (const bad of [
      'not-a-hash',
      `bcrypt$16384$8$1$${salt}$${hash}`,
      `scrypt$16384$8$1$${salt}$`,
      `scrypt$${2 ** 30}$8$1$${salt}$${hash}`,
      `scrypt$16384$64$1$${salt}$${hash}`,
      `scrypt$x$8$1$${salt}$${hash}`,
    ]) {
      expect(await verifyPassword('correct-horse-battery-staple', bad)).toBe(false);
    }
  });

  it('spends a verification on unknown users', async () => {
    await expect(verifyAgainstDummy('anything at all')).resolves.toBeUndefined();
  });
});

describe('secrets', () => {
  it('draws base62 characters of the requested length', () => {
    const text = randomBase62(2000);
    expect(text).toMatch(/^[0-9A-Za-z]{2000}$/);
    expect(new Set(text).size).toBe(62);
  });

  it('makes prefixed secrets with more than 256 bits after the prefix', () => {
    for (const prefix of ['cpa_', 'cpr_', 'cpt_'] as const) {
      const secret = newSecret(prefix);
      expect(secret).toMatch(new RegExp(`^${prefix}[0-9A-Za-z]{43}$`));
    }
    expect(43 * Math.log2(62)).toBeGreaterThan(256);
    expect(newSecret('cpt_')).not.toBe(newSecret('cpt_'));
  });

  it('stores secrets as their sha256 in hex', () => {
    expect(secretDigest('cpt_abc')).toBe('3c33264fca9c64674cb67a54f57c88fd786d434f0f345956fd4d4b6d085d95a7');
  });
});
