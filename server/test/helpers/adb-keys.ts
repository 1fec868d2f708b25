import { constants, generateKeyPairSync, privateEncrypt, type KeyObject } from 'node:crypto';
import { encodeAdbPublicKey } from '../../src/adb-protocol/index.js';

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
