import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundle } from '../../../openapi/generate/bundle.js';
import { operations } from '../../src/generated/operations.js';
import { bearer, testApp, type TestApp } from './fixtures.js';

const contractPath = fileURLToPath(new URL('../../../openapi/cloudphone.yaml', import.meta.url));

function refsOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(refsOf);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, v]) => (key === '$ref' && typeof v === 'string' ? [v] : refsOf(v)));
}

describe('infrastructure routes', () => {
  let t: TestApp;

  beforeEach(async () => {
    t = await testApp();
  });

  afterEach(async () => {
    await t.close();
  });

  it('GET /healthz answers ok without credentials', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers ok while the database answers', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 503 database_unavailable when the database does not', async () => {
    await t.database.db.destroy();
    const response = await t.app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode).toBe(503);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(response.headers['retry-after']).toBe('5');
    expect(response.json()).toMatchObject({ code: 'database_unavailable', detail: 'The database does not answer.' });
  });

  describe('GET /metrics', () => {
    it('needs credentials', async () => {
      const response = await t.app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toMatchObject({ code: 'unauthenticated' });
    });

    it('is for admins only', async () => {
      const response = await t.app.inject({ method: 'GET', url: '/metrics', headers: bearer('member') });
      expect(response.statusCode).toBe(403);
      expect(response.json()).toMatchObject({ code: 'insufficient_role' });
    });

    it('serves Prometheus text to an admin with the read scope', async () => {
      await t.app.inject({ method: 'GET', url: '/v1/users', headers: bearer('admin') });
      await t.app.inject({ method: 'GET', url: '/v1/users?limit=0', headers: bearer('admin') });
      await t.app.inject({ method: 'GET', url: '/no/such/route' });

      const response = await t.app.inject({ method: 'GET', url: '/metrics', headers: bearer('readOnlyAdmin') });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = response.body;
      const node = `node="${t.config.nodeName}"`;
      expect(text).toContain(`cloudphone_http_requests_total{method="GET",route="/v1/users",status="200",${node}} 1`);
      expect(text).toContain(`cloudphone_http_requests_total{method="GET",route="/v1/users",status="400",${node}} 1`);
      expect(text).toContain(`cloudphone_http_requests_total{method="GET",route="unmatched",status="404",${node}} 1`);
      expect(text).toContain(`cloudphone_http_request_duration_seconds_count{method="GET",route="/v1/users",${node}} 2`);
      expect(text).toContain('process_cpu_user_seconds_total');
    });

    it('labels every line with the node', async () => {
      const named = await testApp({ config: { nodeName: 'cp-2.rack-1' } });
      try {
        await named.app.inject({ method: 'GET', url: '/v1/users', headers: bearer('admin') });
        const response = await named.app.inject({ method: 'GET', url: '/metrics', headers: bearer('admin') });
        const samples = response.body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
        expect(samples.length).toBeGreaterThan(50);
        expect(samples.filter((line) => !/[{,]node="cp-2\.rack-1"[,}]/.test(line))).toEqual([]);
        expect(samples).toContainEqual(expect.stringMatching(/^process_cpu_user_seconds_total\{node="cp-2\.rack-1"\} /));
        expect(samples).toContain('cloudphone_http_requests_total{method="GET",route="/v1/users",status="200",node="cp-2.rack-1"} 1');
      } finally {
        await named.close();
      }
    });

    it('keeps a registry per app', async () => {
      const other = await testApp();
      try {
        await t.app.inject({ method: 'GET', url: '/healthz' });
        const response = await other.app.inject({ method: 'GET', url: '/metrics', headers: bearer('admin') });
        expect(response.body).not.toContain('route="/healthz"');
      } finally {
        await other.close();
      }
    });
  });

  it('GET /openapi.json serves the bundled contract, one document with only local $refs', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const served = response.json();
    expect(served).toEqual(bundle(contractPath).document);
    const refs = refsOf(served);
    expect(refs.length).toBeGreaterThan(100);
    expect(refs.filter((ref) => !ref.startsWith('#/components/'))).toEqual([]);
  });

  describe('GET /docs', () => {
    it('renders every operation', async () => {
      const response = await t.app.inject({ method: 'GET', url: '/docs' });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
      for (const [id, meta] of Object.entries(operations)) {
        expect(response.body).toContain(`id="${id}"`);
        expect(response.body).toContain(`<code class="path">${meta.path}</code>`);
      }
    });

    it('is self-contained and locked down to inline styles', async () => {
      const response = await t.app.inject({ method: 'GET', url: '/docs' });
      expect(response.headers['content-security-policy']).toBe(
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
      );
      expect(response.body).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|@import|url\(/i);
    });

    it('escapes contract text', async () => {
      const response = await t.app.inject({ method: 'GET', url: '/docs' });
      expect(response.body).toContain('Authorization: Bearer &lt;token&gt;');
      expect(response.body).not.toContain('Bearer <token>');
    });

    it('documents access, parameters, bodies and responses', async () => {
      const page = (await t.app.inject({ method: 'GET', url: '/docs' })).body;
      const createUser = page.slice(
        page.indexOf('id="createUser"'),
        page.indexOf('</section>', page.indexOf('id="createUser"')),
      );
      expect(createUser).toContain('Needs role <strong>admin</strong>');
      expect(createUser).toContain('<code>Idempotency-Key</code>');
      expect(createUser).toContain(
        '<td><code>password</code></td><td>string <span class="muted">(<a href="#schema-Password">Password</a>)</span></td><td>yes</td><td>At least 12 characters. <span class="muted">12–256 characters</span></td>',
      );
      expect(createUser).toContain(
        '<td><code>201</code></td><td>The new user.</td><td><a href="#schema-User">User</a>',
      );
      expect(createUser).toContain('&quot;username&quot;: &quot;alice&quot;');
    });
  });
});
