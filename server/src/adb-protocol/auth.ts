import { constants, createPublicKey, publicDecrypt, randomBytes, type KeyObject } from 'node:crypto';

/** AUTH packet types (arg0). */
export const AuthType = {
  TOKEN: 1,
  SIGNATURE: 2,
  RSAPUBLICKEY: 3,
} as const;

/** The size of the random token the device asks the host to sign. */
export const TOKEN_SIZE = 20;

/** The DER DigestInfo prefix of a SHA-1 digest: adb signs its token as if it were a SHA-1 digest. */
const SHA1_DIGEST_INFO = Buffer.from('3021300906052b0e03021a05000414', 'hex');

export class AdbKeyError extends Error {
  override readonly name = 'AdbKeyError';
}

/**
 * Reads a public key in adb's format (a line of `~/.android/adbkey.pub`: base64, then an optional comment). The
 * decoded bytes are Android's RSA public key struct: u32 length in words, u32 n0inv, n and rr as `length` LE words
 * each (least significant word first), u32 exponent.
 */
export function parseAdbPublicKey(line: string): KeyObject {
  const encoded = line.trim().split(/\s+/)[0] ?? '';
  const bytes = Buffer.from(encoded, 'base64');
  if (bytes.length < 4) throw new AdbKeyError('adb public key is too short');
  const words = bytes.readUInt32LE(0);
  const size = 4 + 4 + 2 * 4 * words + 4;
  if (words === 0 || bytes.length !== size) throw new AdbKeyError('adb public key has the wrong size');
  const modulus = Buffer.from(bytes.subarray(8, 8 + 4 * words)).reverse();
  const exponent = bytes.readUInt32LE(size - 4);
  return createPublicKey({
    key: { kty: 'RSA', n: modulus.toString('base64url'), e: unsignedBigEndian(exponent).toString('base64url') },
    format: 'jwk',
  });
}

/** A fresh token for AUTH(TOKEN). */
export function newAuthToken(): Buffer {
  return randomBytes(TOKEN_SIZE);
}

/** Whether `signature` is the key's RSA PKCS#1 v1.5 signature of `token`, taken as a SHA-1 digest. */
export function verifyAdbSignature(key: KeyObject, token: Buffer, signature: Buffer): boolean {
  let decrypted: Buffer;
  try {
    decrypted = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
  return decrypted.equals(Buffer.concat([SHA1_DIGEST_INFO, token]));
}

function unsignedBigEndian(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  let start = 0;
  while (start < 3 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

/** The number of 32-bit words of a 2048-bit modulus, the only size adb uses. */
const KEY_WORDS = 2048 / 32;

/**
 * Encodes an RSA-2048 public key as adb stores it in `adbkey.pub` (without the comment): Android's RSA public key
 * struct, base64. The inverse of {@link parseAdbPublicKey}.
 */
export function encodeAdbPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new AdbKeyError('not an RSA key');
  const n = BigInt(`0x${Buffer.from(jwk.n, 'base64url').toString('hex')}`);
  const e = Number(BigInt(`0x${Buffer.from(jwk.e, 'base64url').toString('hex')}`));
  if (n >> BigInt(KEY_WORDS * 32) !== 0n) throw new AdbKeyError('adb keys are RSA-2048');
  const word = 1n << 32n;
  const n0inv = (word - modInverse(n % word, word)) % word;
  const rr = (1n << BigInt(2 * KEY_WORDS * 32)) % n;
  const out = Buffer.alloc(4 + 4 + 2 * 4 * KEY_WORDS + 4);
  out.writeUInt32LE(KEY_WORDS, 0);
  out.writeUInt32LE(Number(n0inv), 4);
  writeWords(out, 8, n);
  writeWords(out, 8 + 4 * KEY_WORDS, rr);
  out.writeUInt32LE(e, 8 + 8 * KEY_WORDS);
  return out.toString('base64');
}

function writeWords(out: Buffer, offset: number, value: bigint): void {
  for (let index = 0; index < KEY_WORDS; index++) {
    out.writeUInt32LE(Number((value >> BigInt(32 * index)) & 0xffffffffn), offset + 4 * index);
  }
}

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return ((oldS % m) + m) % m;
}
