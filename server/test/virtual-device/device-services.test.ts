import { afterEach, describe, expect, it } from 'vitest';
import { startVirtualDevice, type VirtualDevice } from '../../src/virtual-device/daemon.js';
import { Device } from '../../src/virtual-device/device.js';
import { defaultProfile } from '../../src/virtual-device/profile.js';
import { Command } from '../../src/adb-protocol/index.js';
import { TestHost } from '../helpers/test-host.js';

const SCREEN = { width: 40, height: 30, density: 160 };

describe('framebuffer: and reboot on the transport', () => {
  let device: VirtualDevice;
  let host: TestHost | undefined;

  afterEach(async () => {
    host?.close();
    host = undefined;
    await device.close();
  });

  it('sends a version-2 framebuffer header and the RGBA_8888 pixels of the profile screen', async () => {
    device = await startVirtualDevice({ profile: { ...defaultProfile(0), screen: SCREEN } });
    ({ host } = await TestHost.connect(device.port, 4096));
    const remote = (await host.open(1, 'framebuffer:\0')) as number;
    const data = Buffer.concat(await host.readUntilClose(1, remote));
    const header = Array.from({ length: 14 }, (_, index) => data.readUInt32LE(index * 4));
    const size = SCREEN.width * SCREEN.height * 4;
    // version, bpp, colorSpace, size, width, height, red, blue, green and alpha as offset and length.
    expect(header).toEqual([2, 32, 1, size, 40, 30, 0, 8, 16, 8, 8, 8, 24, 8]);
    expect(data).toHaveLength(14 * 4 + size);
    expect(data.readUInt8(14 * 4 + 3)).toBe(0xff);
  });

  it('reboots on reboot:, closing connections, and listens again on the same port after the delay', async () => {
    device = await startVirtualDevice({ profile: defaultProfile(0), rebootDelayMs: 100 });
    const connected = await TestHost.connect(device.port);
    host = connected.host;
    const remote = (await host.open(1, 'reboot:\0')) as number;
    expect(await host.readUntilClose(1, remote)).toEqual([]);
    host.close();
    const back = await retryConnect(device.port);
    host = back.host;
    expect(back.reply.command).toBe(Command.CNXN);
  });

  it('keeps the device away while it reboots', async () => {
    device = await startVirtualDevice({ profile: defaultProfile(0), rebootDelayMs: 60_000 });
    device.state.reboot();
    await expect(TestHost.connect(device.port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('the reboot command', () => {
  it('asks the daemon to restart the device', async () => {
    let reboots = 0;
    const device = new Device(defaultProfile(0), () => reboots++);
    const status = await device.userland.run('reboot', {
      stdin: { read: async () => undefined, readSome: async () => undefined, readChunks: async () => undefined },
      stdout: async () => undefined,
      stderr: async () => undefined,
      signal: new AbortController().signal,
    });
    expect({ status, reboots }).toEqual({ status: 0, reboots: 1 });
  });
});

/** Connects until the device accepts again, within a bounded number of tries. */
async function retryConnect(port: number): Promise<Awaited<ReturnType<typeof TestHost.connect>>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await TestHost.connect(port);
    } catch (error) {
      if (attempt >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
