/**
 * An incremental parser of `text/event-stream` (https://html.spec.whatwg.org/multipage/server-sent-events.html,
 * "Parsing an event stream"): feed it the body as it arrives, in chunks cut anywhere (inside a line, a CRLF or a
 * UTF-8 sequence), and it hands back each event once its blank line has arrived.
 */

/** One dispatched event, as `EventSource` would deliver it. */
export interface ServerSentEvent {
  /** The `event:` field, or `message` when the block had none. */
  type: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The last event id when the event was dispatched: the latest `id:` field of this block or an earlier one. */
  lastEventId: string;
}

const BOM = '\uFEFF';
const LINE_END = /[\r\n]/g;

export class ServerSentEventParser {
  /** The last event id the stream set (kept across events, as `EventSource` does); `''` until one is set. */
  lastEventId: string;
  /** The reconnection time in ms the stream last asked for with `retry:`, or `undefined` while it has not. */
  retry: number | undefined;

  readonly #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  /** The start of a line whose end has not arrived yet. */
  #pending = '';
  /** Whether a leading BOM may still come (nothing but an empty chunk has been read). */
  #atStart = true;
  /** The previous chunk ended with CR: a LF starting the next one belongs to that line end. */
  #afterCR = false;
  #data = '';
  #hasData = false;
  #type = '';
  #idBuffer: string;

  constructor(options: { lastEventId?: string } = {}) {
    this.lastEventId = options.lastEventId ?? '';
    this.#idBuffer = this.lastEventId;
  }

  /** Reads the next piece of the stream (bytes, or text already decoded) and returns the events it completed. */
  feed(chunk: Uint8Array | string): ServerSentEvent[] {
    return this.#parse(typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true }));
  }

  /**
   * Ends the stream: returns what the last bytes completed, and forgets the unfinished event, which the spec
   * says is never dispatched. The parser can then read a new stream, keeping `lastEventId` and `retry`.
   */
  end(): ServerSentEvent[] {
    const events = this.#parse(this.#decoder.decode());
    this.#pending = '';
    this.#atStart = true;
    this.#afterCR = false;
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    this.#idBuffer = this.lastEventId;
    return events;
  }

  #parse(text: string): ServerSentEvent[] {
    if (text === '') return [];
    if (this.#atStart) {
      this.#atStart = false;
      if (text.startsWith(BOM)) text = text.slice(1);
    }
    if (this.#afterCR) {
      this.#afterCR = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    const buffer = this.#pending + text;
    const events: ServerSentEvent[] = [];
    let lineStart = 0;
    // The pending part holds no line end: the search starts where the new text does.
    LINE_END.lastIndex = this.#pending.length;
    for (let match = LINE_END.exec(buffer); match !== null; match = LINE_END.exec(buffer)) {
      const end = match.index;
      let next = end + 1;
      if (buffer[end] === '\r') {
        if (next === buffer.length) this.#afterCR = true;
        else if (buffer[next] === '\n') next += 1;
      }
      const event = this.#line(buffer.slice(lineStart, end));
      if (event) events.push(event);
      lineStart = next;
      LINE_END.lastIndex = next;
    }
    this.#pending = buffer.slice(lineStart);
    return events;
  }

  #line(line: string): ServerSentEvent | undefined {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#type = value;
        break;
      case 'data':
        this.#data = this.#hasData ? `${this.#data}\n${value}` : value;
        this.#hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.#idBuffer = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number.parseInt(value, 10);
        break;
    }
    return undefined;
  }

  #dispatch(): ServerSentEvent | undefined {
    this.lastEventId = this.#idBuffer;
    const event = this.#hasData ? { type: this.#type || 'message', data: this.#data, lastEventId: this.lastEventId } : undefined;
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    return event;
  }
}
