import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allDevices, eventually, leaseDevice, release, type Json } from '../api/device-helpers.js';
import { startApi, type Api, type Caller } from '../api/harness.js';

/**
 * What a device refuses in file operations reaches the API as a 4xx with the device's own message: a server with one
 * in-process virtual device (64 MiB of storage, the default), over real HTTP.
 */
let api: Api;
let holder: Caller;
let lease: Json;
let path: { deviceId: string };

beforeAll(async () => {
  api = await startApi({ virtualDevices: 1 });
  holder = await api.addCaller('member');
  const [device] = await eventually(async () => {
    const online = await allDevices(api, holder.token, { state: 'online' });
    return online.length === 1 && online[0]!.properties !== null ? online : undefined;
  }, 20_000, 'the virtual device online');
  path = { deviceId: device!.id };
  lease = await leaseDevice(api, holder.token, path.deviceId);
}, 60_000);

afterAll(async () => {
  if (lease !== undefined) await release(api, holder.token, lease.id);
  await api?.close();
});

function push(target: string, body: Uint8Array | string) {
  return api.call('pushDeviceFile', {
    token: holder.token,
    path,
    query: { path: target },
    rawBody: body,
    contentType: 'application/octet-stream',
  });
}

describe('refused file operations', () => {
  it('a push the device refuses is 422 device_path_refused with its message, never 500', async () => {
    const refusals: [string, string][] = [
      ['/', "couldn't create file: Is a directory"],
      ['/sdcard', "couldn't create file: Is a directory"],
      ['/data/local/tmp', "couldn't create file: Is a directory"],
      ['/system/bin/sh', "couldn't create file: Read-only file system"],
      ['/system/new-file', "couldn't create file: Read-only file system"],
      ['/new-file', "couldn't create file: Read-only file system"],
      ['/proc/1/mem', "couldn't create file: Permission denied"],
      ['/data/new-file', "couldn't create file: Permission denied"],
    ];
    for (const [target, message] of refusals) {
      const refused = await push(target, 'x');
      expect([target, refused.status, refused.body.code]).toEqual([target, 422, 'device_path_refused']);
      expect(refused.body.detail).toBe(`Device ${path.deviceId} refused ${target}: ${message}.`);
      expect(refused.body.errors).toEqual([{ field: '/path', message }]);
    }
    // Under a file, the device answers Not a directory.
    expect((await push('/data/local/tmp/plain', 'x')).status).toBe(201);
    const underFile = await push('/data/local/tmp/plain/child', 'x');
    expect([underFile.status, underFile.body.code]).toEqual([422, 'device_path_refused']);
    expect(underFile.body.detail).toContain('Not a directory');
  });

  it('a pull or a listing the device refuses is 422 device_path_refused too', async () => {
    const token = holder.token;
    const unreadable = await api.call('pullDeviceFile', { token, path, query: { path: '/proc/1/mem' } });
    expect([unreadable.status, unreadable.body.code]).toEqual([422, 'device_path_refused']);
    expect(unreadable.body.detail).toBe(`Device ${path.deviceId} refused /proc/1/mem: open failed: Permission denied.`);
    const readable = await api.call('pullDeviceFile', { token, path, query: { path: '/proc/1/cmdline' }, binary: true });
    expect(readable.status).toBe(200);
    expect(readable.body.toString('latin1')).toBe('/system/bin/init\0second_stage\0');
    expect((await push('/data/local/tmp/file', 'x')).status).toBe(201);
    const pullUnder = await api.call('pullDeviceFile', { token, path, query: { path: '/data/local/tmp/file/x' } });
    expect([pullUnder.status, pullUnder.body.code, pullUnder.body.errors]).toEqual([
      422,
      'device_path_refused',
      [{ field: '/path', message: 'Not a directory' }],
    ]);
    const listUnder = await api.call('listDeviceFiles', { token, path, query: { path: '/data/local/tmp/file/x' } });
    expect([listUnder.status, listUnder.body.code]).toEqual([422, 'device_path_refused']);
  });

  it('a push past the device storage is 409 device_storage_full; the file is gone and the device usable', async () => {
    const token = holder.token;
    const tidy = await api.call('runDeviceShell', { token, path, body: { command: 'rm -f /data/local/tmp/plain /data/local/tmp/file' } });
    expect(tidy.body.exitCode).toBe(0);
    const before = await push('/sdcard/Download/keep.bin', Buffer.alloc(1024, 1));
    expect(before.status).toBe(201);
    const tooBig = await push('/sdcard/Download/big.bin', Buffer.alloc(65 * 1024 * 1024, 2));
    expect([tooBig.status, tooBig.body.code]).toEqual([409, 'device_storage_full']);
    expect(tooBig.body.detail).toBe(
      `Device ${path.deviceId} has no room for /sdcard/Download/big.bin: write failed: No space left on device.`,
    );
    const listing = await api.call('listDeviceFiles', { token, path, query: { path: '/sdcard/Download' } });
    expect(listing.body.entries.map((entry: Json) => entry.name)).toEqual(['keep.bin']);
    // What fits still fits, up to the last byte of the 64 MiB.
    const fits = await push('/sdcard/Download/fits.bin', Buffer.alloc(64 * 1024 * 1024 - 1024, 3));
    expect(fits.status).toBe(201);
    const oneMore = await push('/data/local/tmp/one-byte', 'x');
    expect([oneMore.status, oneMore.body.code]).toEqual([409, 'device_storage_full']);
    const shell = await api.call('runDeviceShell', { token, path, body: { command: 'rm /sdcard/Download/fits.bin' } });
    expect(shell.body.exitCode).toBe(0);
    expect((await push('/data/local/tmp/one-byte', 'x')).status).toBe(201);
  }, 60_000);
});
