import { ByteQueue } from './chunk-buffer.js';
import { Command } from './protocol.js';

/** What a stream needs from its connection. */
export interface StreamLink {
  send(command: number, arg0: number, arg1: number, data?: Buffer): void;
  /** The largest payload the host accepts in one packet. */
  readonly maxPayload: number;
  /** Forgets a stream that is closed. */
  release(localId: number): void;
}

export class StreamClosedError extends Error {
  override readonly name = 'StreamClosedError';
}

/**
 * One ADB stream, device side. Writes are split to the host's maxdata and sent one WRTE at a time: the next waits
 * for the host's OKAY. What the host writes arrives in `input`.
 */
export class AdbStream {
  readonly input = new ByteQueue();
  readonly #abort = new AbortController();
  #queue: Promise<void> = Promise.resolve();
  #pendingAck: { resolve(): void; reject(error: Error): void } | undefined;
  #sink: ((data: Buffer) => Promise<void>) | undefined;
  #closed = false;

  constructor(
    private readonly link: StreamLink,
    readonly localId: number,
    readonly remoteId: number,
  ) {}

  /** Aborted when the stream closes, from either side. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** The largest payload of one WRTE. */
  get maxPayload(): number {
    return this.link.maxPayload;
  }

  /** Resolves once the host has acknowledged every packet; rejects with StreamClosedError if the stream closes. */
  write(data: Buffer): Promise<void> {
    const sent = this.#queue.then(() => this.#send(data));
    this.#queue = sent.catch(() => undefined);
    return sent;
  }

  /** Closes after the pending writes: CLSE to the host. */
  close(): Promise<void> {
    const closed = this.#queue.then(() => {
      if (this.#closed) return;
      this.link.send(Command.CLSE, this.localId, this.remoteId);
      this.#finish();
    });
    this.#queue = closed;
    return closed;
  }

  /**
   * Hands what the host writes to `sink` instead of `input`. The host's WRTE is acknowledged once `sink` resolves,
   * so a slow consumer slows the host down.
   */
  pipeInputTo(sink: (data: Buffer) => Promise<void>): void {
    this.#sink = sink;
  }

  /** A WRTE from the host. */
  received(data: Buffer): void {
    const sink = this.#sink;
    if (sink === undefined) {
      this.input.push(data);
      this.link.send(Command.OKAY, this.localId, this.remoteId);
      return;
    }
    sink(data).then(
      () => {
        if (!this.#closed) this.link.send(Command.OKAY, this.localId, this.remoteId);
      },
      () => void this.close(),
    );
  }

  /** The host's OKAY for our last WRTE. */
  acknowledged(): void {
    const pending = this.#pendingAck;
    this.#pendingAck = undefined;
    pending?.resolve();
  }

  /** The host closed the stream, or the connection is gone. */
  closedByHost(): void {
    if (this.#closed) return;
    this.#finish();
  }

  async #send(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length; offset += this.link.maxPayload) {
      if (this.#closed) throw new StreamClosedError('stream closed');
      const acknowledged = new Promise<void>((resolve, reject) => {
        this.#pendingAck = { resolve, reject };
      });
      this.link.send(Command.WRTE, this.localId, this.remoteId, data.subarray(offset, offset + this.link.maxPayload));
      await acknowledged;
    }
  }

  #finish(): void {
    this.#closed = true;
    this.link.release(this.localId);
    this.input.end();
    this.#abort.abort();
    const pending = this.#pendingAck;
    this.#pendingAck = undefined;
    pending?.reject(new StreamClosedError('stream closed'));
  }
}
