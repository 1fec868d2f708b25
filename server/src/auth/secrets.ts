import { createHash, randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** The largest multiple of 62 that fits a byte: bytes at or above it are dropped so every character is equally likely. */
const UNBIASED_LIMIT = 248;

/** `length` uniformly random base62 characters from the system CSPRNG. */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length)) {
      if (byte < UNBIASED_LIMIT && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

export type SecretPrefix = 'cpa_' | 'cpr_' | 'cpt_';

/** 43 base62 characters carry more than 256 bits. */
const SECRET_LENGTH = 43;

/** A bearer secret: its prefix tells what kind of credential it is. */
export function newSecret(prefix: SecretPrefix): string {
  return prefix + randomBase62(SECRET_LENGTH);
}

/** Secrets are stored only as this digest: they are random enough that no salt or slow hash is needed. */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}
