import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The file in the data directory holding the key that secrets at rest are encrypted with. */
export const SECRETS_KEY_FILE = 'secrets.key';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const VERSION = 'v1';

/** A new signing secret as Standard Webhooks writes them: `whsec_` and the base64 of 24 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

/**
 * Encrypts secrets kept in the database (webhook signing secrets) with AES-256-GCM, so that a copy of the database
 * alone does not give them away. The key lives in the data directory, which the nodes of a cluster share.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new Error(`A secret box key has ${KEY_BYTES} bytes, not ${key.length}.`);
    this.#key = key;
  }

  /** The box of the key in `<dataDir>/secrets.key`, created (mode 0600) the first time. */
  static async open(dataDir: string): Promise<SecretBox> {
    return new SecretBox(await loadOrCreateKey(dataDir));
  }

  /** `v1:<iv>:<tag>:<ciphertext>`, each part base64; a fresh IV every time. */
  seal(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [VERSION, ...[iv, cipher.getAuthTag(), ciphertext].map((part) => part.toString('base64'))].join(':');
  }

  /** The text `seal` was given; throws when `sealed` is malformed, was sealed under another key or was altered. */
  unseal(sealed: string): string {
    const parts = sealed.split(':');
    if (parts.length !== 4 || parts[0] !== VERSION) throw new Error('Not a sealed secret.');
    const [iv, tag, ciphertext] = parts.slice(1).map((part) => Buffer.from(part, 'base64')) as [Buffer, Buffer, Buffer];
    if (iv.length !== IV_BYTES || tag.length !== 16) throw new Error('Not a sealed secret.');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, iv);
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('A sealed secret does not open with this key: it was sealed under another or altered.');
    }
  }
}

/**
 * Reads the key file, or creates it. A new key is written to a file of this process's own and then hard-linked to
 * its name, which fails if the name exists: a node starting at the same moment either sees no file or the whole key,
 * and whichever links first wins for both.
 */
async function loadOrCreateKey(dataDir: string): Promise<Buffer> {
  const file = join(dataDir, SECRETS_KEY_FILE);
  const existing = await readKey(file);
  if (existing !== undefined) return existing;
  await mkdir(dataDir, { recursive: true });
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await writeFile(temp, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await unlink(temp);
  }
  const key = await readKey(file);
  if (key === undefined) throw new Error(`${file} vanished as it was created.`);
  return key;
}

async function readKey(file: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`${file} does not hold a ${KEY_BYTES}-byte key in base64.`);
  return key;
}
