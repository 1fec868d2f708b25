import { startVirtualDevices, type VirtualDevice } from '../../virtual-device/index.js';
import { DirectDeviceLink } from './direct.js';
import { errorMessage, type DeviceSource, type SourceContext } from './source.js';

/**
 * The `virtual` host (address `in-process`): `count` virtual devices started in this process on free ports of
 * 127.0.0.1, each connected directly like an adb_device; kind virtual, serial from the profile (CPVIRT0001…).
 */
export class VirtualSource implements DeviceSource {
  #devices: VirtualDevice[] = [];
  #links: DirectDeviceLink[] = [];
  #starting: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly context: SourceContext,
    private readonly options: { count: number; profile?: string },
  ) {}

  /** The devices this host runs (for tests and diagnostics). */
  get devices(): readonly VirtualDevice[] {
    return this.#devices;
  }

  start(): void {
    this.#starting ??= this.#start();
  }

  async #start(): Promise<void> {
    const { context } = this;
    context.status({ status: 'connecting', lastError: null, nextRetryAt: null });
    try {
      const devices = await startVirtualDevices(this.options.count, 0, { profile: this.options.profile });
      if (this.#stopped) {
        await Promise.all(devices.map((device) => device.close()));
        return;
      }
      this.#devices = devices;
    } catch (error) {
      context.log.error({ err: errorMessage(error) }, 'virtual devices failed to start');
      context.status({ status: 'unreachable', lastError: errorMessage(error), nextRetryAt: null });
      return;
    }
    context.status({ status: 'connected', lastError: null, nextRetryAt: null });
    this.#links = this.#devices.map(
      (device) =>
        new DirectDeviceLink(context, {
          host: device.host,
          port: device.port,
          serial: device.serial,
          kind: 'virtual',
          reportsHost: false,
        }),
    );
    for (const link of this.#links) link.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#starting;
    await Promise.all(this.#links.map((link) => link.stop()));
    await Promise.all(this.#devices.map((device) => device.close()));
  }
}
