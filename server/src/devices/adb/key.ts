import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { AdbCredentialStore, AdbPrivateKey } from '@yume-chan/adb';
import { encodeAdbPublicKey } from '../../adb-protocol/index.js';

/** The server's own ADB key: what it signs device AUTH tokens with on direct connections. */
export interface AdbKeyPair {
  /** PKCS#8 PEM. Never log it. */
  privateKey: string;
  /** One line in `adbkey.pub` format: base64 of Android's RSA public key struct, then ` cloudphone@<hostname>`. */
  publicKey: string;
  /** MD5 of the public key struct, colon-separated lowercase hex, as `adb` and Android's dialog show it. */
  fingerprint: string;
  /** For `AdbDaemonTransport.authenticate`: yields this key only; never generates another. */
  credentialStore: AdbCredentialStore;
}

/**
 * Loads the key at `<dataDir>/adbkey` (PKCS#8 PEM), creating it (RSA-2048, mode 0600) the first time; with a null
 * dataDir the key lives in memory only and is new on every start.
 */
export async function loadOrCreateAdbKey(dataDir: string | null): Promise<AdbKeyPair> {
  if (dataDir === null) return adbKeyPair(newKey());
  const file = join(dataDir, 'adbkey');
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    pem = newKey().export({ format: 'pem', type: 'pkcs8' }).toString();
    await mkdir(dataDir, { recursive: true });
    try {
      await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
    } catch (writeError) {
      // Another process created it at the same moment: use theirs.
      if ((writeError as NodeJS.ErrnoException).code !== 'EEXIST') throw writeError;
      pem = await readFile(file, 'utf8');
    }
  }
  await chmod(file, 0o600);
  return adbKeyPair(createPrivateKey(pem));
}

function newKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 }).privateKey;
}

function adbKeyPair(key: KeyObject): AdbKeyPair {
  const encoded = encodeAdbPublicKey(createPublicKey(key));
  const der = new Uint8Array(key.export({ format: 'der', type: 'pkcs8' }));
  const name = `cloudphone@${hostname()}`;
  const privateKey: AdbPrivateKey = { buffer: der, name };
  const digest = createHash('md5').update(Buffer.from(encoded, 'base64')).digest('hex');
  return {
    privateKey: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey: `${encoded} ${name}`,
    fingerprint: digest.match(/../g)!.join(':'),
    credentialStore: {
      generateKey: () => privateKey,
      *iterateKeys() {
        yield privateKey;
      },
    },
  };
}
