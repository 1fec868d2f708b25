import { createHmac } from 'node:crypto';

/** The headers of a signed delivery, as Standard Webhooks names them. */
export type SignatureHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
};

const SECRET_PREFIX = 'whsec_';

/**
 * Signs a delivery the Standard Webhooks way: HMAC-SHA256 of `<id>.<timestamp>.<body>` under each secret's key (the
 * base64 after `whsec_`), one `v1,<base64>` per secret, space-separated in the order given (newest first), so that a
 * receiver still verifying with the previous secret during a rotation accepts it too.
 */
export function signatureHeaders(input: {
  id: string;
  timestampSeconds: number;
  body: string | Buffer;
  secrets: readonly string[];
}): SignatureHeaders {
  const { id, timestampSeconds, body, secrets } = input;
  if (secrets.length === 0) throw new Error('A delivery is signed with at least one secret.');
  const timestamp = String(Math.floor(timestampSeconds));
  const signatures = secrets.map((secret) => {
    const hmac = createHmac('sha256', signingKey(secret));
    hmac.update(`${id}.${timestamp}.`);
    hmac.update(body);
    return `v1,${hmac.digest('base64')}`;
  });
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signatures.join(' ') };
}

function signingKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('A webhook secret starts with whsec_.');
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  if (key.length === 0) throw new Error('A webhook secret has a key after whsec_.');
  return key;
}
