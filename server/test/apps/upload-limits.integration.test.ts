import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APKS } from '../helpers/apk-fixtures.js';
import { eventually } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';
import { buildZip } from './zip.js';

const OCTETS = 'application/octet-stream';

let api: Api;
let member: Caller;

beforeAll(async () => {
  api = await startApi({ virtualDevices: 0 });
  member = await api.addCaller('member');
});

afterAll(async () => {
  await api?.close();
});

/** The store's temporary files (in a folder of the node's own on PostgreSQL): uploads in progress or left behind. */
function temporaryFiles(target: Api = api): string[] {
  try {
    return readdirSync(join(target.server.config.dataDir, 'blobs', 'tmp'), { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

/** Fails instead of waiting for the test timeout when `promise` does not settle within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    promise.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

function upload(bytes: Buffer, what: string, target: Api = api, caller: Caller = member) {
  return within(target.call('uploadApp', { token: caller.token, rawBody: bytes, contentType: OCTETS }), 5000, what);
}

/**
 * An upload over a plain socket that announces `bytes.length` bytes, sends the first half and then waits, neither
 * ending nor failing, until the socket is destroyed: a client gone quiet or about to disconnect.
 */
async function stalledUpload(target: Api, token: string, bytes: Buffer, contentType = OCTETS): Promise<Socket> {
  const socket = connect(target.server.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  socket.write(
    [
      'POST /v1/apps HTTP/1.1',
      `host: 127.0.0.1:${target.server.port}`,
      `authorization: Bearer ${token}`,
      `content-type: ${contentType}`,
      `content-length: ${bytes.length}`,
      '',
      '',
    ].join('\r\n'),
  );
  socket.write(bytes.subarray(0, bytes.length >> 1));
  return socket;
}

const manifest = execFileSync('unzip', ['-p', APKS.unlock, 'AndroidManifest.xml']);

describe('malformed archives end in 422 invalid_apk, with nothing left behind', () => {
  const cases: [string, Buffer][] = [
    ['an entry inflating to more than it declares', buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true, declaredSize: 100 }])],
    ['an entry inflating to less than it declares', buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true, declaredSize: manifest.length * 2 }])],
    [
      'a truncated central directory',
      (() => {
        const zip = buildZip([
          { name: 'AndroidManifest.xml', data: manifest, deflate: true },
          { name: 'classes.dex', data: Buffer.from('dex') },
        ]);
        const end = zip.length - 22;
        return Buffer.concat([zip.subarray(0, end - 46 - 'classes.dex'.length), zip.subarray(end)]);
      })(),
    ],
    [
      'corrupt deflate data',
      (() => {
        const zip = buildZip([{ name: 'AndroidManifest.xml', data: manifest, deflate: true }]);
        return zip.fill(0xff, 30 + 19, 30 + 19 + 16);
      })(),
    ],
  ];
  for (const [name, bytes] of cases) {
    it(name, async () => {
      const refused = await upload(bytes, name);
      expect(refused.status).toBe(422);
      expect(refused.body.code).toBe('invalid_apk');
      expect(temporaryFiles()).toEqual([]);
    });
  }

  it('byte-level corruptions of a real APK answer 201 or 422 invalid_apk, never hang or fail', async () => {
    const apk = readFileSync(APKS.unlock);
    const directory = apk.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    const directoryStart = apk.readUInt32LE(directory + 16);
    let seed = 0x2f6b_1a3d;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed % n;
    };
    const mutations: [string, (bytes: Buffer) => Buffer][] = [
      ['flip a byte anywhere', (b) => { const i = random(b.length); b[i] = b[i]! ^ (1 + random(255)); return b; }],
      ['flip a byte in the central directory', (b) => { const i = directoryStart + random(b.length - directoryStart); b[i] = b[i]! ^ (1 + random(255)); return b; }],
      ['zero 64 bytes', (b) => { const at = random(b.length - 64); return b.fill(0, at, at + 64); }],
      ['truncate', (b) => b.subarray(0, random(b.length))],
      ['drop a slice', (b) => { const at = random(b.length - 512); return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + random(511))]); }],
      ['rewrite a declared size', (b) => { const at = directoryStart + random(b.length - directoryStart - 28); b.writeUInt32LE(random(0xffff), at); return b; }],
    ];
    const outcomes: Record<string, number> = {};
    for (let round = 0; round < 6; round++) {
      for (const [name, mutate] of mutations) {
        const bytes = mutate(Buffer.from(apk));
        const answer = await upload(bytes, `${name} (round ${round})`);
        expect([200, 201, 422], `${name} (round ${round}): ${JSON.stringify(answer.body)}`).toContain(answer.status);
        if (answer.status === 422) expect(answer.body.code).toBe('invalid_apk');
        outcomes[answer.status] = (outcomes[answer.status] ?? 0) + 1;
      }
    }
    expect(outcomes[422]).toBeGreaterThan(0);
    expect(temporaryFiles()).toEqual([]);
  });
});

describe('uploads cut short remove their temporary file', () => {
  it('when the client disconnects mid-upload', async () => {
    const socket = await stalledUpload(api, member.token, readFileSync(APKS.settings));
    await eventually(() => temporaryFiles().length === 1, 5000, 'the upload to reach the store');
    socket.destroy();
    await eventually(() => temporaryFiles().length === 0, 5000, 'the temporary file to go');
    expect((await upload(readFileSync(APKS.unlock), 'an upload after')).status).toBe(201);
  });

  it('when the server stops mid-upload: 503, and the stop does not wait for the client', async () => {
    const other = await startApi({ virtualDevices: 0 });
    try {
      const caller = await other.addCaller('member');
      const apk = readFileSync(APKS.settings);
      const boundary = 'stalled-form';
      const form = Buffer.concat([
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.apk"\r\n\r\n`),
        apk,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      const sockets = [
        await stalledUpload(other, caller.token, apk),
        await stalledUpload(other, caller.token, form, `multipart/form-data; boundary=${boundary}`),
      ];
      const answers = sockets.map((socket) => {
        let answer = '';
        socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
        return new Promise<string>((resolve) => socket.once('close', () => resolve(answer)));
      });
      await eventually(() => temporaryFiles(other).length === 2, 5000, 'both uploads to reach the store');
      await within(other.server.close(), 5000, 'the server to stop');
      expect(temporaryFiles(other)).toEqual([]);
      for (const answer of await within(Promise.all(answers), 1000, "the upload connections to close")) {
        expect(answer).toMatch(/^HTTP\/1\.1 503 /);
        expect(answer).toMatch(/"code":"service_unavailable"/);
      }
    } finally {
      await other.close();
    }
  });
});
