import { createHmac, randomBytes } from 'node:crypto';

/**
 * Signing as the Standard Webhooks specification says (https://www.standardwebhooks.com), the way the server
 * signs its deliveries: `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the
 * bytes a `whsec_` secret encodes in base64.
 */

const PREFIX = 'whsec_';
/** The bytes of a generated secret, as the server's endpoints get. */
const SECRET_BYTES = 24;

/** A new random secret: `whsec_` and the base64 of 24 bytes. */
export function generateSecret(): string {
  return `${PREFIX}${randomBytes(SECRET_BYTES).toString('base64')}`;
}

/** The key a secret encodes, or `undefined` when it is not `whsec_` followed by padded base64. */
export function secretKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(PREFIX)) return undefined;
  const encoded = secret.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return undefined;
  return Buffer.from(encoded, 'base64');
}

/**
 * The three headers of a delivery of `body` (the exact bytes sent) with message id `id`, signed at `now` with
 * `key` (from `secretKey`).
 */
export function signedHeaders(key: Buffer, id: string, body: string, now: Date = new Date()): Record<string, string> {
  const timestamp = String(Math.floor(now.getTime() / 1000));
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}
