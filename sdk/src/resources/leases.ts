import type { RequestOptions } from '../client.js';
import { APIUserAbortError } from '../core/errors.js';
import type { NewLease } from '../generated/models.js';
import type { QueryOf } from '../generated/operations.js';
import { LeasesResource } from '../generated/resources.js';
import { isLeaseGone, LeaseHandle, type KeepAliveOptions } from './lease.js';

/** Extra seconds `create` waits past `waitSeconds` for the server to end a queued lease (`timed_out`) itself. */
const QUEUE_GRACE_SECONDS = 15;
/** How long releasing a lease on the way out may take. */
const RELEASE_TIMEOUT_MS = 10_000;

export interface UseLeaseOptions extends RequestOptions {
  /** Keep the lease renewed while `fn` runs (every `ttlSeconds / 3`). Default true. */
  renew?: boolean | KeepAliveOptions;
  /**
   * Process signals that, while `fn` runs, abort its signal and release the lease before the process handles
   * them as it would have (a signal with no other listener is raised again once released). Default
   * `['SIGINT', 'SIGTERM']`; `false` installs no handler.
   */
  exitSignals?: NodeJS.Signals[] | false;
}

/** What `use` passes to its function besides the lease. */
export interface UseLeaseContext {
  /** Aborted when the caller's signal aborts, a process exit signal arrives, or the lease could not be kept. */
  signal: AbortSignal;
}

/**
 * `cp.leases`: the generated lease operations, with `create` and `get` answering `LeaseHandle`s, and `use` to
 * hold devices for the length of a function.
 */
export class Leases extends LeasesResource {
  /**
   * Leases devices. When too few are free and `waitSeconds` > 0, the server queues the lease: `create` then
   * waits (long-polling, up to about `waitSeconds`) and resolves with the granted lease, or rejects with
   * `LeaseNotGrantedError` (status `timed_out`). Aborting `options.signal` while queued cancels the lease.
   *
   * @example
   * ```ts
   * const lease = await cp.leases.create({ selector: { sdkMin: 33 }, ttlSeconds: 600, waitSeconds: 300 });
   * const [device] = lease.devices;
   * ```
   */
  override async create(body: NewLease, options?: RequestOptions): Promise<LeaseHandle> {
    const lease = new LeaseHandle(this.client, await super.create(body as NewLease, options));
    const waitSeconds = body.waitSeconds ?? 0;
    if (lease.status !== 'queued' || waitSeconds <= 0) return lease;
    try {
      return await lease.waitUntilGranted({
        timeoutSeconds: waitSeconds + QUEUE_GRACE_SECONDS,
        ...(options?.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      // Do not leave a queued lease behind that the caller has no handle on.
      if (lease.status === 'queued') await lease.release({ timeout: RELEASE_TIMEOUT_MS }).catch(() => undefined);
      throw error;
    }
  }

  /** Gets a lease (with `waitSeconds`, waiting while it is queued) as a `LeaseHandle`. */
  override async get(leaseId: string, query?: QueryOf<'getLease'>, options?: RequestOptions): Promise<LeaseHandle> {
    return new LeaseHandle(this.client, await super.get(leaseId, query, options));
  }

  /**
   * Leases devices for the length of `fn`: creates the lease (waiting while queued, see `create`), renews it
   * while `fn` runs, and always releases it afterwards, also when `fn` throws, the caller's signal aborts or the
   * process gets SIGINT/SIGTERM. Resolves to what `fn` resolves to.
   *
   * @example
   * ```ts
   * const model = await cp.leases.use({ selector: { kind: 'virtual' }, waitSeconds: 120 }, async (lease) => {
   *   const [device] = lease.devices;
   *   return (await device!.shell('getprop ro.product.model')).stdout.trim();
   * });
   * ```
   */
  async use<T>(
    body: NewLease,
    fn: (lease: LeaseHandle, context: UseLeaseContext) => Promise<T> | T,
    options: UseLeaseOptions = {},
  ): Promise<T> {
    const { renew = true, exitSignals = ['SIGINT', 'SIGTERM'], ...requestOptions } = options;
    const controller = new AbortController();
    const abort = (reason: unknown): void => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const onCallerAbort = (): void => abort(requestOptions.signal?.reason);
    if (requestOptions.signal?.aborted) throw new APIUserAbortError({ cause: requestOptions.signal.reason });
    requestOptions.signal?.addEventListener('abort', onCallerAbort, { once: true });

    // Process signals: abort, release, then let the process handle the signal as it would have.
    let lease: LeaseHandle | undefined;
    let releasing: Promise<unknown> | undefined;
    const release = (): Promise<unknown> => {
      if (lease === undefined) return Promise.resolve();
      releasing ??= lease.release({ timeout: RELEASE_TIMEOUT_MS, maxRetries: 1 });
      return releasing;
    };
    const handlers = new Map<NodeJS.Signals, () => void>();
    for (const name of exitSignals || []) {
      const handler = (): void => {
        abort(new APIUserAbortError({ cause: name }));
        void release()
          .catch(() => undefined)
          .finally(() => {
            removeSignalHandlers();
            if (process.listenerCount(name) === 0) process.kill(process.pid, name);
          });
      };
      handlers.set(name, handler);
      process.on(name, handler);
    }
    const removeSignalHandlers = (): void => {
      for (const [name, handler] of handlers) process.off(name, handler);
      handlers.clear();
    };

    try {
      lease = await this.create(body, { ...requestOptions, signal: controller.signal });
      const stop = renew
        ? lease.keepAlive({
            ...(typeof renew === 'object' ? renew : {}),
            onError: (error) => {
              if (typeof renew === 'object') renew.onError?.(error);
              if (isLeaseGone(error)) abort(error);
            },
          })
        : undefined;
      let result: T;
      try {
        result = await fn(lease, { signal: controller.signal });
      } catch (error) {
        await stop?.().catch(() => undefined);
        throw error;
      }
      // A lease lost while fn ran (it expired or was force-released) makes its result suspect: report it.
      await stop?.();
      return result;
    } finally {
      requestOptions.signal?.removeEventListener('abort', onCallerAbort);
      try {
        await release();
      } finally {
        removeSignalHandlers();
      }
    }
  }
}
