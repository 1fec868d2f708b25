/*
 * The built CLI where no server is needed (start-up, help) and against a fake server for what the real one cannot
 * produce on demand (5xx answers, a request that never completes). Everything else runs against the real server in
 * server.integration.test.ts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '@oclif/core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertBuilt, cliRoot, configFile, runCli, type Result, type RunOptions } from './fixtures/cli.js';
import { ADMIN, FakeServer } from './fixtures/fake-server.js';

const forbidOclif = join(import.meta.dirname, 'fixtures', 'forbid-oclif.mjs');

let home: string;
const run = (args: string[], options?: RunOptions): Promise<Result> => runCli(home, args, options);

beforeAll(assertBuilt);

beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'cloudphone-cli-it-'));
});

afterEach(() => {
  rmSync(home, { recursive: true, force: true });
});

describe('start-up', () => {
  let userAgent: string;
  beforeAll(async () => {
    const pjson = JSON.parse(readFileSync(join(cliRoot, 'package.json'), 'utf8'));
    const { loadOptions } = (await import(join(cliRoot, 'dist', 'load-options.js'))) as typeof import('../src/load-options.js');
    userAgent = (await Config.load(loadOptions(cliRoot, pjson))).userAgent;
  });

  it('answers --version and -v in oclif’s format without loading oclif', async () => {
    for (const flag of ['--version', '-v']) {
      const result = await run([flag], { nodeArgs: ['--import', forbidOclif] });
      expect(result).toEqual({ code: 0, stdout: `${userAgent}\n`, stderr: '' });
    }
  });

  it('goes through oclif for everything else', async () => {
    const blocked = await run(['--help'], { nodeArgs: ['--import', forbidOclif] });
    expect(blocked.code).not.toBe(0);
    expect(blocked.stderr).toContain('imported @oclif/core');
  });

  it('lists topics, environment variables and exit codes in the root help', async () => {
    for (const args of [['--help'], ['help']]) {
      const { code, stdout } = await run(args);
      expect(code).toBe(0);
      expect(stdout).toMatch(/TOPICS\n {2}apps +APKs in the server's app store/);
      expect(stdout).toMatch(/\n {2}devices +Android devices/);
      expect(stdout).toMatch(/\n {2}events +The durable event log/);
      expect(stdout).toMatch(/ {2}users +User accounts and roles/);
      expect(stdout).not.toMatch(/^ {2}auth /m);
      expect(stdout).toContain('EXIT CODES');
      expect(stdout).toMatch(/^ {2}4 +Not authenticated/m);
      expect(stdout).toContain('CLOUDPHONE_TOKEN');
    }
  });

  it('shows help for topics and commands from the manifest', async () => {
    const topic = await run(['users', '--help']);
    expect(topic.stdout).toMatch(/users list +List users/);
    const command = await run(['users', 'list', '--help']);
    expect(command.code).toBe(0);
    expect(command.stdout).toContain('$ cloudphone users list');
    expect(command.stdout).toContain('--role=<option>');
    expect(command.stdout).toContain('--all');
  });
});

describe('failures only a fake server produces on demand', () => {
  let server: FakeServer;
  let env: Record<string, string>;
  const unavailable = (times: number): void =>
    server.fail(503, 'service_unavailable', 'The service is unavailable; try again later.', {
      times,
      headers: { 'Retry-After': '0' },
    });

  beforeEach(async () => {
    server = new FakeServer();
    await server.start();
    env = { CLOUDPHONE_API_URL: server.url, CLOUDPHONE_TOKEN: 'cpt_7Hq2mZ4xW9kP1sV8bN3cR6tY0uL5eJ2aQ7fD4gH' };
  });

  afterEach(async () => {
    await server.stop();
  });

  it('retries a 503 and prints the answer that follows', async () => {
    unavailable(2);
    const result = await run(['users', 'list', '--json'], { env });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual([ADMIN]);
    expect(server.to('GET', '/v1/users')).toHaveLength(3);
  });

  it('retries a create with one automatic idempotency key', async () => {
    unavailable(2);
    const create = ['users', 'create', '--username', 'carol', '--password', 'long-enough-password', '--role', 'viewer'];
    const result = await run([...create, '--json'], { env });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ username: 'carol', role: 'viewer' });
    const keys = server.to('POST', '/v1/users').map((r) => r.headers['idempotency-key']);
    expect(keys).toHaveLength(3);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(keys).size).toBe(1);
  });

  it('exits 1 with the last problem once the retries are spent', async () => {
    unavailable(3);
    const text = await run(['users', 'list'], { env });
    expect(text).toMatchObject({ code: 1, stdout: '' });
    expect(text.stderr).toBe(
      'Error: The service is unavailable; try again later. (service_unavailable, request req_00000000000000000000000003)\n',
    );
    expect(server.to('GET', '/v1/users')).toHaveLength(3);

    unavailable(3);
    const json = await run(['users', 'list', '--json'], { env });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({
      error: { status: 503, code: 'service_unavailable', requestId: 'req_00000000000000000000000006' },
    });
  });

  it('does not retry a 500 on a login, which has no idempotency key, and saves nothing', async () => {
    server.fail(500, 'internal_error', 'Something went wrong on our side.');
    const login = ['login', '--api-url', server.url, '--username', 'admin', '--password-stdin'];
    const result = await run(login, { input: 'a-password-of-some-length' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^Error: Something went wrong on our side\. \(internal_error, request req_\w+\)\n$/);
    expect(server.to('POST', '/v1/auth/login')).toHaveLength(1);
    expect(existsSync(configFile(home))).toBe(false);
  });

  it('exits 130 when interrupted', async () => {
    const arrived = server.hold();
    const result = await run(['users', 'list'], {
      env,
      started: (child) => void arrived.then(() => child.kill('SIGINT')),
    });
    expect(result.code).toBe(130);
    expect(result.stdout).toBe('');
  });

  it('exits 1 with a clear message when the server cannot be reached', async () => {
    const unreachable = { ...env, CLOUDPHONE_API_URL: 'http://127.0.0.1:1' };
    const text = await run(['whoami'], { env: unreachable });
    expect(text).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Error: Connection error: connect ECONNREFUSED 127.0.0.1:1\n',
    });
    const json = await run(['whoami', '--json'], { env: unreachable });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'connection_error' } });
  });
});
