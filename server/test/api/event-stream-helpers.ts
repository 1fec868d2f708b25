import { get, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';

/** One Server-Sent Events frame: its fields, and its comment lines (without the leading colon). */
export interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
  comments: string[];
}

/** Parses one frame (the lines between blank lines) as the HTML Living Standard's event stream format says. */
function parseFrame(block: string): SseFrame {
  const frame: SseFrame = { comments: [] };
  const data: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line.startsWith(':')) {
      frame.comments.push(line.slice(1).trimStart());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') frame.id = value;
    else if (field === 'event') frame.event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) frame.retry = Number(value);
  }
  if (data.length > 0) frame.data = data.join('\n');
  return frame;
}

/** What a connection delivers, waited for as it arrives. */
class Arrivals {
  readonly #waiters = new Set<() => void>();

  /** Something arrived: the waiters look again. */
  protected wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves with what `probe` returns once it returns something (not undefined); fails after `timeoutMs`. */
  protected async until<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(() => {
          this.#waiters.delete(done);
          reject(new Error(`${what} within ${timeoutMs} ms`));
        }, deadline - Date.now());
        this.#waiters.add(done);
      });
    }
  }
}

/**
 * An open `text/event-stream` response read frame by frame, over a connection of its own (closing it is the client
 * going away).
 */
export class SseStream extends Arrivals {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly #request: ClientRequest;
  readonly #decoder = new TextDecoder();
  #buffer = '';
  #done = false;

  private constructor(request: ClientRequest, response: IncomingMessage) {
    super();
    this.status = response.statusCode ?? 0;
    this.headers = response.headers;
    this.#request = request;
    response.on('data', (chunk: Buffer) => {
      this.#buffer += this.#decoder.decode(chunk, { stream: true });
      this.wake();
    });
    response.once('close', () => {
      this.#done = true;
      this.wake();
    });
  }

  static open(url: string, token: string | undefined, headers: Record<string, string> = {}): Promise<SseStream> {
    return new Promise((resolve, reject) => {
      const authorization = token === undefined ? {} : { authorization: `Bearer ${token}` };
      const request = get(
        url,
        { agent: false, headers: { accept: 'text/event-stream', ...authorization, ...headers } },
        (response) => resolve(new SseStream(request, response)),
      );
      request.once('error', reject);
    });
  }

  /** The whole body, for a response that is not a stream (a problem). */
  async text(timeoutMs = 10_000): Promise<string> {
    await this.until(() => this.#done || undefined, timeoutMs, 'no end of the response');
    return this.#buffer;
  }

  /** The next frame, or `null` once the server ended the stream; fails after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseFrame | null> {
    return this.until(
      () => {
        const end = /\r\n\r\n|\n\n|\r\r/.exec(this.#buffer);
        if (end !== null) {
          const block = this.#buffer.slice(0, end.index);
          this.#buffer = this.#buffer.slice(end.index + end[0].length);
          return parseFrame(block);
        }
        return this.#done ? null : undefined;
      },
      timeoutMs,
      'no event stream frame',
    );
  }

  /** The next frame that carries an event (skipping `retry` and comments), or `null` at the end of the stream. */
  async nextEvent(timeoutMs = 10_000): Promise<SseFrame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - Date.now()));
      if (frame === null || frame.data !== undefined) return frame;
    }
  }

  /** Resolves once the server ended the stream (frames before that are dropped); fails after `timeoutMs`. */
  async ended(timeoutMs = 10_000): Promise<SseFrame[]> {
    const deadline = Date.now() + timeoutMs;
    const frames: SseFrame[] = [];
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - Date.now()));
      if (frame === null) return frames;
      frames.push(frame);
    }
  }

  /** Leaves, as a client going away does. */
  close(): void {
    this.#request.destroy();
  }
}

/** An open WebSocket's messages and its close, as they arrive. */
export class SocketMessages extends Arrivals {
  readonly #queue: string[] = [];
  closed: { code: number; reason: string } | undefined;
  pings = 0;

  /**
   * Opens a WebSocket with a bearer token, recording from the start (a message may arrive with the upgrade); fails
   * with the status when the upgrade is refused.
   */
  static open(url: string, token: string): Promise<SocketMessages> {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    const messages = new SocketMessages(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(messages));
      ws.once('unexpected-response', (_request, response) => {
        reject(new Error(`the upgrade was refused: ${response.statusCode}`));
        ws.terminate();
      });
      ws.once('error', reject);
    });
  }

  private constructor(readonly ws: WebSocket) {
    super();
    ws.on('message', (data) => {
      this.#queue.push(data.toString());
      this.wake();
    });
    ws.on('ping', () => {
      this.pings += 1;
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  /** The next message, parsed; fails if the socket closes first or after `timeoutMs`. */
  next(timeoutMs = 10_000): Promise<any> {
    return this.until(
      () => {
        const message = this.#queue.shift();
        if (message !== undefined) return JSON.parse(message) as unknown;
        if (this.closed !== undefined) throw new Error(`the socket closed (${this.closed.code} ${this.closed.reason})`);
        return undefined;
      },
      timeoutMs,
      'no message',
    );
  }

  /** The close code and reason, once the server closed the socket. */
  close(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    return this.until(() => this.closed, timeoutMs, 'no close');
  }

  /** Resolves once `count` pings arrived. */
  pinged(count: number, timeoutMs = 10_000): Promise<number> {
    return this.until(() => (this.pings >= count ? this.pings : undefined), timeoutMs, `no ${count} pings`);
  }
}
