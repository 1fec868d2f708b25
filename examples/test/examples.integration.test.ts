import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUILT_IN_PROFILES,
  startVirtualDevices,
  type InstrumentationTest,
  type VirtualDevice,
} from '../../server/src/virtual-device/index.js';
import { startServer, type RunningServer } from '../../server/src/index.js';
import { APKS } from '../../server/test/helpers/apk-fixtures.js';
import { CloudPhone } from '../../sdk/src/index.js';
import { runNode, TSX_CLI, type Run } from './run-node.js';

const ADMIN_PASSWORD = 'admin-password-for-examples';
const MEMBER_PASSWORD = 'correct-horse-battery-staple';
const NOW = new Date('2026-11-20T09:00:00.000Z');
const DAY_MS = 86_400_000;

const EXAMPLES_DIR = fileURLToPath(new URL('..', import.meta.url));
/** Runs an example with `npx tsx`, talking to the server at `url` (the shared one by default) with `token`. */
function runExample(script: string, args: string[], token: string, url = server.url): Promise<Run> {
  return runNode([TSX_CLI, join(EXAMPLES_DIR, script), ...args], EXAMPLES_DIR, {
    CLOUDPHONE_API_URL: url,
    CLOUDPHONE_TOKEN: token,
  });
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

let dataDir: string;
let server: RunningServer;
let admin: CloudPhone;
let adminToken: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-examples-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    virtualDevices: 1,
    clock: () => new Date(NOW),
    logStream: { write: () => undefined },
  });
  const anonymous = new CloudPhone({ baseUrl: server.url });
  const pair = await anonymous.auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  const token = await anonymous
    .withOptions({ token: pair.accessToken })
    .tokens.create({ name: 'examples', scopes: ['admin'] });
  adminToken = token.secret;
  admin = new CloudPhone({ baseUrl: server.url, token: adminToken });
});

afterAll(async () => {
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('examples/onboard-user.ts', () => {
  it('onboards a member with a CI token that authenticates as them, and refuses a repeat', async () => {
    const run = await runExample('onboard-user.ts', ['alice'], adminToken);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const lines = jsonLines(run.stdout);
    expect(lines.map((line) => line.step)).toEqual(['user', 'token', 'event', 'event']);
    const [userLine, tokenLine, ...eventLines] = lines as [Record<string, unknown>, Record<string, unknown>, ...Record<string, unknown>[]];

    // The example ends the member session it used to create the token.
    const sessions = [];
    for await (const event of admin.events.list({ type: ['auth.login_succeeded', 'auth.logged_out'] })) {
      if (event.actor.username === 'alice' && event.subject) sessions.push(`${event.type} ${event.subject.id}`);
    }
    expect(sessions).toEqual([expect.stringMatching(/^auth\.login_succeeded ses_/), expect.stringMatching(/^auth\.logged_out ses_/)]);
    expect(sessions[0]?.split(' ')[1]).toBe(sessions[1]?.split(' ')[1]);

    const alice = await admin.users.get(String(userLine.id));
    expect(alice).toMatchObject({ username: 'alice', role: 'member', displayName: 'alice', disabled: false });
    expect(userLine).toEqual({
      step: 'user',
      id: alice.id,
      username: 'alice',
      role: 'member',
      password: expect.any(String),
    });
    const login = await new CloudPhone({ baseUrl: server.url }).auth.login({
      username: 'alice',
      password: String(userLine.password),
    });
    expect(login.user.id).toBe(alice.id);

    expect(tokenLine).toEqual({
      step: 'token',
      id: expect.stringMatching(/^tok_/),
      scopes: ['read', 'write'],
      expiresAt: new Date(NOW.getTime() + 30 * DAY_MS).toISOString(),
      secret: expect.stringMatching(/^cpt_/),
    });
    const asAlice = new CloudPhone({ baseUrl: server.url, token: String(tokenLine.secret) });
    await expect(asAlice.me.get()).resolves.toMatchObject({
      id: alice.id,
      username: 'alice',
      authentication: { method: 'api_token', tokenId: tokenLine.id, scopes: ['read', 'write'] },
    });
    await expect(admin.tokens.get(String(tokenLine.id))).resolves.toMatchObject({ userId: alice.id, name: 'ci' });

    expect(eventLines).toEqual([
      { step: 'event', type: 'user.created', actor: 'admin', occurredAt: NOW.toISOString() },
      { step: 'event', type: 'token.created', actor: 'alice', occurredAt: NOW.toISOString() },
    ]);

    const again = await runExample('onboard-user.ts', ['alice'], adminToken);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('alice already exists');
    expect(again.stdout).toBe('');
    const named = [];
    for await (const user of admin.users.list({ q: 'alice' })) named.push(user.id);
    expect(named).toEqual([alice.id]);
  });

  it("refuses a member's token, exits 1 and creates nobody", async () => {
    await admin.users.create({ username: 'carol', password: MEMBER_PASSWORD, role: 'member' });
    const pair = await new CloudPhone({ baseUrl: server.url }).auth.login({
      username: 'carol',
      password: MEMBER_PASSWORD,
    });
    const memberToken = await new CloudPhone({ baseUrl: server.url, token: pair.accessToken }).tokens.create({
      name: 'carol-ci',
      scopes: ['read', 'write'],
    });

    const run = await runExample('onboard-user.ts', ['bob'], memberToken.secret);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('carol is a member; onboarding needs an admin token');
    expect(run.stdout).toBe('');
    expect((await admin.users.list({ q: 'bob' })).data).toEqual([]);
  });

  it('exits 2 with its usage when no username is given', async () => {
    const run = await runExample('onboard-user.ts', [], adminToken);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('usage: onboard-user.ts <username>');
    expect(run.stdout).toBe('');
  });
});

describe('examples/lease-and-shell.ts', () => {
  it('leases a device, runs a command, round-trips a file, takes a screenshot and releases the lease', async () => {
    const run = await runExample('lease-and-shell.ts', ['virtual'], adminToken);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const lines = jsonLines(run.stdout);
    expect(lines.map((line) => line.step)).toEqual(['lease', 'shell', 'files', 'screenshot', 'released']);
    expect(lines[1]).toEqual({ step: 'shell', exitCode: 0, model: 'Virtual Phone' });
    expect(lines[2]).toEqual({ step: 'files', pushed: 65_536, pulled: 65_536, identical: true });
    expect(Number(lines[3]?.bytes)).toBeGreaterThan(8);

    const lease = await admin.leases.get(String(lines[0]?.id));
    expect(lease.status).toBe('released');
    expect(lease.endReason).toBe('released');
  });
});

describe('examples/install-and-test.ts', () => {
  const TEST_CLASS = 'io.appium.uiautomator2.server.test.ServerTest';
  const SCRIPTED: InstrumentationTest[] = [
    { class: TEST_CLASS, method: 'startsServer', result: 'pass' },
    {
      class: TEST_CLASS,
      method: 'answersStatus',
      result: 'fail',
      stack: `java.lang.AssertionError: expected:<200> but was:<503>\n\tat ${TEST_CLASS}.answersStatus(ServerTest.java:42)\n`,
    },
    { class: TEST_CLASS, method: 'rotatesScreen', result: 'ignored' },
    { class: 'io.appium.uiautomator2.server.test.SessionTest', method: 'createsSession', result: 'pass' },
    { class: 'io.appium.uiautomator2.server.test.SessionTest', method: 'needsWifi', result: 'assumption_failure' },
  ];

  // A server of its own, whose only devices are two Pixel 8s that script the outcomes of the uiautomator2 tests.
  let farmDir: string;
  let farm: RunningServer;
  let farmAdmin: CloudPhone;
  let farmToken: string;
  let phones: VirtualDevice[] = [];
  let firstUpload: Record<string, unknown> | undefined;
  /** The operation of every request the farm server completed, in order, from its log. */
  const operations: string[] = [];

  const run = (args: string[]) => runExample('install-and-test.ts', args, farmToken, farm.url);
  const allLeases = async () =>
    (
      await farmAdmin.leases.list({
        status: ['queued', 'granted', 'released', 'expired', 'cancelled', 'timed_out'],
        allUsers: true,
        limit: 100,
      })
    ).data;

  beforeAll(async () => {
    phones = await startVirtualDevices(2, 0, {
      profile: {
        ...BUILT_IN_PROFILES['pixel-8']!,
        serial: 'FARMPIXEL8',
        instrumentation: { 'io.appium.uiautomator2.server.test': SCRIPTED },
      },
    });
    farmDir = mkdtempSync(join(tmpdir(), 'cloudphone-examples-farm-'));
    farm = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: farmDir,
      adminPassword: ADMIN_PASSWORD,
      virtualDevices: 0,
      adbDevices: phones.map((phone) => `127.0.0.1:${phone.port}`),
      logStream: {
        write: (line: string) => {
          const entry = JSON.parse(line) as { msg?: string; operationId?: string };
          if (entry.msg === 'request completed' && entry.operationId) operations.push(entry.operationId);
        },
      },
    });
    const pair = await new CloudPhone({ baseUrl: farm.url }).auth.login({ username: 'admin', password: ADMIN_PASSWORD });
    const token = await new CloudPhone({ baseUrl: farm.url, token: pair.accessToken }).tokens.create({
      name: 'examples-farm',
      scopes: ['admin'],
    });
    farmToken = token.secret;
    farmAdmin = new CloudPhone({ baseUrl: farm.url, token: farmToken });
    const deadline = Date.now() + 30_000;
    while ((await farmAdmin.devices.list({ available: true, limit: 100 })).data.length < phones.length) {
      if (Date.now() > deadline) throw new Error('the devices did not come online');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  afterAll(async () => {
    await farm?.close();
    await Promise.all(phones.map((phone) => phone.close()));
    if (farmDir) rmSync(farmDir, { recursive: true, force: true });
  });

  it('uploads, installs on two leased devices, runs the tests on both, reports the failure, exits 1 and releases', async () => {
    const leasesBefore = await allLeases();
    const result = await run([APKS.uiautomator2, APKS.uiautomator2Test, '2']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(1);

    const lines = jsonLines(result.stdout);
    expect(lines.map((line) => line.step)).toEqual(['upload', 'install', 'install', 'test', 'test', 'summary']);
    const [upload, appInstall, testInstall, ...rest] = lines as [Record<string, unknown>, ...Record<string, unknown>[]];
    expect(upload).toEqual({
      step: 'upload',
      app: expect.stringMatching(/^app_/),
      package: 'io.appium.uiautomator2.server',
      test: expect.stringMatching(/^app_/),
      testPackage: 'io.appium.uiautomator2.server.test',
      runner: 'androidx.test.runner.AndroidJUnitRunner',
    });
    firstUpload = upload;
    await expect(farmAdmin.apps.get(String(upload.app))).resolves.toMatchObject({ kind: 'app' });
    await expect(farmAdmin.apps.get(String(upload.test))).resolves.toMatchObject({ kind: 'test' });

    for (const [line, appId, packageName] of [
      [appInstall, upload.app, 'io.appium.uiautomator2.server'],
      [testInstall, upload.test, 'io.appium.uiautomator2.server.test'],
    ] as const) {
      expect(line).toEqual({ step: 'install', package: packageName, job: expect.any(String), installed: 2, failed: [] });
      const job = await farmAdmin.apps.installJob(String(line?.job));
      expect(job).toMatchObject({ appId, packageName, status: 'succeeded' });
    }

    const [firstTest, secondTest, summary] = rest;
    const serials = phones.map((phone) => `127.0.0.1:${phone.port}`).sort();
    expect([firstTest?.serial, secondTest?.serial].sort()).toEqual(serials);
    for (const line of [firstTest, secondTest]) {
      expect(line).toEqual({
        step: 'test',
        serial: line?.serial,
        device: expect.stringMatching(/^dev_/),
        passed: 2,
        failed: 1,
        ignored: 2,
        failures: [{ test: `${TEST_CLASS}#answersStatus`, message: 'java.lang.AssertionError: expected:<200> but was:<503>' }],
      });
    }
    expect(summary).toEqual({ step: 'summary', devices: 2, passed: 4, failed: 2 });

    const leases = (await allLeases()).filter((lease) => !leasesBefore.some((before) => before.id === lease.id));
    expect(leases).toHaveLength(1);
    const lease = leases[0]!;
    expect(lease).toMatchObject({
      status: 'released',
      endReason: 'released',
      count: 2,
      note: 'examples/install-and-test io.appium.uiautomator2.server',
    });
    expect(lease.devices.map((device) => device.id).sort()).toEqual([firstTest?.device, secondTest?.device].sort());
  });

  it('uploads nothing new on a second run: the same app ids, found by hash', async () => {
    expect(firstUpload, 'the first run printed its upload step').toBeDefined();
    const seen = operations.length;
    const result = await run([APKS.uiautomator2, APKS.uiautomator2Test, '2']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(1);
    const [upload] = jsonLines(result.stdout);
    expect(upload).toEqual(firstUpload);
    const requests = operations.slice(seen);
    expect(requests.filter((operation) => operation === 'createAppFromHash')).toHaveLength(2);
    expect(requests).not.toContain('uploadApp');
    const apps = (await farmAdmin.apps.list({ limit: 100 })).data.map((app) => app.id).sort();
    expect(apps).toEqual([firstUpload?.app, firstUpload?.test].sort());
  });

  it('exits 2 when the test APK comes first, and leases nothing', async () => {
    // Ids and statuses only: the reset record of an earlier run's lease may still be filled in meanwhile.
    const leaseStates = async () => (await allLeases()).map((lease) => ({ id: lease.id, status: lease.status }));
    const before = await leaseStates();
    const result = await run([APKS.uiautomator2Test, APKS.uiautomator2]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `${APKS.uiautomator2} (io.appium.uiautomator2.server) is not an instrumentation test APK: give the app first, then its test APK`,
    );
    expect(result.stdout).toBe('');
    expect(await leaseStates()).toEqual(before);
  });
});
