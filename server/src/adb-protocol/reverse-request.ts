/** A `reverse:` request, as adbd reads it. */
export type ReverseRequest =
  | { kind: 'list' }
  | { kind: 'remove-all' }
  | { kind: 'remove'; local: string }
  | { kind: 'forward'; norebind: boolean; local: string; remote: string }
  | { kind: 'unknown' };

/** Reads `forward:[norebind:]<local>;<remote>`, `killforward:<local>`, `killforward-all` or `list-forward`. */
export function parseReverseRequest(request: string): ReverseRequest {
  if (request === 'list-forward') return { kind: 'list' };
  if (request === 'killforward-all') return { kind: 'remove-all' };
  if (request.startsWith('killforward:')) return { kind: 'remove', local: request.slice('killforward:'.length) };
  const forward = /^forward:(norebind:)?([^;]*);(.+)$/s.exec(request);
  if (forward === null) return { kind: 'unknown' };
  return { kind: 'forward', norebind: forward[1] !== undefined, local: forward[2] ?? '', remote: forward[3] ?? '' };
}

/** `FAIL` and the length-prefixed message, as adbd refuses a request. */
export function fail(message: string): Buffer {
  return Buffer.concat([Buffer.from('FAIL'), lengthPrefixed(message)]);
}

/** The smart-socket framing: four hex digits of length, then the text. */
export function lengthPrefixed(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from(body.length.toString(16).padStart(4, '0')), body]);
}
