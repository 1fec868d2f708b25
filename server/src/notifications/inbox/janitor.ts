import type { FastifyBaseLogger } from 'fastify';
import type { Cluster } from '../../cluster/cluster.js';

/** How often the leader looks for leases to warn of their expiry, by the server's clock. */
export const WARN_EVERY_MS = 15_000;
/** How often the leader purges read notifications past the retention, by the server's clock. */
export const PURGE_EVERY_MS = 3_600_000;
/** How often the clock is looked at: work falls due by the server's clock, which tests move by hand. */
const TICK_MS = 1000;

type Log = Pick<FastifyBaseLogger, 'error'>;

/**
 * The inbox's leader-only periodic work: warning of leases about to expire (`lease.expiring`, which the outbox turns
 * into notifications) and purging read notifications past the retention. It runs while this node leads, from the
 * moment it gains the leadership, each job again once its interval has passed on the server's clock.
 */
export class InboxJanitor {
  readonly #clock: () => Date;
  readonly #log: Log;
  readonly #cluster: Cluster;
  readonly #warningMinutes: number;
  readonly #leases: () => { warnExpiring(withinMinutes: number): Promise<number> };
  readonly #inbox: { purgeRead(now: Date): Promise<number> };
  readonly #running = new Set<Promise<unknown>>();
  #timer: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;

  constructor(deps: {
    clock: () => Date;
    log: Log;
    cluster: Cluster;
    /** Minutes of warning before a lease expires; 0 for none. */
    warningMinutes: number;
    leases: () => { warnExpiring(withinMinutes: number): Promise<number> };
    inbox: { purgeRead(now: Date): Promise<number> };
  }) {
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#cluster = deps.cluster;
    this.#warningMinutes = deps.warningMinutes;
    this.#leases = deps.leases;
    this.#inbox = deps.inbox;
  }

  /** Works at once if this node leads, and whenever it gains the leadership; stops when it loses it. */
  start(): void {
    this.#unsubscribe = this.#cluster.onLeadership((leader) => (leader ? this.#lead() : this.#stop()));
    if (this.#cluster.isLeader()) this.#lead();
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#stop();
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** Warns of the leases expiring within the warning; public so that tests with a manual clock can drive it. */
  async warnExpiring(): Promise<number> {
    if (this.#warningMinutes <= 0) return 0;
    return this.#leases().warnExpiring(this.#warningMinutes);
  }

  /** Purges read notifications past the retention; public so that tests with a manual clock can drive it. */
  purge(): Promise<number> {
    return this.#inbox.purgeRead(this.#clock());
  }

  #lead(): void {
    this.#stop();
    const jobs = [
      ...(this.#warningMinutes > 0
        ? [{ everyMs: WARN_EVERY_MS, work: () => this.warnExpiring(), failure: 'lease expiry warning failed' }]
        : []),
      { everyMs: PURGE_EVERY_MS, work: () => this.purge(), failure: 'inbox purge failed' },
    ].map((job) => ({ ...job, dueMs: -Infinity, busy: false }));
    const tick = () => {
      const now = this.#clock().getTime();
      for (const job of jobs) {
        if (job.busy || now < job.dueMs) continue;
        job.busy = true;
        job.dueMs = now + job.everyMs;
        const task: Promise<unknown> = job
          .work()
          .catch((error: unknown) => this.#log.error({ err: error }, job.failure))
          .finally(() => {
            job.busy = false;
            this.#running.delete(task);
          });
        this.#running.add(task);
      }
    };
    tick();
    this.#timer = setInterval(tick, TICK_MS);
    this.#timer.unref();
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
