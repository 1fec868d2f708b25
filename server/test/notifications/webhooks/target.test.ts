import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/http/errors.js';
import {
  classifyAddress,
  checkWebhookUrl,
  parseRetryAfter,
  RESPONSE_EXCERPT_BYTES,
  sendWebhook,
  type AddressVerdict,
  type ResolveAll,
} from '../../../src/notifications/webhooks/target.js';

describe('classifyAddress', () => {
  const cases: [string, AddressVerdict][] = [
    // IPv4
    ['93.184.216.34', 'allowed'],
    ['8.8.8.8', 'allowed'],
    ['1.1.1.1', 'allowed'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['9.255.255.255', 'allowed'],
    ['11.0.0.0', 'allowed'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.15.255.255', 'allowed'],
    ['172.32.0.0', 'allowed'],
    ['192.168.1.1', 'private'],
    ['192.169.0.1', 'allowed'],
    ['169.254.169.254', 'link_local'],
    ['169.253.0.1', 'allowed'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.63.255.255', 'allowed'],
    ['100.128.0.0', 'allowed'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.10', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['198.19.255.255', 'reserved'],
    ['198.20.0.0', 'allowed'],
    ['192.0.0.8', 'reserved'],
    // IPv6
    ['2606:4700:4700::1111', 'allowed'],
    ['2a00:1450:4001:81d::200e', 'allowed'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['fc00::1', 'private'],
    ['fd12:3456:789a::1', 'private'],
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['fec0::1', 'private'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['2001::1', 'reserved'],
    ['100::1', 'reserved'],
    ['::2', 'reserved'],
    ['3fff::1', 'reserved'],
    // IPv6 that carries IPv4: judged by the IPv4 address.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:169.254.169.254', 'link_local'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::ffff:8.8.8.8', 'allowed'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::8.8.8.8', 'allowed'],
    ['64:ff9b:1::1', 'private'],
    ['2002:c0a8:0101::1', 'private'],
    ['2002:0808:0808::1', 'allowed'],
    // Not addresses.
    ['localhost', 'invalid'],
    ['', 'invalid'],
    ['127.1', 'invalid'],
    ['256.0.0.1', 'invalid'],
    ['[::1]', 'invalid'],
  ];
  it.each(cases)('%s is %s', (ip, verdict) => {
    expect(classifyAddress(ip)).toBe(verdict);
  });
});

async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ApiError);
  expect((error as ApiError).code).toBe('webhook_url_not_allowed');
  return error as ApiError;
}

describe('checkWebhookUrl', () => {
  const noDns: ResolveAll = () => Promise.reject(new Error('no name is resolved in this test'));

  it('refuses what is not an http(s) URL, and credentials', async () => {
    for (const url of ['not a url', 'ftp://127.0.0.1/', 'file:///etc/passwd', 'javascript:alert(1)', 'ws://127.0.0.1/']) {
      await refusal(checkWebhookUrl(url, { allowPrivate: true }));
    }
    expect((await refusal(checkWebhookUrl('https://user:pw@127.0.0.1/', { allowPrivate: true }))).message).toMatch(/credentials/);
    expect((await refusal(checkWebhookUrl('https://user@127.0.0.1/', { allowPrivate: true }))).message).toMatch(/credentials/);
  });

  it('refuses hosts that are IP literals of the local network, whatever their spelling', async () => {
    for (const url of [
      'http://127.0.0.1/hook',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://[::1]:8080/',
      'http://[::ffff:127.0.0.1]/',
      'https://10.0.0.5/',
      'http://169.254.169.254/latest/meta-data',
      'http://100.64.1.1/',
      'http://0.0.0.0/',
      'http://[fd00::1]/',
      'http://224.0.0.1/',
    ]) {
      await refusal(checkWebhookUrl(url, { allowPrivate: false, resolve: noDns }));
    }
    expect((await refusal(checkWebhookUrl('http://[fe80::1]/', { allowPrivate: false }))).message).toMatch(/link-local/);
  });

  it('refuses localhost without asking DNS', async () => {
    for (const url of ['http://localhost:3000/', 'http://LOCALHOST./', 'http://api.localhost/']) {
      expect((await refusal(checkWebhookUrl(url, { allowPrivate: false, resolve: noDns }))).message).toMatch(/loopback/);
    }
  });

  it('refuses a name when any of its addresses is refused, or when it does not resolve', async () => {
    const resolve: ResolveAll = async (name) =>
      name === 'mixed.example'
        ? [
            { address: '93.184.216.34', family: 4 },
            { address: '10.0.0.7', family: 4 },
          ]
        : name === 'public.example'
          ? [
              { address: '93.184.216.34', family: 4 },
              { address: '2606:2800:220:1::1', family: 6 },
            ]
          : Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' }));
    expect((await refusal(checkWebhookUrl('https://mixed.example/', { allowPrivate: false, resolve }))).message).toMatch(
      /10\.0\.0\.7, a private address/,
    );
    expect((await refusal(checkWebhookUrl('https://nowhere.example/', { allowPrivate: false, resolve }))).message).toMatch(
      /does not resolve \(ENOTFOUND\)/,
    );
    const url = await checkWebhookUrl('https://public.example/hooks?x=1', { allowPrivate: false, resolve });
    expect(url.href).toBe('https://public.example/hooks?x=1');
  });

  it('accepts public IP literals, and with allowPrivate any http(s) host without resolving it', async () => {
    expect((await checkWebhookUrl('https://93.184.216.34/x', { allowPrivate: false, resolve: noDns })).hostname).toBe('93.184.216.34');
    expect((await checkWebhookUrl('http://[2606:4700::1]/', { allowPrivate: false, resolve: noDns })).hostname).toBe('[2606:4700::1]');
    for (const url of ['http://127.0.0.1:9/', 'http://localhost/', 'http://[::1]/', 'https://unresolvable.invalid/']) {
      await expect(checkWebhookUrl(url, { allowPrivate: true, resolve: noDns })).resolves.toBeInstanceOf(URL);
    }
  });
});

describe('parseRetryAfter', () => {
  const now = new Date('2026-11-20T09:00:00.000Z');
  it.each([
    [undefined, null],
    ['120', 120],
    [' 0 ', 0],
    ['Fri, 20 Nov 2026 09:10:00 GMT', 600],
    ['Fri, 20 Nov 2026 08:00:00 GMT', 0],
    ['soon', null],
    ['-5', null],
    ['1.5', null],
  ])('%s → %s', (value, seconds) => {
    expect(parseRetryAfter(value, now)).toBe(seconds);
  });
});

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

/** A receiver on 127.0.0.1 that records each request, its body read, before `respond` answers it (or not). */
async function receiver(respond: (response: ServerResponse, request: Received) => void) {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const entry = { method: request.method!, url: request.url!, headers: request.headers, body: Buffer.concat(chunks).toString() };
      received.push(entry);
      respond(response, entry);
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, received };
}

const base = { headers: { 'webhook-id': 'evt_1' }, body: '{"hello":"world"}', timeoutMs: 2000, allowPrivate: true };

describe('sendWebhook', () => {
  it('POSTs the body with its headers and reports the status, the latency and the response', async () => {
    const target = await receiver((response) => response.writeHead(204).end());
    const ok = await receiver((response) => response.writeHead(200, { 'content-type': 'text/plain' }).end('thanks'));
    const result = await sendWebhook({ ...base, url: `${target.url}/hooks?a=1` });
    expect(result).toEqual({ statusCode: 204, latencyMs: expect.any(Number), excerpt: null, error: null, retryAfterSeconds: null });
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(result.latencyMs).toBeLessThan(2000);
    const [request] = target.received;
    expect(request).toMatchObject({ method: 'POST', url: '/hooks?a=1', body: base.body });
    expect(request!.headers).toMatchObject({
      'webhook-id': 'evt_1',
      'content-type': 'application/json',
      'content-length': String(base.body.length),
      'user-agent': expect.stringMatching(/^cloudphone/),
    });
    expect(await sendWebhook({ ...base, url: ok.url })).toMatchObject({ statusCode: 200, excerpt: 'thanks', error: null });
  });

  it('does not follow a redirect: a 3xx is the result', async () => {
    const target = await receiver((response, request) =>
      request.url === '/moved' ? response.writeHead(302, { location: '/elsewhere' }).end('see elsewhere') : response.writeHead(200).end(),
    );
    const result = await sendWebhook({ ...base, url: `${target.url}/moved` });
    expect(result).toMatchObject({ statusCode: 302, excerpt: 'see elsewhere', error: null });
    expect(target.received.map((request) => request.url)).toEqual(['/moved']);
  });

  it('reads at most 1024 bytes of an endless response and closes the connection', async () => {
    let closed = false;
    const target = await receiver((response) => {
      response.writeHead(500);
      const chunk = 'x'.repeat(700);
      const timer = setInterval(() => response.write(chunk), 5);
      response.on('close', () => {
        closed = true;
        clearInterval(timer);
      });
    });
    const result = await sendWebhook({ ...base, url: target.url, timeoutMs: 10_000 });
    expect(result.statusCode).toBe(500);
    expect(result.excerpt).toBe('x'.repeat(RESPONSE_EXCERPT_BYTES));
    expect(result.latencyMs).toBeLessThan(2000);
    await expect.poll(() => closed).toBe(true);
  });

  it('gives up on a receiver that never answers at the timeout, without throwing', async () => {
    const target = await receiver(() => undefined);
    const started = Date.now();
    const result = await sendWebhook({ ...base, url: target.url, timeoutMs: 300 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result).toMatchObject({ statusCode: null, excerpt: null, error: 'timed out after 300 ms', retryAfterSeconds: null });
    expect(target.received).toHaveLength(1);
  });

  it('keeps the status of a response whose body stalls, with what came of the body by the timeout', async () => {
    const target = await receiver((response) => {
      response.writeHead(503);
      response.write('partial');
    });
    const result = await sendWebhook({ ...base, url: target.url, timeoutMs: 300 });
    expect(result).toMatchObject({ statusCode: 503, excerpt: 'partial', error: null });
  });

  it('reports a refused connection as an error', async () => {
    const target = await receiver((response) => response.end());
    const gone = servers.pop()!;
    gone.close();
    await once(gone, 'close');
    const result = await sendWebhook({ ...base, url: target.url });
    expect(result.statusCode).toBeNull();
    expect(result.error).toMatch(/ECONNREFUSED/);
  });

  it('reads Retry-After as seconds or as an HTTP date', async () => {
    const now = new Date('2026-11-20T09:00:00.000Z');
    const seconds = await receiver((response) => response.writeHead(429, { 'retry-after': '90' }).end());
    const date = await receiver((response) => response.writeHead(503, { 'retry-after': 'Fri, 20 Nov 2026 10:00:00 GMT' }).end());
    expect(await sendWebhook({ ...base, url: seconds.url })).toMatchObject({ statusCode: 429, retryAfterSeconds: 90 });
    expect(await sendWebhook({ ...base, url: date.url, now: () => now })).toMatchObject({ statusCode: 503, retryAfterSeconds: 3600 });
  });

  it('stops when its signal aborts', async () => {
    const target = await receiver(() => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const result = await sendWebhook({ ...base, url: target.url, timeoutMs: 10_000, signal: controller.signal });
    expect(result).toMatchObject({ statusCode: null, error: 'aborted' });
    expect(await sendWebhook({ ...base, url: target.url, signal: controller.signal })).toMatchObject({ error: 'aborted' });
  });

  it('without allowPrivate connects to no address of the local network, however the URL names it', async () => {
    const target = await receiver((response) => response.end());
    const rebinding: ResolveAll = async () => [{ address: '127.0.0.1', family: 4 }];
    const results = [
      await sendWebhook({ ...base, allowPrivate: false, url: target.url }),
      await sendWebhook({ ...base, allowPrivate: false, url: `http://[::ffff:127.0.0.1]:${target.port}/` }),
      await sendWebhook({ ...base, allowPrivate: false, url: `http://localhost:${target.port}/` }),
      // A name whose DNS answer turned to a loopback address after the URL was checked.
      await sendWebhook({ ...base, allowPrivate: false, url: `http://hooks.example:${target.port}/`, resolve: rebinding }),
    ];
    for (const result of results) expect(result).toMatchObject({ statusCode: null, error: expect.stringMatching(/^address not allowed: .*loopback/) });
    expect(results[3]!.error).toBe('address not allowed: hooks.example resolves to 127.0.0.1, a loopback address');
    expect(target.received).toEqual([]);
  });

  it('connects through a name when allowed, and reports a URL it cannot send to', async () => {
    const target = await receiver((response) => response.writeHead(202).end());
    expect(await sendWebhook({ ...base, url: `http://localhost:${target.port}/` })).toMatchObject({ statusCode: 202 });
    expect(await sendWebhook({ ...base, url: 'ftp://127.0.0.1/' })).toMatchObject({ statusCode: null, error: 'unsupported scheme ftp:' });
    expect(await sendWebhook({ ...base, url: 'nonsense' })).toMatchObject({ statusCode: null, error: 'not a valid URL' });
  });
});
