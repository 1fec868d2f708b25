import type { CloudPhone, RequestOptions } from '../client.js';
import { APIUserAbortError } from '../core/errors.js';
import type { Lease, LeaseDevice } from '../generated/models.js';
import { DeviceHandle } from './device.js';
import { LeaseNotGrantedError } from './errors.js';

/** The longest `waitSeconds` the server accepts on `getLease`. */
const MAX_LONG_POLL_SECONDS = 60;

/** A device of a lease: a `DeviceHandle` that also carries the lease's `LeaseDevice` fields. */
export type LeaseDeviceHandle = DeviceHandle & Readonly<LeaseDevice>;

export interface WaitOptions {
  /** Give up (with `LeaseNotGrantedError`, status `queued`) after this many seconds. Default: no limit of its own. */
  timeoutSeconds?: number;
  /** Aborts the wait with `APIUserAbortError` (the lease stays queued). */
  signal?: AbortSignal;
}

export interface KeepAliveOptions {
  /** Milliseconds between renewals. Default: a third of the lease's `ttlSeconds`. */
  intervalMs?: number;
  /** The `ttlSeconds` of each renewal. Default: the lease's own. */
  ttlSeconds?: number;
  /** Called with each failed renewal. Renewing stops once the lease is no longer active (409 `lease_not_active`, 404). */
  onError?: (error: unknown) => void;
}

/**
 * Stops renewing. The promise resolves once no renewal is in flight, or rejects with the error that stopped the
 * renewals (a failed renewal that `onError` did not take, such as the lease having ended).
 */
export type StopKeepAlive = () => Promise<void>;

// Merged with the class below: the handle carries these fields as properties, copied in at run time.
export interface LeaseHandle extends Readonly<Omit<Lease, 'devices'>> {}

/**
 * A lease with methods: every `Lease` field, its `devices` as `DeviceHandle`s, and `renew`, `release`, `refresh`,
 * `waitUntilGranted`, `keepAlive`. The fields change as the methods learn the lease's new state.
 */
export class LeaseHandle {
  /** The leased devices (empty until granted). */
  readonly devices: LeaseDeviceHandle[] = [];
  readonly #client: CloudPhone;

  constructor(client: CloudPhone, lease: Lease) {
    this.#client = client;
    this.update(lease);
  }

  /** The client this handle calls through. */
  get client(): CloudPhone {
    return this.#client;
  }

  /** @internal Takes the state of `lease` (the same lease, as the server answered it). Returns this. */
  update(lease: Lease): this {
    const { devices, ...fields } = lease;
    Object.assign(this, fields);
    const handles = devices.map((device) => {
      const known = this.devices.find((handle) => handle.id === device.id);
      if (known) return Object.assign(known, device);
      return new DeviceHandle(this.#client, device.id, device) as LeaseDeviceHandle;
    });
    this.devices.splice(0, this.devices.length, ...handles);
    return this;
  }

  /** The lease's fields as the API returns them. */
  toJSON(): Lease {
    const { devices: _devices, ...fields } = this as unknown as Lease;
    return { ...fields, devices: this.devices.map((device) => pickLeaseDevice(device)) };
  }

  /** Fetches the lease again and updates this handle. */
  async refresh(options?: RequestOptions): Promise<this> {
    return this.update(await this.#client.request('getLease', { path: { leaseId: this.id } }, options));
  }

  /** Extends a granted lease: it then expires `ttlSeconds` (default its own `ttlSeconds`) from now. */
  async renew(ttlSeconds?: number, options?: RequestOptions): Promise<this> {
    const lease = await this.#client.request(
      'renewLease',
      { path: { leaseId: this.id }, body: ttlSeconds === undefined ? {} : { ttlSeconds } },
      options,
    );
    return this.update(lease);
  }

  /** Releases the lease (cancels it while queued). Releasing an ended lease changes nothing. */
  async release(options?: RequestOptions): Promise<this> {
    return this.update(await this.#client.request('releaseLease', { path: { leaseId: this.id } }, options));
  }

  /**
   * Waits while the lease is queued, long-polling `getLease`. Resolves with this handle once granted; rejects
   * with `LeaseNotGrantedError` when it ended otherwise (`timed_out`, `cancelled`, …) or when `timeoutSeconds`
   * passed with the lease still queued.
   */
  async waitUntilGranted(options: WaitOptions = {}): Promise<this> {
    const { timeoutSeconds, signal } = options;
    const deadline = timeoutSeconds === undefined ? Infinity : Date.now() + timeoutSeconds * 1000;
    for (;;) {
      if (this.status === 'granted') return this;
      if (this.status !== 'queued') throw new LeaseNotGrantedError(this.toJSON());
      if (signal?.aborted) throw new APIUserAbortError({ cause: signal.reason });
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new LeaseNotGrantedError(
          this.toJSON(),
          `Lease ${this.id} is still queued (position ${this.queuePosition ?? '?'}) after ${timeoutSeconds} s.`,
        );
      }
      const waitSeconds = Math.max(1, Math.min(MAX_LONG_POLL_SECONDS, Math.ceil(remaining / 1000)));
      const lease = await this.#client.request(
        'getLease',
        { path: { leaseId: this.id }, query: { waitSeconds } },
        // The server holds the request up to waitSeconds: the attempt must be allowed longer than that.
        { timeout: Math.max(this.#client.timeout, (waitSeconds + 15) * 1000), ...(signal ? { signal } : {}) },
      );
      this.update(lease);
    }
  }

  /**
   * Renews the lease periodically (default every `ttlSeconds / 3`) until the returned function is called.
   * Timers are unref'd: they do not keep the process alive.
   *
   * @example
   * ```ts
   * const stop = lease.keepAlive({ onError: (error) => console.warn('renew failed', error) });
   * try { await runTests(lease.devices[0]!); } finally { await stop(); await lease.release(); }
   * ```
   */
  keepAlive(options: KeepAliveOptions = {}): StopKeepAlive {
    const intervalMs = options.intervalMs ?? Math.max(1000, Math.floor((this.ttlSeconds * 1000) / 3));
    let stopped = false;
    let failure: { error: unknown } | undefined;
    let inFlight: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const schedule = (): void => {
      if (stopped) return;
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    };
    const tick = (): void => {
      inFlight = this.renew(options.ttlSeconds).then(
        () => schedule(),
        (error: unknown) => {
          const fatal = isLeaseGone(error);
          if (options.onError) options.onError(error);
          else failure ??= { error };
          if (fatal) {
            failure ??= { error };
            stopped = true;
          } else schedule();
        },
      );
    };
    schedule();
    return async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight;
      if (failure) throw failure.error;
    };
  }
}

/** @internal Whether a renewal failed because the lease is no longer active. */
export function isLeaseGone(error: unknown): boolean {
  const status = (error as { status?: unknown } | null)?.status;
  const code = (error as { code?: unknown } | null)?.code;
  return status === 404 || code === 'lease_not_active' || code === 'lease_not_found';
}

function pickLeaseDevice(device: LeaseDeviceHandle): LeaseDevice {
  return { id: device.id, serial: device.serial, model: device.model, sdk: device.sdk, kind: device.kind, reset: device.reset };
}
