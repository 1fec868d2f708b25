import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APKS } from '../helpers/apk-fixtures.js';
import { eventually } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

const run = promisify(execFile);
const BOUNDARY = '----cloudphone-test-boundary';
const FORM = `multipart/form-data; boundary=${BOUNDARY}`;

let api: Api;
let member: Caller;

beforeAll(async () => {
  api = await startApi({ virtualDevices: 0, maxAppBytes: 1024 * 1024 });
  member = await api.addCaller('member');
});

afterAll(async () => {
  await api?.close();
});

/** The files under the store's temporary folder (in a folder of the node's own on PostgreSQL), relative to it. */
function temporaryFiles(): string[] {
  const tmp = join(api.server.config.dataDir, 'blobs', 'tmp');
  if (!existsSync(tmp)) return [];
  return readdirSync(tmp, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(tmp, join(entry.parentPath, entry.name)));
}

async function appCount(caller: Caller = member): Promise<number> {
  return (await api.call('listApps', { token: caller.token, query: { limit: 200 } })).body.data.length;
}

interface Part {
  name: string;
  fileName?: string;
  data: Buffer | string;
}

/** A multipart/form-data body written by hand, as a browser or curl sends one. */
function form(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.fileName === undefined ? '' : `; filename="${part.fileName}"`}`;
    const type = part.fileName === undefined ? '' : 'content-type: application/vnd.android.package-archive\r\n';
    chunks.push(Buffer.from(`--${BOUNDARY}\r\ncontent-disposition: ${disposition}\r\n${type}\r\n`), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

function upload(body: Buffer | ReadableStream<Uint8Array>, contentType: string, caller: Caller = member) {
  return api.call('uploadApp', { token: caller.token, rawBody: body, contentType });
}

describe('upload content types', () => {
  it('takes the APK as application/vnd.android.package-archive', async () => {
    const caller = await api.addCaller('member');
    const created = await upload(readFileSync(APKS.unlock), 'application/vnd.android.package-archive', caller);
    expect(created.status).toBe(201);
    expect(created.body.metadata.packageName).toBe('io.appium.unlock');
  });

  it('takes a multipart form from undici FormData; the part’s file name names the app unless the query does', async () => {
    const caller = await api.addCaller('member');
    const data = new FormData();
    data.append('note', 'ignored');
    data.append('file', new Blob([readFileSync(APKS.unlock)]), 'unlock-from-form.apk');
    const response = await fetch(`${api.url}/v1/apps?shared=false`, {
      method: 'POST',
      headers: { authorization: `Bearer ${caller.token}` },
      body: data,
    });
    expect(response.status).toBe(201);
    const app = (await response.json()) as { fileName: string; metadata: { packageName: string } };
    expect(app.metadata.packageName).toBe('io.appium.unlock');
    expect(app.fileName).toBe('unlock-from-form.apk');

    const named = await api.call('uploadApp', {
      token: caller.token,
      rawBody: form([{ name: 'file', fileName: 'ignored.apk', data: readFileSync(APKS.uiautomator2Test) }]),
      contentType: FORM,
      query: { fileName: 'from-query.apk' },
    });
    expect(named.status).toBe(201);
    expect(named.body.fileName).toBe('from-query.apk');
  });

  it('takes curl -F file=@app.apk', async () => {
    const caller = await api.addCaller('member');
    const { stdout } = await run('curl', [
      '--silent',
      '--show-error',
      '--max-time',
      '20',
      '-H',
      `authorization: Bearer ${caller.token}`,
      '-F',
      `file=@${APKS.uiautomator2Test}`,
      '-w',
      '\n%{http_code}',
      `${api.url}/v1/apps`,
    ]);
    const [json, status] = [stdout.slice(0, stdout.lastIndexOf('\n')), stdout.slice(stdout.lastIndexOf('\n') + 1)];
    expect(status).toBe('201');
    const app = JSON.parse(json) as { fileName: string; kind: string };
    expect(app.kind).toBe('test');
    expect(app.fileName).toBe(basename(APKS.uiautomator2Test));
  });

  it('refuses a form without a file part, with two, or with the file under another name: 400, nothing kept', async () => {
    const caller = await api.addCaller('member');
    const apk = readFileSync(APKS.unlock);
    const cases: [string, Buffer, RegExp][] = [
      ['no file part', form([{ name: 'note', data: 'hello' }]), /no file part named 'file'/],
      ['an empty form', Buffer.from(`--${BOUNDARY}--\r\n`), /no file part named 'file'/],
      [
        'two file parts',
        form([
          { name: 'file', fileName: 'a.apk', data: apk },
          { name: 'file', fileName: 'b.apk', data: apk },
        ]),
        /more than one file part/,
      ],
      ['the file named otherwise', form([{ name: 'apk', fileName: 'a.apk', data: apk }]), /named 'apk'; the contract names it 'file'/],
      ['a form cut before its end', form([{ name: 'file', fileName: 'a.apk', data: apk }]).subarray(0, apk.length >> 1), /malformed/],
    ];
    for (const [name, body, detail] of cases) {
      const refused = await upload(body, FORM, caller);
      expect(refused.status, name).toBe(400);
      expect(refused.body.code, name).toBe('validation_failed');
      expect(refused.body.detail, name).toMatch(detail);
    }
    const noBoundary = await upload(form([{ name: 'file', fileName: 'a.apk', data: apk }]), 'multipart/form-data', caller);
    expect(noBoundary.status).toBe(400);
    expect(noBoundary.body.code).toBe('validation_failed');
    expect(await appCount(caller)).toBe(0);
    expect(temporaryFiles()).toEqual([]);
  });

  it('applies the size limit to the file part, also without a Content-Length', async () => {
    const big = readFileSync(APKS.uiautomator2);
    const body = form([{ name: 'file', fileName: 'big.apk', data: big.subarray(0, 3 * 1024 * 1024) }]);
    const declared = await upload(body, FORM);
    expect(declared.status).toBe(413);
    expect(declared.body.code).toBe('payload_too_large');
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < body.length; at += 256 * 1024) controller.enqueue(body.subarray(at, at + 256 * 1024));
        controller.close();
      },
    });
    const streamed = await upload(chunked, FORM);
    expect(streamed.status).toBe(413);
    expect(streamed.body.code).toBe('payload_too_large');
    await eventually(() => temporaryFiles().length === 0, 5000, 'the temporary file to go');
  });

  it('streams the file part into the store as it arrives, not after the form ends', async () => {
    const caller = await api.addCaller('member');
    const apk = readFileSync(APKS.uiautomator2Test);
    const body = form([{ name: 'file', fileName: 't.apk', data: apk }]);
    let finish!: () => void;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(body.subarray(0, body.length >> 1));
        finish = () => {
          controller.enqueue(body.subarray(body.length >> 1));
          controller.close();
        };
      },
    });
    const sent = upload(stream, FORM, caller);
    const tmp = join(api.server.config.dataDir, 'blobs', 'tmp');
    await eventually(
      () => temporaryFiles().some((name) => statSync(join(tmp, name)).size > apk.length / 4),
      5000,
      'half of the file in the store before the form ends',
    );
    finish();
    const created = await sent;
    expect(created.status).toBe(201);
    expect(created.body.size).toBe(apk.length);
  });

  it('still refuses other content types with 415, naming the three it takes', async () => {
    expect((await upload(readFileSync(APKS.unlock), 'text/plain')).status).toBe(415);
    const json = await api.call('uploadApp', { token: member.token, body: { file: 'PK' } });
    expect(json.status).toBe(415);
    expect(json.body.code).toBe('unsupported_media_type');
    expect(json.body.detail).toMatch(/application\/octet-stream or application\/vnd\.android\.package-archive or multipart\/form-data/);
  });
});
