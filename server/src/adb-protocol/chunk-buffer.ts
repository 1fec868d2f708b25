/** Bytes that arrive in chunks of any size, taken out in pieces of a chosen size, copied at most once. */
export class ChunkBuffer {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** Removes and returns the first `count` bytes; the caller checks `length` first. */
  take(count: number): Buffer {
    if (count > this.#length) throw new RangeError(`only ${this.#length} of ${count} bytes are buffered`);
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= count) {
      this.#shift(first, count);
      return first.subarray(0, count);
    }
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.#chunks[0] as Buffer;
      const used = Math.min(chunk.length, count - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      this.#shift(chunk, used);
    }
    return out;
  }

  /** Removes and returns up to `count` bytes as the chunks they arrived in, splitting only the last one. */
  takeChunks(count: number): Buffer[] {
    const out: Buffer[] = [];
    for (let left = Math.min(count, this.#length); left > 0; ) {
      const chunk = this.#chunks[0] as Buffer;
      const used = Math.min(chunk.length, left);
      out.push(used === chunk.length ? chunk : chunk.subarray(0, used));
      this.#shift(chunk, used);
      left -= used;
    }
    return out;
  }

  #shift(chunk: Buffer, used: number): void {
    if (used === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(used);
    this.#length -= used;
  }
}

/** A byte stream read by one consumer: `read(n)` waits until n bytes are there, or resolves undefined at the end. */
export class ByteQueue {
  readonly #buffer = new ChunkBuffer();
  #ended = false;
  #wake: (() => void) | undefined;

  push(chunk: Buffer): void {
    this.#buffer.push(chunk);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  async read(count: number): Promise<Buffer | undefined> {
    while (this.#buffer.length < count) {
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    return this.#buffer.take(count);
  }

  /** Everything buffered, waiting for at least one byte; undefined at the end. */
  async readSome(): Promise<Buffer | undefined> {
    while (this.#buffer.length === 0) {
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    return this.#buffer.take(this.#buffer.length);
  }

  /** Up to `count` bytes as the chunks they arrived in, waiting for at least one byte; undefined at the end. */
  async readChunks(count: number): Promise<Buffer[] | undefined> {
    while (this.#buffer.length === 0) {
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    return this.#buffer.takeChunks(count);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
