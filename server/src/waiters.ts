/** A long poll's wait: `done` resolves when the key is woken or the time is up; `cancel` stops waiting early. */
export interface Wait {
  done: Promise<void>;
  cancel(): void;
}

/**
 * Long polls waiting on keys (a lease id, an install job id): `wait` registers one with a time limit, `wake`
 * releases every wait on a key, `wakeAll` every wait (at shutdown).
 */
export class Waiters {
  readonly #waiting = new Map<string, Set<() => void>>();

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

  wake(key: string): void {
    for (const wake of [...(this.#waiting.get(key) ?? [])]) wake();
  }

  wakeAll(): void {
    for (const waiting of this.#waiting.values()) for (const wake of [...waiting]) wake();
  }
}
