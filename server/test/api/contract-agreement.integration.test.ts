import { connect, createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operations, type OperationId } from '../../src/generated/operations.js';
import { requestSchemas } from '../../src/generated/request-schemas.js';
import { declaredResponse } from '../helpers/contract.js';
import { allDevices, eventually, leaseDevice, type Json } from './device-helpers.js';
import { PASSWORD, startApi, uniqueUsername, type Api, type Caller } from './harness.js';

/** What the contract says and what the server does agree: limits, statuses, encodings and framework-level errors. */

const BODY_LIMIT = 4096;
const APP_LIMIT = 64 * 1024;

let api: Api;
let member: Caller;
let device: Json;

beforeAll(async () => {
  api = await startApi({ virtualDevices: 1, bodyLimitBytes: BODY_LIMIT, maxAppBytes: APP_LIMIT, maxPushBytes: APP_LIMIT });
  member = await api.addCaller('member');
  device = await eventually(async () => {
    const online = await allDevices(api, api.admin.token, { state: 'online' });
    return online.length === 1 ? online[0] : undefined;
  }, 30_000, 'a virtual device online');
  await leaseDevice(api, member.token, device.id);
}, 60_000);

afterAll(async () => {
  await api?.close();
});

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Bytes of the request written before the answer came. */
  written: number;
}

/**
 * Sends raw bytes over one connection and reads the whole answer; `more` keeps writing chunks until the server
 * answers (or `limit` bytes were written), as a client uploading a large body does.
 */
function raw(head: string, options: { body?: Buffer; more?: () => Buffer; limit?: number } = {}): Promise<RawResponse> {
  const { port } = new URL(api.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    let written = 0;
    let answered = false;
    const write = (bytes: Buffer) => {
      written += bytes.length;
      return socket.write(bytes);
    };
    const pump = () => {
      while (!answered && options.more && written < (options.limit ?? Infinity)) {
        if (!write(options.more())) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    socket.on('connect', () => {
      write(Buffer.from(head, 'latin1'));
      if (options.body) write(options.body);
      pump();
    });
    socket.on('data', (chunk: Buffer) => {
      answered = true;
      chunks.push(chunk);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [top = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = top.split('\r\n');
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n'), written });
    });
  });
}

function expectRawProblem(response: RawResponse, status: number, code: string): Json {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(response.body) as Json;
  expect(problem).toMatchObject({ status, code, type: `https://cloudphone.dev/problems/${code}` });
  expect(problem.requestId).toBe(response.headers['x-request-id']);
  return problem;
}

async function closedLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const newUser = () => ({ username: uniqueUsername(), password: PASSWORD, role: 'member' });

describe('limits come from the contract', () => {
  it('takes a label value of 256 characters and an upper-case key, as the contract allows, and refuses 257', async () => {
    const value = 'v'.repeat(256);
    const updated = await api.call('updateDevice', {
      token: api.admin.token,
      path: { deviceId: device.id },
      body: { labels: { Team: value } },
    });
    expect(updated.status).toBe(200);
    expect(updated.body.labels.Team).toBe(value);
    const listed = await api.call('listDevices', { token: api.admin.token, query: { label: [`Team=${value}`] } });
    expect(listed.body.data.map((d: Json) => d.id)).toEqual([device.id]);

    const refused = await api.call('updateDevice', {
      token: api.admin.token,
      path: { deviceId: device.id },
      body: { labels: { team: 'v'.repeat(257) } },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toContainEqual(expect.objectContaining({ field: '/labels/team' }));
    const filter = await api.call('listDevices', { token: api.admin.token, query: { label: [`team=${'v'.repeat(257)}`] } });
    expect(filter.status).toBe(400);
  });

  it('routes a package name as long as the contract allows (255) to the operation', async () => {
    const name = `com.example.${'a'.repeat(243)}`;
    expect(name).toHaveLength(255);
    const response = await api.call('uninstallDevicePackage', {
      token: member.token,
      path: { deviceId: device.id, packageName: name },
    });
    expect({ status: response.status, code: response.body.code }).toEqual({ status: 404, code: 'package_not_installed' });
  });

  it('states in the contract which device paths are refused: . and .. segments, NUL and line breaks', async () => {
    for (const path of ['/sdcard/../data', '/sdcard/.', '/sdcard/a\nb']) {
      const response = await api.call('listDeviceFiles', { token: member.token, path: { deviceId: device.id }, query: { path } });
      expect({ status: response.status, code: response.body.code }).toEqual({ status: 400, code: 'validation_failed' });
      expect(response.body.errors).toContainEqual(expect.objectContaining({ field: 'path' }));
    }
    const fine = await api.call('listDeviceFiles', { token: member.token, path: { deviceId: device.id }, query: { path: '/sdcard/..x' } });
    expect(fine.status).not.toBe(400);
  });

  it('refuses a host address the server could not connect to (a port out of range, IPv6 without brackets)', async () => {
    for (const address of ['127.0.0.1:0', '127.0.0.1:65536', '[::1]:99999', '::1:5555', '[::1:5555', '127.0.0.1::5555']) {
      const before = await api.counts();
      const refused = await api.call('createHost', { token: api.admin.token, body: { type: 'adb_device', address } });
      expect({ address, status: refused.status, code: refused.body.code }).toEqual({ address, status: 400, code: 'validation_failed' });
      expect(await api.counts()).toEqual(before);
    }
    const port = await closedLoopbackPort();
    const added = await api.call('createHost', { token: api.admin.token, body: { type: 'adb_device', address: `[::1]:${port}` } });
    expect(added.status).toBe(201);
    expect((await api.call('deleteHost', { token: api.admin.token, path: { hostId: added.body.id } })).status).toBe(204);
  });

  it('refuses an unknown key name before the device is asked, and sends known names and key codes', async () => {
    const send = (key: string) =>
      api.call('sendDeviceInput', { token: member.token, path: { deviceId: device.id }, body: { type: 'keyevent', key } });
    const refused = await send('NOT_A_KEY');
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 400, code: 'validation_failed' });
    expect(refused.body.errors).toContainEqual(expect.objectContaining({ field: '/key' }));
    for (const key of ['HOME', 'KEYCODE_BACK', '3', 'A']) expect((await send(key)).status).toBe(204);
  });
});

describe('statuses the contract declares', () => {
  it('declares 400 on every operation that validates a path, query, header or body', () => {
    const undeclared = (Object.keys(operations) as OperationId[]).filter((id) => {
      const { schemas } = requestSchemas[id];
      const validates = Object.keys(schemas).length > 0;
      return validates && declaredResponse(id, 400) === undefined;
    });
    expect(undeclared).toEqual([]);
  });

  it('answers a malformed id with 400 validation_failed naming the parameter', async () => {
    const response = await api.call('getUser', { token: api.admin.token, path: { userId: 'usr_not-an-id' } });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ code: 'validation_failed', errors: [expect.objectContaining({ field: 'userId' })] });
  });

  it.each(['FOO', 'PROPFIND', 'TRACE', 'OPTIONS'])('answers %s on a known path with 405, Allow and a problem', async (method) => {
    const response = await raw(`${method} /v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    expectRawProblem(response, 405, 'method_not_allowed');
    expect(response.headers.allow).toBe('GET, HEAD, POST');
  });

  it('answers an unknown method on an unknown path with 404 not_found', async () => {
    expectRawProblem(await raw('FOO /v1/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'), 404, 'not_found');
  });

  it('answers headers over the size limit with 431 as a problem', async () => {
    const response = await raw(`GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expectRawProblem(response, 431, 'request_headers_too_large');
  });

  it('answers a request that is not HTTP with 400 malformed_request as a problem', async () => {
    expectRawProblem(await raw('HELLO\r\n\r\n'), 400, 'malformed_request');
  });
});

describe('invalid input is refused before anything is written', () => {
  async function refusedWithoutWrites(send: () => Promise<{ status: number; body: Json }>, status: number, code: string) {
    const before = await api.counts();
    const response = await send();
    expect({ status: response.status, code: response.body?.code }).toEqual({ status, code });
    expect(await api.counts()).toEqual(before);
    return response;
  }

  it('refuses a JSON body that is not UTF-8', async () => {
    const text = Buffer.from(JSON.stringify({ ...newUser(), displayName: 'MARK' }));
    const at = text.indexOf('MARK');
    const body = Buffer.concat([text.subarray(0, at), Buffer.from([0xc3, 0x28]), text.subarray(at + 4)]);
    await refusedWithoutWrites(() => api.call('createUser', { token: api.admin.token, rawBody: body }), 400, 'invalid_encoding');
  });

  // U+0000 is well-formed, but PostgreSQL's text cannot hold it: refused on both engines alike.
  it.each([
    ['a lone surrogate', '\\ud800', '\ud800'],
    ['U+0000', '\\u0000', '\u0000'],
  ])('refuses %s in a JSON string or key, naming the field', async (_, escape, character) => {
    const body = JSON.stringify({ ...newUser(), displayName: `a${character}b` });
    expect(body).toContain(escape);
    const response = await refusedWithoutWrites(
      () => api.call('createUser', { token: api.admin.token, rawBody: body }),
      400,
      'invalid_encoding',
    );
    expect(response.body.errors).toEqual([expect.objectContaining({ field: '/displayName' })]);
    const login = await refusedWithoutWrites(
      () => api.call('login', { rawBody: JSON.stringify({ username: `admin${character}`, password: PASSWORD }) }),
      400,
      'invalid_encoding',
    );
    expect(login.body.errors).toEqual([expect.objectContaining({ field: '/username' })]);
    const key = await refusedWithoutWrites(
      () => api.call('updateDevice', { token: api.admin.token, path: { deviceId: device.id }, rawBody: `{"labels":{"k${escape}":"v"}}` }),
      400,
      'invalid_encoding',
    );
    expect(key.body.errors).toEqual([expect.objectContaining({ field: `/labels/k${character}` })]);
  });

  it('refuses percent-encoded bytes that are not UTF-8, or U+0000, in the query and the path', async () => {
    for (const url of ['/v1/devices?model=%ED%A0%80', '/v1/devices?model=%FF', `/v1/users/usr_%C3%28`, '/v1/devices?model=a%00b']) {
      const response = await fetch(`${api.url}${url}`, { headers: { authorization: `Bearer ${api.admin.token}` } });
      expect(response.status).toBe(400);
      expect(((await response.json()) as Json).code).toBe('invalid_encoding');
    }
  });

  it('refuses a null body where the contract wants an object, and a body where it wants none', async () => {
    const path = { deviceId: device.id };
    await refusedWithoutWrites(() => api.call('rebootDevice', { token: member.token, path, rawBody: 'null' }), 400, 'validation_failed');
    const lease = await api.call('listLeases', { token: member.token });
    const leaseId = lease.body.data[0].id as string;
    await refusedWithoutWrites(
      () => api.call('renewLease', { token: member.token, path: { leaseId }, rawBody: 'null' }),
      400,
      'validation_failed',
    );
    await refusedWithoutWrites(
      () => api.call('releaseLease', { token: member.token, path: { leaseId }, body: {} }),
      400,
      'validation_failed',
    );
    const victim = await api.call('createUser', { token: api.admin.token, body: newUser() });
    await refusedWithoutWrites(
      () => api.call('deleteUser', { token: api.admin.token, path: { userId: victim.body.id }, body: { force: true } }),
      400,
      'validation_failed',
    );
    expect((await api.call('getUser', { token: api.admin.token, path: { userId: victim.body.id } })).status).toBe(200);
  });
});

describe('bodies over the limit', () => {
  const auth = () => `Authorization: Bearer ${member.token}\r\n`;

  // Only the headers are sent: a server that read the body before refusing it would wait for it and never answer.
  it.each([
    ['an upload', 'POST /v1/apps'],
    ['a push', 'PUT /v1/devices/{deviceId}/files/content?path=/sdcard/big.bin'],
  ])('refuses %s at once when its Content-Length is over the limit, without reading it', async (_, line) => {
    const response = await raw(
      `${line.replace('{deviceId}', device.id)} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${600 * 1024 * 1024}\r\n\r\n`,
    );
    expectRawProblem(response, 413, 'payload_too_large');
  }, 5000);

  it('stops reading a chunked upload as soon as it is over the limit', async () => {
    const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000), Buffer.from('\r\n')]);
    const response = await raw(
      `POST /v1/apps HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`,
      { more: () => chunk, limit: 512 * 1024 * 1024 },
    );
    expectRawProblem(response, 413, 'payload_too_large');
    expect(response.written).toBeLessThan(32 * 1024 * 1024);
  });

  it('refuses a JSON body at once from its Content-Length, and a chunked one as soon as it is over', async () => {
    const head = `POST /v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth()}Content-Type: application/json\r\n`;
    expectRawProblem(await raw(`${head}Content-Length: ${512 * 1024 * 1024}\r\n\r\n`), 413, 'payload_too_large');
    const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000, 0x20), Buffer.from('\r\n')]);
    const chunked = await raw(`${head}Transfer-Encoding: chunked\r\n\r\n`, {
      more: () => chunk,
      limit: 512 * 1024 * 1024,
    });
    expectRawProblem(chunked, 413, 'payload_too_large');
    expect(chunked.written).toBeLessThan(32 * 1024 * 1024);
  });
});
