import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../server/src/index.js';
import { CloudPhone, ConflictError, LeaseEndedError, LeaseHandle, type LeaseHandle as Lease } from '../src/index.js';

const ADMIN_PASSWORD = 'admin-password-for-sdk-device-tests';
const PASSWORD = 'correct-horse-battery-staple';
const DEVICES = 2;

let dataDir: string;
let server: RunningServer;
let admin: CloudPhone;
let member: CloudPhone;

async function eventually<T>(check: () => Promise<T | false | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function availableCount(): Promise<number> {
  return (await admin.devices.list({ available: true, limit: 100 })).data.length;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-sdk-devices-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    adminPassword: ADMIN_PASSWORD,
    virtualDevices: DEVICES,
    logStream: { write: () => undefined },
  });
  const pair = await new CloudPhone({ baseUrl: server.url }).auth.login({ username: 'admin', password: ADMIN_PASSWORD });
  admin = new CloudPhone({ baseUrl: server.url, token: pair.accessToken });
  await admin.users.create({ username: 'device-user', password: PASSWORD, role: 'member' });
  const memberPair = await admin.auth.login({ username: 'device-user', password: PASSWORD });
  member = new CloudPhone({ baseUrl: server.url, token: memberPair.accessToken });
  await eventually(async () => (await availableCount()) === DEVICES, 30_000, 'the virtual devices');
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('devices and leases against the real server', () => {
  let lease: Lease;

  it('creates a lease with DeviceHandles', async () => {
    lease = await member.leases.create({ selector: { kind: 'virtual' }, ttlSeconds: 300, note: 'sdk integration' });
    expect(lease).toBeInstanceOf(LeaseHandle);
    expect(lease.status).toBe('granted');
    expect(lease.devices).toHaveLength(1);
    expect(lease.devices[0]!.kind).toBe('virtual');
  });

  it('runs a shell command', async () => {
    const device = lease.devices[0]!;
    const result = await device.shell('echo hello', { timeoutSeconds: 30 });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.trim()).toBe('hello');
    const argv = await device.shell(['echo', 'a b']);
    expect(argv.stdout.trim()).toBe('a b');
  });

  it('pushes and pulls 1 MB byte-exact', async () => {
    const device = lease.devices[0]!;
    const bytes = randomBytes(1024 * 1024);
    const local = join(dataDir, 'upload.bin');
    writeFileSync(local, bytes);
    const pushed = await device.push(local, '/data/local/tmp/sdk.bin');
    expect(pushed.size).toBe(bytes.length);
    const pulledPath = join(dataDir, 'pulled.bin');
    expect(await device.pullTo('/data/local/tmp/sdk.bin', pulledPath)).toBe(bytes.length);
    expect(readFileSync(pulledPath).equals(bytes)).toBe(true);
    expect((await device.ls('/data/local/tmp')).map((entry) => entry.name)).toContain('sdk.bin');
  });

  it('takes a PNG screenshot and dumps the log', async () => {
    const device = lease.devices[0]!;
    const png = await device.screenshot();
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(Array.isArray(await device.logcat({ tail: 20 }))).toBe(true);
    // Following ends quietly when the signal aborts.
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    for await (const entry of device.followLogcat({}, { signal: controller.signal })) expect(typeof entry.message).toBe('string');
  });

  it('opens a shell session with stdin and an exit code', async () => {
    const device = lease.devices[0]!;
    // The virtual device's shell runs single commands: `cat` echoes stdin, `false` exits 1.
    const session = await device.openShell({ command: 'cat' });
    const out: Buffer[] = [];
    session.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    await session.write('ping\n');
    await session.end();
    expect(await session.exited).toBe(0);
    expect(Buffer.concat(out).toString()).toBe('ping\n');
    const failing = await device.openShell({ command: 'false' });
    expect(await failing.exited).toBe(1);
  });

  it('renews and releases', async () => {
    const before = lease.expiresAt;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await lease.renew();
    expect(lease.expiresAt! > before!).toBe(true);
    const session = await lease.devices[0]!.openShell({ command: 'cat' });
    await lease.release();
    expect(lease.status).toBe('released');
    await expect(session.exited).rejects.toBeInstanceOf(LeaseEndedError);
  });

  it('use() releases after fn and when fn throws', async () => {
    const serial = await member.leases.use({ selector: { kind: 'virtual' } }, async (held) => {
      expect(held.status).toBe('granted');
      return (await held.devices[0]!.shell('echo used')).stdout.trim();
    });
    expect(serial).toBe('used');
    const active = await member.leases.list();
    expect(active.data).toHaveLength(0);

    let leaseId = '';
    await eventually(async () => (await availableCount()) === DEVICES, 30_000, 'the devices after reset');
    await expect(
      member.leases.use({ count: DEVICES }, async (held) => {
        leaseId = held.id;
        throw new Error('test failed');
      }),
    ).rejects.toThrow('test failed');
    const ended = await member.leases.get(leaseId);
    expect(ended.status).toBe('released');
    // Released devices are reset, then free again.
    await eventually(async () => (await availableCount()) === DEVICES, 30_000, 'the devices after reset');
    await expect(member.leases.create({ count: DEVICES + 1 })).rejects.toBeInstanceOf(Error);
    await expect(
      member.leases.use({ count: DEVICES }, () => member.leases.create({ count: 1 })),
    ).rejects.toBeInstanceOf(ConflictError);
  });

  it('waits for a queued lease (create with waitSeconds)', async () => {
    await eventually(async () => (await availableCount()) === DEVICES, 30_000, 'free devices');
    const holder = await member.leases.create({ count: DEVICES });
    const waiting = member.leases.create({ count: 1, waitSeconds: 30 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await holder.release();
    const granted = await waiting;
    expect(granted.status).toBe('granted');
    await granted.release();
  });
});
