import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Adb, AdbServerClient } from '@yume-chan/adb';
import { DumpSys, Logcat, PackageManager } from '@yume-chan/android-bin';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { builtInProfile, instantiate } from '../../src/virtual-device/profiles.js';
import { startAdbHost, type AdbHost } from '../helpers/adb-host.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { chunked, connectDirect, connectThroughServer, readAll } from '../helpers/yume-chan.js';

/** The same checks through either path. */
function exercise(name: string, setup: () => { adb: () => Adb; device: () => VirtualDevice }): void {
  describe(name, () => {
    it('reads properties and the banner', async () => {
      const { adb } = setup();
      expect(await adb().getProp('ro.product.model')).toBe('Pixel 8');
      expect(await adb().getProp('ro.build.version.sdk')).toBe('34');
      expect(adb().banner.product).toBe('shiba');
      expect(adb().canUseFeature('shell_v2' as never)).toBe(true);
    });

    it('runs shell-protocol commands with exit codes', async () => {
      const shell = setup().adb().subprocess.shellProtocol!;
      expect(await shell.spawnWaitText('echo hi')).toEqual({ stdout: 'hi\n', stderr: '', exitCode: 0 });
      expect((await shell.spawnWaitText('false')).exitCode).toBe(1);
      expect(await shell.spawnWaitText('nosuchcmd')).toEqual({
        stdout: '',
        stderr: '/system/bin/sh: nosuchcmd: inaccessible or not found\n',
        exitCode: 127,
      });
      expect(await setup().adb().subprocess.noneProtocol.spawnWaitText('echo raw')).toBe('raw\n');
    });

    it('writes, stats, lists and reads a 300 KB file byte for byte', async () => {
      const data = randomBytes(300 * 1024);
      const sync = await setup().adb().sync();
      try {
        await sync.write({ filename: '/data/local/tmp/yume.bin', file: chunked(data), permission: 0o644 });
        const stat = await sync.stat('/data/local/tmp/yume.bin');
        expect(stat.size).toBe(BigInt(data.length));
        expect(stat.type).toBe(8);
        expect(stat.permission).toBe(0o644);
        const names = (await sync.readdir('/data/local/tmp')).map((entry) => entry.name);
        expect(names).toContain('yume.bin');
        const back = await readAll(sync.read('/data/local/tmp/yume.bin'));
        expect(back.equals(data)).toBe(true);
        await expect(sync.stat('/data/local/tmp/missing')).rejects.toThrow(/ENOENT/);
      } finally {
        await sync.dispose();
      }
    });

    it('installs, lists and uninstalls a real APK through android-bin', async () => {
      const apk = await readFile(APKS.settings);
      const pm = new PackageManager(setup().adb());
      await pm.installStream(apk.length, chunked(apk));
      const thirdParty = [];
      for await (const entry of pm.listPackages({ listThirdParty: true })) thirdParty.push(entry.packageName);
      expect(thirdParty).toEqual(['io.appium.settings']);
      await pm.uninstall('io.appium.settings');
      const after = [];
      for await (const entry of pm.listPackages({ listThirdParty: true })) after.push(entry.packageName);
      expect(after).toEqual([]);
    });

    it('carries a reverse tunnel from a device port to a handler on this side', async () => {
      const { adb, device } = setup();
      // The handler must return once it has taken the socket: the connection is acknowledged after it returns.
      await adb().reverse.add('tcp:7201', (socket) => {
        void socket.readable.pipeTo(socket.writable).catch(() => undefined);
      });
      try {
        const port = device().reversePort(7201);
        expect(port).toBeGreaterThan(0);
        const echoed = await new Promise<string>((resolve, reject) => {
          const client = connect(port!, '127.0.0.1', () => client.write('HELLO REVERSE'));
          let received = '';
          client.on('data', (chunk) => {
            received += chunk.toString();
            if (received.length >= 'HELLO REVERSE'.length) {
              client.destroy();
              resolve(received);
            }
          });
          client.on('error', reject);
        });
        expect(echoed).toBe('HELLO REVERSE');
      } finally {
        await adb().reverse.removeAll();
      }
    });

    it('serves android-bin (binary logcat, dumpsys battery), settings and a PNG screencap', async () => {
      const { adb, device } = setup();
      device().state.log('W', 'YumeChan', `hello from ${name}`);
      const entries = [];
      for await (const entry of new Logcat(adb()).binary({ dump: true })) entries.push(entry);
      expect(entries.at(-1)).toMatchObject({ priority: 5, tag: 'YumeChan', message: `hello from ${name}\0`, uid: 1000 });
      expect(await new DumpSys(adb()).battery()).toMatchObject({ level: 78, scale: 100, usbPowered: true });
      const shell = adb().subprocess.shellProtocol!;
      expect((await shell.spawnWaitText('settings put global cloudphone_test 7')).exitCode).toBe(0);
      expect((await shell.spawnWaitText('settings get global cloudphone_test')).stdout).toBe('7\n');
      const png = Buffer.from(await adb().subprocess.noneProtocol.spawnWait('screencap -p'));
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1080, 2400]);
    });
  });
}

describe('@yume-chan/adb against the virtual device', () => {
  let host: AdbHost;
  let viaServer: { client: AdbServerClient; adb: Adb };
  let direct: Adb;
  let serverDevice: VirtualDevice;
  let directDevice: VirtualDevice;

  beforeAll(async () => {
    serverDevice = await startVirtualDevice({ profile: instantiate(builtInProfile('pixel-8'), 0) });
    directDevice = await startVirtualDevice({ profile: instantiate(builtInProfile('pixel-8'), 0) });
    host = await startAdbHost();
    viaServer = await connectThroughServer(host.port, `127.0.0.1:${serverDevice.port}`);
    direct = await connectDirect('127.0.0.1', directDevice.port);
  });

  afterAll(async () => {
    await direct?.close();
    await viaServer?.adb.close();
    await host?.stop();
    await Promise.all([serverDevice?.close(), directDevice?.close()]);
  });

  it('lists the device through the ADB server', async () => {
    const devices = await viaServer.client.getDevices();
    expect(devices).toContainEqual(
      expect.objectContaining({ serial: `127.0.0.1:${serverDevice.port}`, state: 'device', model: 'Pixel_8', product: 'shiba' }),
    );
  });

  exercise('through the ADB server', () => ({ adb: () => viaServer.adb, device: () => serverDevice }));
  exercise('directly over TCP, without adb', () => ({ adb: () => direct, device: () => directDevice }));
});
