import { constants, generateKeyPairSync, privateEncrypt, type KeyObject } from 'node:crypto';

/** A key pair like `~/.android/adbkey` and `adbkey.pub`: the public half in adb's format, the private half to sign. */
export interface AdbKeyPair {
  publicKey: string;
  privateKey: KeyObject;
}

const SHA1_DIGEST_INFO = Buffer.from('3021300906052b0e03021a05000414', 'hex');

export function generateAdbKeyPair(): AdbKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 });
  return { publicKey: `${encodeAdbPublicKey(publicKey)} test@cloudphone`, privateKey };
}

/** Signs a token as adb does: RSA PKCS#1 v1.5 of the token taken as a SHA-1 digest. */
export function signToken(privateKey: KeyObject, token: Buffer): Buffer {
  return privateEncrypt(
    { key: privateKey, padding: constants.RSA_PKCS1_PADDING },
    Buffer.concat([SHA1_DIGEST_INFO, token]),
  );
}

/** Android's RSA public key struct, written independently of the parser under test. */
function encodeAdbPublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const n = BigInt(`0x${Buffer.from(jwk.n as string, 'base64url').toString('hex')}`);
  const e = Number(BigInt(`0x${Buffer.from(jwk.e as string, 'base64url').toString('hex')}`));
  const words = 2048 / 32;
  const word = 1n << 32n;
  const n0inv = (word - modInverse(n % word, word)) % word;
  const rr = (1n << BigInt(2 * words * 32)) % n;
  const out = Buffer.alloc(4 + 4 + 2 * 4 * words + 4);
  out.writeUInt32LE(words, 0);
  out.writeUInt32LE(Number(n0inv), 4);
  writeWords(out, 8, n, words);
  writeWords(out, 8 + 4 * words, rr, words);
  out.writeUInt32LE(e, 8 + 8 * words);
  return out.toString('base64');
}

function writeWords(out: Buffer, offset: number, value: bigint, words: number): void {
  for (let index = 0; index < words; index++) {
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
