import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudPhone,
  CloudPhoneError,
  InstallJobHandle,
  InstallJobTimeoutError,
  NotFoundError,
  type App,
  type InstallJob,
} from '../src/index.js';
import { JSON_HEADERS, mockClient, problem, PROBLEM_HEADERS } from './helpers.js';

const APP_ID = 'app_01JDX8A1B2C3D4E5F6G7H8J9K0';
const JOB_ID = 'ijb_01JDX8A1B2C3D4E5F6G7H8J9K1';
const DEVICE_A = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K0';
const DEVICE_B = 'dev_01JDX6A1B2C3D4E5F6G7H8J9K1';
const LEASE_ID = 'lse_01JDX7M3N4P5Q6R7S8T9V0W1X2';

function app(overrides: Partial<App> = {}): App {
  return {
    id: APP_ID,
    sha256: 'a'.repeat(64),
    size: 3,
    fileName: 'app.apk',
    kind: 'app',
    metadata: {
      packageName: 'com.example.app',
      versionCode: 7,
      versionName: '1.2.0',
      minSdk: 26,
      targetSdk: 34,
      label: 'Example',
      permissions: ['android.permission.INTERNET'],
      launchableActivity: 'com.example.app.MainActivity',
      instrumentation: null,
      abis: [],
      debuggable: true,
    },
    iconUrl: null,
    shared: false,
    uploaderId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
    uploaderName: 'alice',
    createdAt: '2026-11-25T03:00:00Z',
    ...overrides,
  } as App;
}

function job(status: InstallJob['status'], devices: [InstallJob['devices'][number]['status'], string | null][]): InstallJob {
  return {
    id: JOB_ID,
    appId: APP_ID,
    packageName: 'com.example.app',
    userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
    status,
    options: { replace: true, downgrade: false, grantPermissions: false },
    createdAt: '2026-11-25T03:00:00Z',
    finishedAt: status === 'succeeded' || status === 'failed' ? '2026-11-25T03:00:09Z' : null,
    devices: devices.map(([deviceStatus, reason], i) => ({
      deviceId: i === 0 ? DEVICE_A : DEVICE_B,
      serial: `CPVIRT000${i + 1}`,
      status: deviceStatus,
      reason,
      startedAt: deviceStatus === 'pending' ? null : '2026-11-25T03:00:01Z',
      finishedAt: deviceStatus === 'installed' || deviceStatus === 'failed' ? '2026-11-25T03:00:08Z' : null,
    })),
  } as InstallJob;
}

/** Reads a request body the MockAgent hands to a reply callback (it does not read streams itself). */
function collect(body: unknown): Promise<Buffer> {
  if (body instanceof Uint8Array) return Promise.resolve(Buffer.from(body));
  if (typeof body === 'string') return Promise.resolve(Buffer.from(body));
  return (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks);
  })();
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const blobMissing = () => problem(404, 'app_blob_not_found');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-apps-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('apps.upload', () => {
  it('offers a file by hash first and sends nothing when the server has the bytes', async () => {
    const bytes = randomBytes(200_000);
    const file = join(dir, 'known.apk');
    writeFileSync(file, bytes);
    const { pool, client, calls } = mockClient();
    let offered: unknown;
    pool.intercept({ path: '/v1/apps/by-hash', method: 'POST' }).reply(200, (opts) => {
      offered = JSON.parse(String(opts.body));
      return app();
    }, { headers: JSON_HEADERS });

    let matched = 0;
    const progress: number[] = [];
    const result = await client.apps.upload(file, { shared: true, onHashMatch: () => matched++, onProgress: (sent) => progress.push(sent) });
    expect(result).toEqual(app());
    expect(offered).toEqual({ sha256: sha(bytes), fileName: 'known.apk', shared: true });
    expect(matched).toBe(1);
    expect(progress).toEqual([]);
    expect(calls().map((call) => `${call.method} ${call.path}`)).toEqual(['POST /v1/apps/by-hash']);
  });

  it('uploads the file, streamed, when the hash is unknown (404 app_blob_not_found), reporting progress up to the size', async () => {
    // A real server: the MockAgent answers before reading a streamed body.
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const file = join(dir, 'new.apk');
    writeFileSync(file, bytes);
    const requests: { method: string; url: string; type: string | undefined; sha256: string; size: number }[] = [];
    const server = createServer((req, res) => {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      req.on('end', () => {
        requests.push({ method: req.method!, url: req.url!, type: req.headers['content-type'], sha256: hash.digest('hex'), size });
        if (req.url === '/v1/apps/by-hash') res.writeHead(404, PROBLEM_HEADERS).end(JSON.stringify(blobMissing()));
        else res.writeHead(201, JSON_HEADERS).end(JSON.stringify(app({ sha256: sha(bytes), size, fileName: 'renamed.apk' })));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = new CloudPhone({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 't', maxRetries: 0 });
      const progress: [number, number | null][] = [];
      let matched = 0;
      const result = await client.apps.upload(file, {
        fileName: 'renamed.apk',
        onProgress: (sent, total) => progress.push([sent, total]),
        onHashMatch: () => matched++,
      });
      expect(result.size).toBe(bytes.length);
      expect(matched).toBe(0);
      expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /v1/apps/by-hash', 'POST /v1/apps?fileName=renamed.apk']);
      expect(requests[1]).toMatchObject({ type: 'application/octet-stream', sha256: sha(bytes), size: bytes.length });
      expect(progress[0]).toEqual([0, bytes.length]);
      expect(progress.at(-1)).toEqual([bytes.length, bytes.length]);
      expect(progress.length).toBeGreaterThan(3);
      expect(progress.every(([, total]) => total === bytes.length)).toBe(true);
      const sent = progress.map(([value]) => value);
      expect(sent).toEqual([...sent].sort((a, b) => a - b));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('hashes bytes too, and sends them in counted slices when progress is wanted', async () => {
    const bytes = new Uint8Array(randomBytes(150_000));
    const { pool, client } = mockClient();
    let offered: { sha256?: string } = {};
    pool.intercept({ path: '/v1/apps/by-hash', method: 'POST' }).reply(404, (opts) => {
      offered = JSON.parse(String(opts.body)) as { sha256: string };
      return blobMissing();
    }, { headers: PROBLEM_HEADERS });
    let received: Promise<Buffer> | undefined;
    pool.intercept({ path: '/v1/apps', method: 'POST' }).reply(201, (opts) => {
      received = collect(opts.body);
      return app();
    }, { headers: JSON_HEADERS });
    const progress: number[] = [];
    await client.apps.upload(bytes, { onProgress: (sent, total) => progress.push(total === bytes.length ? sent : -1) });
    expect(offered.sha256).toBe(sha(bytes));
    expect(Buffer.from(await received!).equals(Buffer.from(bytes))).toBe(true);
    expect(progress.at(-1)).toBe(bytes.length);
    expect(progress.length).toBeGreaterThan(2);
  });

  it('uploads a Readable directly, without a hash-first request; its total is unknown', async () => {
    const { pool, client, calls } = mockClient();
    let received: Promise<Buffer> | undefined;
    pool.intercept({ path: '/v1/apps?fileName=s.apk', method: 'POST' }).reply(201, (opts) => {
      received = collect(opts.body);
      return app();
    }, { headers: JSON_HEADERS });
    const progress: [number, number | null][] = [];
    await client.apps.upload(Readable.from([Buffer.from('PK'), Buffer.from('\u0003\u0004')]), {
      fileName: 's.apk',
      onProgress: (sent, total) => progress.push([sent, total]),
    });
    expect((await received!).toString('latin1')).toBe('PK\u0003\u0004');
    expect(calls()).toHaveLength(1);
    expect(progress.at(-1)).toEqual([4, null]);
  });

  it('passes other errors of the hash-first call through, and fails on a missing file before any request', async () => {
    const { pool, client, calls } = mockClient();
    pool.intercept({ path: '/v1/apps/by-hash', method: 'POST' }).reply(404, problem(404, 'not_found'), { headers: PROBLEM_HEADERS });
    await expect(client.apps.upload(new Uint8Array([1, 2, 3]))).rejects.toBeInstanceOf(NotFoundError);
    expect(calls()).toHaveLength(1);
    await expect(client.apps.upload(join(dir, 'missing.apk'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(calls()).toHaveLength(1);
  });
});

describe('apps.install', () => {
  it('sends the devices and options, and wait() long-polls getInstallJob until the job ends', async () => {
    const { pool, client, calls } = mockClient();
    let sent: unknown;
    pool.intercept({ path: `/v1/apps/${APP_ID}/install`, method: 'POST' }).reply(202, (opts) => {
      sent = JSON.parse(String(opts.body));
      return job('pending', [['pending', null], ['pending', null]]);
    }, { headers: JSON_HEADERS });
    const jobPath = (path: string) => path.startsWith(`/v1/install-jobs/${JOB_ID}`);
    pool.intercept({ path: jobPath, method: 'GET' }).reply(200, job('running', [['installed', null], ['installing', null]]), { headers: JSON_HEADERS });
    pool
      .intercept({ path: jobPath, method: 'GET' })
      .reply(200, job('failed', [['installed', null], ['failed', 'INSTALL_FAILED_OLDER_SDK: Requires newer sdk version #34 (current version is #28)']]), {
        headers: JSON_HEADERS,
      });

    const handle = await client.apps.install(APP_ID, {
      devices: [DEVICE_A, client.devices.handle(DEVICE_B)],
      downgrade: true,
      grantPermissions: true,
    });
    expect(handle).toBeInstanceOf(InstallJobHandle);
    expect(handle.status).toBe('pending');
    expect(sent).toEqual({ deviceIds: [DEVICE_A, DEVICE_B], downgrade: true, grantPermissions: true });
    expect(calls()[0]!.headers).toHaveProperty('idempotency-key');

    const seen: string[] = [];
    await handle.wait({ onUpdate: (j) => seen.push(j.devices.map((d) => d.status).join(',')) });
    expect(handle.status).toBe('failed');
    expect(handle.done).toBe(true);
    expect(handle.devices[1]!.reason).toMatch(/^INSTALL_FAILED_OLDER_SDK/);
    expect(seen).toEqual(['installed,installing', 'installed,failed']);
    const polls = calls().filter((call) => call.method === 'GET');
    expect(polls.map((poll) => new URL(poll.fullUrl).searchParams.get('waitSeconds'))).toEqual(['60', '60']);
    expect(handle.toJSON()).toEqual(job('failed', [['installed', null], ['failed', 'INSTALL_FAILED_OLDER_SDK: Requires newer sdk version #34 (current version is #28)']]));
  });

  it('takes a lease (id or handle), and pollSeconds bounds each poll', async () => {
    const { pool, client, calls } = mockClient();
    let sent: unknown;
    pool.intercept({ path: `/v1/apps/${APP_ID}/install`, method: 'POST' }).reply(202, (opts) => {
      sent = JSON.parse(String(opts.body));
      return job('running', [['installing', null]]);
    }, { headers: JSON_HEADERS });
    pool.intercept({ path: (p) => p.startsWith(`/v1/install-jobs/${JOB_ID}`), method: 'GET' }).reply(200, job('succeeded', [['installed', null]]), {
      headers: JSON_HEADERS,
    });
    const handle = await client.apps.install(app(), { lease: LEASE_ID, replace: false });
    expect(sent).toEqual({ leaseId: LEASE_ID, replace: false });
    await handle.wait({ pollSeconds: 2 });
    expect(handle.status).toBe('succeeded');
    expect(new URL(calls()[1]!.fullUrl).searchParams.get('waitSeconds')).toBe('2');
  });

  it('refuses neither or both of devices and lease before any request', async () => {
    const { client, calls } = mockClient();
    await expect(client.apps.install(APP_ID, {})).rejects.toBeInstanceOf(CloudPhoneError);
    await expect(client.apps.install(APP_ID, { devices: [DEVICE_A], lease: LEASE_ID })).rejects.toBeInstanceOf(CloudPhoneError);
    expect(calls()).toHaveLength(0);
  });

  it('wait() gives up after timeoutSeconds with InstallJobTimeoutError', async () => {
    const { pool, client } = mockClient();
    pool.intercept({ path: `/v1/install-jobs/${JOB_ID}`, method: 'GET' }).reply(200, job('running', [['installing', null]]), { headers: JSON_HEADERS });
    pool.intercept({ path: (p) => p.startsWith(`/v1/install-jobs/${JOB_ID}?`), method: 'GET' }).reply(200, () => {
      return job('running', [['installing', null]]);
    }, { headers: JSON_HEADERS }).persist();
    const handle = await client.apps.installJob(JOB_ID);
    await expect(handle.wait({ timeoutSeconds: 0.05, pollSeconds: 1 })).rejects.toBeInstanceOf(InstallJobTimeoutError);
  });
});

describe('apps.download', () => {
  it('streams the APK and downloadTo writes it', async () => {
    const bytes = randomBytes(100_000);
    const { pool, client } = mockClient();
    const reply = () =>
      pool.intercept({ path: `/v1/apps/${APP_ID}/apk`, method: 'GET' }).reply(200, bytes, {
        headers: { 'content-type': 'application/vnd.android.package-archive', 'content-length': String(bytes.length) },
      });
    reply();
    const response = await client.apps.download(APP_ID);
    expect(response.contentLength).toBe(bytes.length);
    expect(Buffer.from(await response.bytes()).equals(bytes)).toBe(true);
    reply();
    const local = join(dir, 'downloaded.apk');
    expect(await client.apps.downloadTo(app(), local)).toBe(bytes.length);
    expect(readFileSync(local).equals(bytes)).toBe(true);
  });
});
