import { StringDecoder } from 'node:string_decoder';
import { Sh } from './sh.js';
import type { CommandInput, CommandIo, Userland } from './userland/command.js';

type TerminalEvent = { kind: 'line'; text: string } | { kind: 'interrupt' } | { kind: 'eof' };

const CTRL_C = '\x03';
const CTRL_D = '\x04';
const CTRL_U = '\x15';
const ERASE = new Set(['\x7f', '\b']);

/**
 * The device side of a pty in canonical mode, as the shell sees it: what the host types is echoed, Backspace erases,
 * Ctrl-U kills the line, Enter hands the line over, Ctrl-C interrupts (the foreground command, or the line being
 * typed) and Ctrl-D on an empty line is the end of input. Escape sequences (arrow keys) are dropped; anything
 * fancier is left to the client.
 */
export class Terminal {
  /** Aborted by Ctrl-C while a command runs. */
  foreground: AbortController | undefined;
  readonly #events: TerminalEvent[] = [];
  #wake: (() => void) | undefined;
  #line = '';
  #ended = false;
  #closed = false;

  constructor(
    raw: CommandInput,
    private readonly echo: (text: string) => Promise<void>,
  ) {
    // An echo that cannot be sent (the host went away) ends the input, as a hang-up does.
    this.#pump(raw).catch(() => this.#end());
  }

  /** The next line, interrupt or end of input (an interrupt too once `signal` aborts); after the end, the end. */
  async next(signal?: AbortSignal): Promise<TerminalEvent> {
    while (this.#events.length === 0) {
      if (this.#ended) return { kind: 'eof' };
      if (signal?.aborted) return { kind: 'interrupt' };
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
    return this.#events.shift() as TerminalEvent;
  }

  /**
   * Standard input of a foreground command: the lines typed, until Ctrl-D or until `signal` aborts (Ctrl-C); what it
   * leaves unread stays typed ahead for the shell.
   */
  input(signal: AbortSignal): CommandInput {
    let done = false;
    const readSome = async (): Promise<Buffer | undefined> => {
      if (done) return undefined;
      const event = await this.next(signal);
      if (event.kind === 'line') return Buffer.from(`${event.text}\n`, 'utf8');
      done = true;
      return undefined;
    };
    return {
      readSome,
      readChunks: async () => {
        const data = await readSome();
        return data === undefined ? undefined : [data];
      },
      read: async (count) => {
        let data = Buffer.alloc(0);
        while (data.length < count) {
          const more = await readSome();
          if (more === undefined) return undefined;
          data = Buffer.concat([data, more]);
        }
        return data;
      },
    };
  }

  async #pump(raw: CommandInput): Promise<void> {
    const decoder = new StringDecoder('utf8');
    let escape = false;
    let lastWasCr = false;
    for (let data = await raw.readSome(); data !== undefined && !this.#closed; data = await raw.readSome()) {
      let echoed = '';
      for (const char of decoder.write(data)) {
        if (escape) {
          // ESC [ parameters final-byte, or ESC and one character.
          if (char !== '[' && char !== 'O' && !/[0-9;]/.test(char)) escape = false;
          continue;
        }
        const crlf = lastWasCr && char === '\n';
        lastWasCr = char === '\r';
        if (crlf) continue;
        if (char === '\x1b') {
          escape = true;
        } else if (char === '\r' || char === '\n') {
          echoed += '\r\n';
          this.#push({ kind: 'line', text: this.#line });
          this.#line = '';
        } else if (char === CTRL_C) {
          echoed += '^C\r\n';
          this.#line = '';
          if (this.foreground === undefined) this.#push({ kind: 'interrupt' });
          else this.foreground.abort();
        } else if (char === CTRL_D) {
          if (this.#line === '') this.#push({ kind: 'eof' });
        } else if (ERASE.has(char)) {
          if (this.#line !== '') {
            this.#line = [...this.#line].slice(0, -1).join('');
            echoed += '\b \b';
          }
        } else if (char === CTRL_U) {
          echoed += '\b \b'.repeat([...this.#line].length);
          this.#line = '';
        } else if (char >= ' ' || char === '\t') {
          this.#line += char;
          echoed += char;
        }
      }
      if (echoed !== '') await this.echo(echoed);
    }
    this.#end();
  }

  #end(): void {
    this.#ended = true;
    this.#notify();
  }

  /** The shell is gone: what comes later is neither echoed nor read. */
  close(): void {
    this.#closed = true;
  }

  #push(event: TerminalEvent): void {
    this.#events.push(event);
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Output through a pty: line feeds become CR LF (ONLCR). */
export function terminalOutput(write: (data: Buffer) => Promise<void>): (data: Buffer | string) => Promise<void> {
  return (data) => write(Buffer.from(data.toString().replace(/\r?\n/g, '\r\n'), 'utf8'));
}

/**
 * An interactive shell on a pty: the prompt (`<ro.product.device>:/ $ `), then each line typed runs in one shell
 * (variables and `$?` carry over) with Ctrl-C interrupting it. Ends with the code `exit` gives, or on Ctrl-D or the
 * end of input with the last status.
 */
export async function runInteractiveShell(userland: Userland, raw: CommandInput, io: Omit<CommandIo, 'stdin'>): Promise<number> {
  const output = io.stdout;
  const terminal = new Terminal(raw, (text) => output(text));
  const prompt = `${userland.properties.get('ro.product.device') ?? 'localhost'}:/ $ `;
  const sh = new Sh(userland);
  try {
    await output(prompt);
    for (;;) {
      const event = await terminal.next();
      if (event.kind === 'eof' || io.signal.aborted) return sh.status;
      if (event.kind === 'line') {
        const foreground = new AbortController();
        const stop = () => foreground.abort();
        io.signal.addEventListener('abort', stop, { once: true });
        terminal.foreground = foreground;
        try {
          await sh.run(event.text, { stdin: terminal.input(foreground.signal), stdout: output, stderr: output, signal: foreground.signal });
        } finally {
          terminal.foreground = undefined;
          io.signal.removeEventListener('abort', stop);
        }
        if (sh.exited !== undefined) return sh.exited;
      }
      await output(prompt);
    }
  } finally {
    terminal.close();
  }
}
