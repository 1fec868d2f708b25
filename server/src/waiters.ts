import type { Cluster } from './cluster/cluster.js';

/** A long poll's wait: `done` resolves when the key is woken or the time is up; `cancel` stops waiting early. */
export interface Wait {
  done: Promise<void>;
  cancel(): void;
}

/**
 * Long polls waiting on keys (a lease id, an install job id): `wait` registers one with a time limit, `wake`
 * releases every wait on a key, `wakeAll` every wait (at shutdown). With a cluster, `wake` also releases the waits
 * on the key on the other nodes (the `name` tells one set of waiters from another), and a node that may have missed
 * messages releases all its waits: each long poll then answers with what the database says.
 */
export class Waiters {
  readonly #waiting = new Map<string, Set<() => void>>();
  readonly #cluster: { cluster: Cluster; name: string } | undefined;

  constructor(cluster?: { cluster: Cluster; name: string }) {
    this.#cluster = cluster;
    if (cluster === undefined) return;
    cluster.cluster.subscribe('wake', ({ waiters, key }) => {
      if (waiters === cluster.name) this.#wakeHere(key);
    });
    cluster.cluster.onResync(() => this.wakeAll());
  }

  wait(key: string, ms: number): Wait {
    let wake!: () => void;
    const done = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const timer = setTimeout(wake, ms);
    let waiting = this.#waiting.get(key);
    if (waiting === undefined) this.#waiting.set(key, (waiting = new Set()));
    waiting.add(wake);
    return {
      done,
      cancel: () => {
        clearTimeout(timer);
        waiting.delete(wake);
        if (waiting.size === 0 && this.#waiting.get(key) === waiting) this.#waiting.delete(key);
      },
    };
  }

  /** Releases the waits on `key` here and on every other node. Call it once the change is committed. */
  wake(key: string): void {
    this.#wakeHere(key);
    this.#cluster?.cluster.publish('wake', { waiters: this.#cluster.name, key });
  }

  wakeAll(): void {
    for (const waiting of this.#waiting.values()) for (const wake of [...waiting]) wake();
  }

  #wakeHere(key: string): void {
    for (const wake of [...(this.#waiting.get(key) ?? [])]) wake();
  }
}
