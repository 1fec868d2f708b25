import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type Api } from './harness.js';

let api: Api;

beforeAll(async () => {
  api = await startApi();
});

afterAll(async () => {
  await api.close();
});

const CHALLENGE = 'Bearer realm="cloudphone"';
const REJECTED = 'Bearer realm="cloudphone", error="invalid_token"';

describe('every 401 carries WWW-Authenticate (RFC 6750)', () => {
  it('challenges a request without credentials, or with credentials of another scheme', async () => {
    const anonymous = await api.call('getMe');
    expect([anonymous.status, anonymous.body.code, anonymous.headers.get('www-authenticate')]).toEqual([
      401,
      'unauthenticated',
      CHALLENGE,
    ]);
    const basic = await api.call('getMe', { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
    expect([basic.status, basic.headers.get('www-authenticate')]).toEqual([401, CHALLENGE]);
  });

  it('says invalid_token when a bearer token was presented and refused', async () => {
    const unknown = await api.call('getMe', { token: 'cpt_NotAToken' });
    expect([unknown.status, unknown.body.code, unknown.headers.get('www-authenticate')]).toEqual([
      401,
      'invalid_token',
      REJECTED,
    ]);

    const member = await api.addCaller('member');
    const created = await api.call('createApiToken', { token: member.token, body: { name: 'ci', scopes: ['read'] } });
    await api.call('revokeApiToken', { token: member.token, path: { tokenId: created.body.id } });
    const revoked = await api.call('listDevices', { token: created.body.secret });
    expect([revoked.status, revoked.body.code, revoked.headers.get('www-authenticate')]).toEqual([
      401,
      'token_revoked',
      REJECTED,
    ]);
  });

  it('challenges the 401s of login and refresh, which take no bearer token', async () => {
    const login = await api.call('login', { body: { username: 'admin', password: 'not the password' } });
    expect([login.status, login.headers.get('www-authenticate')]).toEqual([401, CHALLENGE]);
    const refresh = await api.call('refreshSession', { body: { refreshToken: 'cpr_NotAToken' } });
    expect([refresh.status, refresh.headers.get('www-authenticate')]).toEqual([401, CHALLENGE]);
  });

  it('challenges a refused WebSocket upgrade', async () => {
    const { status, challenge } = await new Promise<{ status: number | undefined; challenge: unknown }>((resolve, reject) => {
      const request = get(`${api.url}/v1/devices/dev_01JDX6A1B2C3D4E5F6G7H8J9K0/adb`, {
        headers: {
          authorization: 'Bearer cpa_NotAToken',
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        },
      });
      request.on('response', (response) => {
        response.resume();
        resolve({ status: response.statusCode, challenge: response.headers['www-authenticate'] });
      });
      request.on('upgrade', () => reject(new Error('upgraded')));
      request.on('error', reject);
    });
    expect([status, challenge]).toEqual([401, REJECTED]);
  });
});

describe('successful and forbidden responses', () => {
  it('carry no challenge', async () => {
    const me = await api.call('getMe', { token: api.admin.token });
    expect([me.status, me.headers.get('www-authenticate')]).toEqual([200, null]);
    const viewer = await api.addCaller('viewer');
    const forbidden = await api.call('listUsers', { token: viewer.token });
    expect([forbidden.status, forbidden.headers.get('www-authenticate')]).toEqual([403, null]);
  });
});
