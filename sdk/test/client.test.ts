import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CloudPhone, CloudPhoneError, VERSION } from '../src/index.js';
import { resources } from '../src/generated/resources.js';
import { JSON_HEADERS, me, mockClient } from './helpers.js';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('CloudPhone', () => {
  it('reads the base URL and token from the environment', async () => {
    vi.stubEnv('CLOUDPHONE_API_URL', 'http://env.test:9000/');
    vi.stubEnv('CLOUDPHONE_TOKEN', 'cpt_from_env');
    const { agent, header } = mockClient({ baseUrl: undefined, token: undefined });
    agent.get('http://env.test:9000').intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS });
    const client = new CloudPhone({ dispatcher: agent });

    expect(client.baseUrl).toBe('http://env.test:9000');
    await expect(client.me.get()).resolves.toEqual(me);
    expect(header('authorization')).toEqual(['Bearer cpt_from_env']);
  });

  it('prefers options to the environment', () => {
    vi.stubEnv('CLOUDPHONE_API_URL', 'http://env.test');
    expect(new CloudPhone({ baseUrl: 'http://option.test' }).baseUrl).toBe('http://option.test');
  });

  it('defaults to a local server, 60 s timeouts and 2 retries', () => {
    vi.stubEnv('CLOUDPHONE_API_URL', '');
    const client = new CloudPhone();
    expect(client.baseUrl).toBe('http://127.0.0.1:8080');
    expect(client.timeout).toBe(60_000);
    expect(client.maxRetries).toBe(2);
  });

  it('rejects an invalid base URL', () => {
    expect(() => new CloudPhone({ baseUrl: 'not a url' })).toThrow(CloudPhoneError);
  });

  it('attaches one resource namespace per tag', () => {
    const client = new CloudPhone();
    expect(Object.keys(client)).toEqual(expect.arrayContaining(Object.keys(resources)));
    for (const [name, Resource] of Object.entries(resources)) {
      expect(client[name as keyof typeof resources]).toBeInstanceOf(Resource);
    }
  });

  it('derives clients with withOptions, keeping what is not overridden', async () => {
    const { pool, client, header } = mockClient({ token: 'cpa_admin', defaultHeaders: { 'x-tenant': 'lab' }, timeout: 1234 });
    pool.intercept({ path: '/v1/me' }).reply(200, me, { headers: JSON_HEADERS }).times(2);

    const member = client.withOptions({ token: 'cpa_member' });
    expect(member).toBeInstanceOf(CloudPhone);
    expect(member).not.toBe(client);
    expect(member.timeout).toBe(1234);
    expect(member.baseUrl).toBe(client.baseUrl);
    await member.me.get();
    await client.me.get();
    expect(header('authorization')).toEqual(['Bearer cpa_member', 'Bearer cpa_admin']);
    expect(header('x-tenant')).toEqual(['lab', 'lab']);
  });

  it('has the version of its package', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
