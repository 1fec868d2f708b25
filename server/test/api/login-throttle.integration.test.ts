import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { expectContractResponse } from '../helpers/contract.js';
import { PASSWORD, startApi, uniqueUsername, type Api } from './harness.js';

let api: Api | undefined;

afterEach(async () => {
  await api?.close();
  api = undefined;
});

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { code?: string; title?: string; detail?: string; status?: number };
}

/**
 * A login sent from `from`, a loopback address of this machine (all of 127.0.0.0/8 is loopback on Linux): the
 * server sees it as the client's address, as it would a remote one.
 */
function loginFrom(from: string, username: string, password: string, forwardedFor?: string): Promise<Answer> {
  const payload = JSON.stringify({ username, password });
  return new Promise((resolve, reject) => {
    const req = request(
      `${api!.url}/v1/auth/login`,
      {
        method: 'POST',
        localAddress: from,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const body = JSON.parse(text) as Answer['body'];
          expectContractResponse('login', { status: res.statusCode!, contentType: res.headers['content-type'] ?? null, body });
          resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** What an attacker can compare between two answers: everything but the request id. */
function visible(answer: Answer) {
  const { status, retryAfter, body } = answer;
  return { status, retryAfter, code: body.code, title: body.title, detail: body.detail, keys: Object.keys(body).sort() };
}

describe('login throttling', () => {
  it('answers a known and an unknown username alike, however often they fail', async () => {
    api = await startApi();
    const { username } = await api.addCaller('member');
    const unknown = uniqueUsername('nobody');
    const known: ReturnType<typeof visible>[] = [];
    const absent: ReturnType<typeof visible>[] = [];
    for (let i = 0; i < 8; i++) {
      known.push(visible(await loginFrom('127.0.0.2', username, 'not the password')));
      absent.push(visible(await loginFrom('127.0.0.3', unknown, 'not the password')));
      if (i === 5) api.clock.advance(3600);
    }
    expect(absent).toEqual(known);
    expect(known.map((a) => a.status)).toEqual([401, 401, 401, 429, 429, 429, 401, 401]);
    expect(known[3]).toMatchObject({ code: 'too_many_login_attempts', retryAfter: '1' });
  });

  it('does not let failures from one address stop the right password from another', async () => {
    api = await startApi();
    const { username } = await api.addCaller('member');
    for (let i = 0; i < 12; i++) {
      await loginFrom('127.0.0.2', username, 'not the password');
      api.clock.advance(1);
    }
    expect((await loginFrom('127.0.0.2', username, PASSWORD)).status).toBe(429);
    expect((await loginFrom('127.0.0.1', username, PASSWORD)).status).toBe(200);
  });

  it('slows guessing from one address, at one account and across accounts', async () => {
    api = await startApi();
    const { username } = await api.addCaller('member');
    for (let i = 0; i < 3; i++) expect((await loginFrom('127.0.0.2', username, `guess ${i}`)).status).toBe(401);
    const slowed = await loginFrom('127.0.0.2', username, PASSWORD);
    expect([slowed.status, slowed.body.code, slowed.retryAfter]).toEqual([429, 'too_many_login_attempts', '1']);
    api.clock.advance(1);
    expect((await loginFrom('127.0.0.2', username, 'guess 3')).status).toBe(401);
    const longer = await loginFrom('127.0.0.2', username, PASSWORD);
    expect([longer.status, longer.retryAfter]).toEqual([429, '2']);
    api.clock.advance(2);
    expect((await loginFrom('127.0.0.2', username, PASSWORD)).status).toBe(200);

    // Spraying one guess at many usernames from one address is slowed too, whoever the next username is.
    for (let i = 0; i < 20; i++) {
      expect((await loginFrom('127.0.0.4', uniqueUsername('spray'), 'password1')).status).toBe(401);
    }
    const sprayed = await loginFrom('127.0.0.4', username, PASSWORD);
    expect([sprayed.status, sprayed.body.code]).toEqual([429, 'too_many_login_attempts']);
    expect((await loginFrom('127.0.0.5', username, PASSWORD)).status).toBe(200);
  });

  it('ignores X-Forwarded-For unless the server trusts a proxy', async () => {
    api = await startApi();
    const { username } = await api.addCaller('member');
    for (let i = 0; i < 3; i++) await loginFrom('127.0.0.2', username, 'not the password', `192.0.2.${i}`);
    const spoofed = await loginFrom('127.0.0.2', username, PASSWORD, '192.0.2.99');
    expect([spoofed.status, spoofed.body.code]).toEqual([429, 'too_many_login_attempts']);
  });

  it("counts the client's address from X-Forwarded-For behind a trusted proxy", async () => {
    api = await startApi({ trustProxy: true });
    const { username } = await api.addCaller('member');
    for (let i = 0; i < 3; i++) await loginFrom('127.0.0.1', username, 'not the password', '192.0.2.10');
    expect((await loginFrom('127.0.0.1', username, PASSWORD, '192.0.2.10')).status).toBe(429);
    expect((await loginFrom('127.0.0.1', username, PASSWORD, '192.0.2.11')).status).toBe(200);
  });
});
