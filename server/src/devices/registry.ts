import type { Adb } from '@yume-chan/adb';
import type { FastifyBaseLogger } from 'fastify';
import type { AdbKeyPair } from './adb/key.js';
import { AdbServerSource } from './sources/adb-server.js';
import { DirectSource } from './sources/direct.js';
import { DEFAULT_RETRY, type DeviceSource, type RetryPolicy, type SourceContext } from './sources/source.js';
import { VirtualSource } from './sources/virtual.js';
import type { DeviceUpdate, HostLiveStatus, HostSpec, LiveDevices } from './types.js';

export type { DeviceKind, DeviceUpdate, HostLiveStatus, HostSpec, LiveState } from './types.js';

export interface DeviceRegistryOptions {
  adbKey: AdbKeyPair;
  log: FastifyBaseLogger;
  /** What a `virtual` host starts: `count` devices of `profile` (a built-in profile name; `virtual` by default). */
  virtual?: { count: number; profile?: string };
  /** Reconnect backoff: initial 500 ms, doubling to 30 s, with jitter. */
  retry?: RetryPolicy;
}

interface HostEntry {
  spec: HostSpec;
  source: DeviceSource;
  status: HostLiveStatus;
  devices: Map<string, { update: DeviceUpdate; adb: Adb | undefined }>;
  removed: boolean;
}

/**
 * The live connections to every host's devices. Each host is tracked by a source (adb server, direct TCP, in-process
 * virtual devices) that reports device updates and host status as they happen.
 */
export class DeviceRegistry implements LiveDevices {
  readonly #hosts = new Map<string, HostEntry>();
  readonly #updateListeners = new Set<(update: DeviceUpdate) => void>();
  readonly #statusListeners = new Set<(hostId: string, status: HostLiveStatus) => void>();
  readonly #options: DeviceRegistryOptions;
  #closed = false;

  constructor(options: DeviceRegistryOptions) {
    this.#options = options;
  }

  addHost(spec: HostSpec): void {
    if (this.#closed) throw new Error('the device registry is closed');
    if (this.#hosts.has(spec.id)) return;
    const entry: HostEntry = {
      spec,
      source: undefined as unknown as DeviceSource,
      status: { status: 'connecting', lastError: null, nextRetryAt: null },
      devices: new Map(),
      removed: false,
    };
    const log = this.#options.log.child({ hostId: spec.id, hostType: spec.type });
    const context: SourceContext = {
      hostId: spec.id,
      log,
      adbKey: this.#options.adbKey,
      retry: this.#options.retry ?? DEFAULT_RETRY,
      emit: (update, adb) => {
        if (entry.removed) return;
        entry.devices.set(update.serial, { update, adb: update.state === 'online' ? adb : undefined });
        for (const listener of this.#updateListeners) safeCall(log, () => listener(update));
      },
      status: (status) => {
        if (entry.removed) return;
        const previous = entry.status;
        if (
          previous.status === status.status &&
          previous.lastError === status.lastError &&
          previous.nextRetryAt?.getTime() === status.nextRetryAt?.getTime()
        ) {
          return;
        }
        entry.status = status;
        for (const listener of this.#statusListeners) safeCall(log, () => listener(spec.id, status));
      },
    };
    switch (spec.type) {
      case 'adb_server':
        entry.source = new AdbServerSource(context, spec.address);
        break;
      case 'adb_device':
        entry.source = new DirectSource(context, spec.address);
        break;
      case 'virtual':
        entry.source = new VirtualSource(context, this.#options.virtual ?? { count: 0 });
        break;
    }
    this.#hosts.set(spec.id, entry);
    log.info({ address: spec.address }, 'tracking host');
    entry.source.start();
  }

  async removeHost(hostId: string): Promise<void> {
    const entry = this.#hosts.get(hostId);
    if (entry === undefined) return;
    entry.removed = true;
    this.#hosts.delete(hostId);
    await entry.source.stop();
  }

  /** Whether the host is this process's own virtual devices (no other process can reach them). */
  isInProcess(hostId: string): boolean {
    return this.#hosts.get(hostId)?.spec.type === 'virtual';
  }

  hostStatus(hostId: string): HostLiveStatus {
    return this.#hosts.get(hostId)?.status ?? { status: 'unreachable', lastError: 'unknown host', nextRetryAt: null };
  }

  /** The last update of every device seen on the host(s) since they were added, offline ones included. */
  snapshot(hostId?: string): DeviceUpdate[] {
    const entries = hostId === undefined ? [...this.#hosts.values()] : [this.#hosts.get(hostId)].filter((e) => e !== undefined);
    return entries.flatMap((entry) => [...entry.devices.values()].map((device) => device.update));
  }

  adb(hostId: string, serial: string): Adb | undefined {
    const device = this.#hosts.get(hostId)?.devices.get(serial);
    return device?.update.state === 'online' ? device.adb : undefined;
  }

  onUpdate(listener: (update: DeviceUpdate) => void): () => void {
    this.#updateListeners.add(listener);
    return () => this.#updateListeners.delete(listener);
  }

  onHostStatus(listener: (hostId: string, status: HostLiveStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /** The source of a host (tests use it to reach the virtual devices). */
  source(hostId: string): DeviceSource | undefined {
    return this.#hosts.get(hostId)?.source;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#hosts.keys()].map((hostId) => this.removeHost(hostId)));
    this.#updateListeners.clear();
    this.#statusListeners.clear();
  }
}

function safeCall(log: FastifyBaseLogger, call: () => void): void {
  try {
    call();
  } catch (error) {
    log.error({ err: error }, 'device registry listener failed');
  }
}
