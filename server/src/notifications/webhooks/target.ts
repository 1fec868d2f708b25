import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ApiError } from '../../http/errors.js';

/** Why an address is no target for a webhook: it leads into the server's own network, or nowhere. */
export type RefusedAddress =
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'shared'
  | 'unspecified'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'invalid';

export type AddressVerdict = 'allowed' | RefusedAddress;

type Bytes = readonly number[];

interface Range {
  prefix: Bytes;
  bits: number;
  verdict: RefusedAddress;
}

function v4Range(cidr: string, verdict: RefusedAddress): Range {
  const [address, bits] = cidr.split('/') as [string, string];
  return { prefix: parseV4(address)!, bits: Number(bits), verdict };
}

function v6Range(cidr: string, verdict: RefusedAddress): Range {
  const [address, bits] = cidr.split('/') as [string, string];
  return { prefix: parseV6(address)!, bits: Number(bits), verdict };
}

/** IANA's special-purpose IPv4 ranges that are not globally reachable, most specific first. */
const V4_RANGES: readonly Range[] = [
  v4Range('255.255.255.255/32', 'broadcast'),
  v4Range('0.0.0.0/8', 'unspecified'),
  v4Range('10.0.0.0/8', 'private'),
  v4Range('100.64.0.0/10', 'shared'),
  v4Range('127.0.0.0/8', 'loopback'),
  v4Range('169.254.0.0/16', 'link_local'),
  v4Range('172.16.0.0/12', 'private'),
  v4Range('192.0.0.0/24', 'reserved'),
  v4Range('192.0.2.0/24', 'reserved'),
  v4Range('192.88.99.0/24', 'reserved'),
  v4Range('192.168.0.0/16', 'private'),
  v4Range('198.18.0.0/15', 'reserved'),
  v4Range('198.51.100.0/24', 'reserved'),
  v4Range('203.0.113.0/24', 'reserved'),
  v4Range('224.0.0.0/4', 'multicast'),
  v4Range('240.0.0.0/4', 'reserved'),
];

/** The IPv6 ranges that are not globally reachable; those embedding an IPv4 address are judged by it instead. */
const V6_RANGES: readonly Range[] = [
  v6Range('::/128', 'unspecified'),
  v6Range('::1/128', 'loopback'),
  // IPv4-compatible addresses, long deprecated.
  v6Range('::/96', 'reserved'),
  v6Range('64:ff9b:1::/48', 'private'),
  v6Range('100::/64', 'reserved'),
  // Teredo, ORCHID, documentation and the rest of the IETF's protocol assignments.
  v6Range('2001::/23', 'reserved'),
  v6Range('2001:db8::/32', 'reserved'),
  v6Range('3fff::/20', 'reserved'),
  v6Range('5f00::/16', 'reserved'),
  v6Range('fc00::/7', 'private'),
  v6Range('fe80::/10', 'link_local'),
  // Site-local, deprecated but still routed inside some networks.
  v6Range('fec0::/10', 'private'),
  v6Range('ff00::/8', 'multicast'),
];

/** Where an IPv6 address carries an IPv4 one, which is where a packet to it ends up. */
const V4_EMBEDDED: readonly { prefix: Bytes; bits: number; offset: number }[] = [
  // IPv4-mapped.
  { prefix: parseV6('::ffff:0:0')!, bits: 96, offset: 12 },
  // NAT64's well-known prefix.
  { prefix: parseV6('64:ff9b::')!, bits: 96, offset: 12 },
  // 6to4.
  { prefix: parseV6('2002::')!, bits: 16, offset: 2 },
];

function parseV4(text: string): Bytes | undefined {
  if (isIP(text) !== 4) return undefined;
  return text.split('.').map(Number);
}

function parseV6(text: string): Bytes | undefined {
  if (isIP(text) !== 6) return undefined;
  let rest = text;
  let tail: number[] = [];
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(rest);
  if (dotted !== null) {
    tail = parseV4(dotted[1]!)! as number[];
    rest = `${rest.slice(0, dotted.index)}:0:0`;
  }
  const [head, after] = rest.split('::') as [string, string | undefined];
  const groups = (part: string | undefined) => (part === undefined || part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = groups(head);
  const right = groups(after);
  const words = after === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = words.flatMap((word) => [word >> 8, word & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function inRange(bytes: Bytes, prefix: Bytes, bits: number): boolean {
  for (let bit = 0; bit < bits; bit += 8) {
    const mask = bits - bit >= 8 ? 0xff : (0xff << (8 - (bits - bit))) & 0xff;
    if ((bytes[bit / 8]! & mask) !== (prefix[bit / 8]! & mask)) return false;
  }
  return true;
}

function classifyV4(bytes: Bytes): AddressVerdict {
  return V4_RANGES.find((range) => inRange(bytes, range.prefix, range.bits))?.verdict ?? 'allowed';
}

/**
 * Whether a webhook may be sent to an IP address (IPv4 dotted, or IPv6 with an optional `%zone`), or why not:
 * loopback, private (RFC 1918, unique local), link-local, shared (carrier-grade NAT, 100.64/10), unspecified,
 * multicast, broadcast, or reserved (documentation, benchmarking, future use and the like). An IPv6 address that
 * embeds an IPv4 one (mapped, NAT64, 6to4) is judged by the IPv4 address. Anything that is not an address is
 * `invalid`.
 */
export function classifyAddress(ip: string): AddressVerdict {
  const v4 = parseV4(ip);
  if (v4 !== undefined) return classifyV4(v4);
  const v6 = parseV6(ip.replace(/%[^%]*$/, ''));
  if (v6 === undefined) return 'invalid';
  const embedding = V4_EMBEDDED.find((form) => inRange(v6, form.prefix, form.bits));
  if (embedding !== undefined) return classifyV4(v6.slice(embedding.offset, embedding.offset + 4));
  const ranges = V6_RANGES.filter((range) => inRange(v6, range.prefix, range.bits));
  // The most specific range decides (2001:db8::/32 inside 2001::/23 is documentation, not just reserved).
  return ranges.sort((a, b) => b.bits - a.bits)[0]?.verdict ?? 'allowed';
}

const DESCRIPTIONS: Record<RefusedAddress, string> = {
  loopback: 'a loopback address',
  private: 'a private address',
  link_local: 'a link-local address',
  shared: 'a carrier-grade NAT address',
  unspecified: 'the unspecified address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
  invalid: 'not an IP address',
};

/** All the addresses a name resolves to; `dns.lookup` by default. */
export type ResolveAll = (hostname: string) => Promise<LookupAddress[]>;

const resolveWithDns: ResolveAll = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) => (error ? reject(error) : resolve(addresses))),
  );

function literalAddress(hostname: string): string | undefined {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return isIP(bare) === 0 ? undefined : bare;
}

/** `localhost` and its subdomains, which resolve to loopback whatever DNS says (RFC 6761). */
function isLocalhostName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

function notAllowed(detail: string): ApiError {
  return new ApiError('webhook_url_not_allowed', detail);
}

/**
 * Checks a webhook URL before it is stored: http or https, no credentials, and a host that is, or resolves only to,
 * addresses `classifyAddress` allows (any address with `allowPrivate`, without resolving the name). Every attempt
 * checks again the address it actually connects to (see `sendWebhook`), so a name that resolves elsewhere later is
 * still refused. Returns the parsed URL; throws `webhook_url_not_allowed`.
 */
export async function checkWebhookUrl(
  url: string,
  options: { allowPrivate: boolean; resolve?: ResolveAll | undefined },
): Promise<URL> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw notAllowed('The webhook URL is not a valid absolute URL.');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw notAllowed(`A webhook URL is http or https, not ${parsed.protocol.slice(0, -1)}.`);
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw notAllowed('A webhook URL carries no credentials: the signature authenticates the deliveries.');
  }
  if (options.allowPrivate) return parsed;
  const { hostname } = parsed;
  const literal = literalAddress(hostname);
  if (literal !== undefined) {
    const verdict = classifyAddress(literal);
    if (verdict !== 'allowed') throw notAllowed(`Webhooks are not sent to ${literal}: it is ${DESCRIPTIONS[verdict]}.`);
    return parsed;
  }
  if (isLocalhostName(hostname)) throw notAllowed(`Webhooks are not sent to ${hostname}: it is ${DESCRIPTIONS.loopback}.`);
  let addresses: LookupAddress[];
  try {
    addresses = await (options.resolve ?? resolveWithDns)(hostname);
  } catch (error) {
    throw notAllowed(`The webhook URL's host ${hostname} does not resolve (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  if (addresses.length === 0) throw notAllowed(`The webhook URL's host ${hostname} does not resolve.`);
  for (const { address } of addresses) {
    const verdict = classifyAddress(address);
    if (verdict !== 'allowed') {
      throw notAllowed(`Webhooks are not sent to ${hostname}: it resolves to ${address}, ${DESCRIPTIONS[verdict]}.`);
    }
  }
  return parsed;
}

/** How far into a response body an attempt reads, to show what the receiver said. */
/**
 * Connections kept open between attempts, so that a busy endpoint is not sent each delivery over a new connection
 * (and TLS handshake). Every new connection still goes through the guarded lookup: a kept connection is one whose
 * address was allowed when it was opened. An idle one closes after a while.
 */
const keepAlive = {
  http: new HttpAgent({ keepAlive: true, timeout: 30_000 }),
  https: new HttpsAgent({ keepAlive: true, timeout: 30_000 }),
};

export const RESPONSE_EXCERPT_BYTES = 1024;

const USER_AGENT = 'cloudphone-webhooks/1';

/** What one attempt came to. Exactly one of `statusCode` and `error` is null. */
export interface AttemptResult {
  /** The response's status, whatever it was (a redirect is not followed). */
  statusCode: number | null;
  /** From the start of the attempt to the response's headers, or to the failure. */
  latencyMs: number;
  /** The start of the response body (at most 1024 bytes, as UTF-8), or null when there was none. */
  excerpt: string | null;
  /** Why no response came: refused address, connection error, timeout. */
  error: string | null;
  /** What the response's `Retry-After` asked for, in seconds from now; null without a valid one. */
  retryAfterSeconds: number | null;
}

export interface WebhookRequest {
  url: string;
  /** Sent as given, besides `content-type: application/json`, `content-length` and `user-agent` unless given. */
  headers: Record<string, string>;
  body: string;
  /** For the whole attempt: connecting, sending, and waiting for the response. */
  timeoutMs: number;
  allowPrivate: boolean;
  signal?: AbortSignal | undefined;
  resolve?: ResolveAll | undefined;
  /** The time a `Retry-After` date is measured from. */
  now?: (() => Date) | undefined;
}

class RefusedTarget extends Error {}

/**
 * A `lookup` for the connection that resolves the name and refuses it unless every address is allowed: the check
 * is on the addresses actually connected to, so a name that resolved to a public address when the endpoint was
 * created and to a private one now (DNS rebinding) is still refused.
 */
function guardedLookup(resolve: ResolveAll): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (resolved) => {
        const refused = resolved.find(({ address }) => classifyAddress(address) !== 'allowed');
        if (refused !== undefined) {
          const verdict = classifyAddress(refused.address) as RefusedAddress;
          callback(new RefusedTarget(`${hostname} resolves to ${refused.address}, ${DESCRIPTIONS[verdict]}`), '');
          return;
        }
        const family = options.family === 4 || options.family === 6 ? options.family : undefined;
        const addresses = family === undefined ? resolved : resolved.filter((address) => address.family === family);
        const first = addresses[0];
        if (first === undefined) {
          callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
        } else if (options.all) {
          callback(null, addresses);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}

/** Seconds from `now`: a `Retry-After` of delay-seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: Date): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at) || !/[a-z]/i.test(text)) return null;
  return Math.max(0, Math.ceil((at - now.getTime()) / 1000));
}

function describeError(error: unknown): string {
  if (error instanceof RefusedTarget) return `address not allowed: ${error.message}`;
  const { code, message } = error as NodeJS.ErrnoException;
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

/**
 * Sends one webhook attempt: a POST, its redirects not followed, the target's address checked at connection (unless
 * `allowPrivate`), the whole attempt bounded by `timeoutMs`, and at most 1024 bytes of the response read before the
 * connection is closed. Never throws: a failure is the result's `error`.
 */
export async function sendWebhook(request: WebhookRequest): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const failed = (error: string): AttemptResult => ({
    statusCode: null,
    latencyMs: elapsed(),
    excerpt: null,
    error,
    retryAfterSeconds: null,
  });
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return failed('not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return failed(`unsupported scheme ${url.protocol}`);
  const literal = literalAddress(url.hostname);
  if (!request.allowPrivate) {
    const verdict = literal !== undefined ? classifyAddress(literal) : isLocalhostName(url.hostname) ? 'loopback' : 'allowed';
    if (verdict !== 'allowed') return failed(`address not allowed: ${literal ?? url.hostname} is ${DESCRIPTIONS[verdict]}`);
  }
  if (request.signal?.aborted) return failed('aborted');
  const body = Buffer.from(request.body, 'utf8');
  const headers = {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    ...request.headers,
    'content-length': String(body.length),
  };
  const now = request.now ?? (() => new Date());
  return new Promise<AttemptResult>((settle) => {
    let outgoing: ClientRequest | undefined;
    let response: IncomingMessage | undefined;
    let latencyMs = 0;
    const chunks: Buffer[] = [];
    let read = 0;
    let done = false;
    // `complete`: the whole response was read, so its connection may serve the endpoint's next attempt.
    const finish = (error: string | null, complete = false) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
      if (!complete) outgoing?.destroy();
      if (response === undefined) {
        settle(failed(error ?? 'no response'));
        return;
      }
      const excerpt = Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES);
      settle({
        statusCode: response.statusCode ?? null,
        latencyMs,
        excerpt: excerpt.length === 0 ? null : excerpt.toString('utf8'),
        error: null,
        retryAfterSeconds: parseRetryAfter(response.headers['retry-after'], now()),
      });
    };
    const onAbort = () => finish('aborted');
    const timer = setTimeout(() => finish(`timed out after ${request.timeoutMs} ms`), request.timeoutMs);
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    try {
      outgoing = send(url, {
        method: 'POST',
        headers,
        agent: url.protocol === 'https:' ? keepAlive.https : keepAlive.http,
        ...(request.allowPrivate || literal !== undefined ? {} : { lookup: guardedLookup(request.resolve ?? resolveWithDns) }),
      });
    } catch (error) {
      // Headers that are not valid HTTP.
      finish(describeError(error));
      return;
    }
    outgoing.on('response', (incoming) => {
      response = incoming;
      latencyMs = elapsed();
      incoming.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        read += chunk.length;
        if (read >= RESPONSE_EXCERPT_BYTES) finish(null);
      });
      incoming.on('end', () => finish(null, true));
      incoming.on('error', () => finish(null));
    });
    outgoing.on('error', (error) => finish(describeError(error)));
    outgoing.end(body);
  });
}
