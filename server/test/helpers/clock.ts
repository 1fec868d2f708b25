/** A clock that moves only when told to, for tests of anything time-dependent. */
export class ManualClock {
  #ms: number;

  constructor(start: string | Date = '2026-11-20T09:00:00.000Z') {
    this.#ms = new Date(start).getTime();
  }

  readonly now = (): Date => new Date(this.#ms);

  advance(seconds: number): void {
    this.#ms += seconds * 1000;
  }
}
