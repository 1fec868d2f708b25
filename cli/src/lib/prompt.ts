import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { CancelledError } from './errors.js';

/** Prompts read from a terminal and write to stderr, keeping stdout for data. */
export interface PromptIO {
  input: Readable & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  output: Writable & { isTTY?: boolean };
}

const terminal = (): PromptIO => ({ input: process.stdin, output: process.stderr });

/** Prompting needs a person at a terminal on both ends. */
export function canPrompt(io: PromptIO = terminal()): boolean {
  return Boolean(io.input.isTTY && io.output.isTTY);
}

/** Asks for one line of text. Ctrl-C or Ctrl-D cancel. */
export function promptText(question: string, io: PromptIO = terminal()): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: io.input, output: io.output, terminal: Boolean(io.input.isTTY) });
    let answered = false;
    rl.on('SIGINT', () => rl.close());
    rl.on('close', () => {
      if (!answered) {
        io.output.write('\n');
        reject(new CancelledError());
      }
    });
    rl.question(question, (answer) => {
      answered = true;
      rl.close();
      resolve(answer.trim());
    });
  });
}

/** Asks for a secret without echoing it. Ctrl-C or Ctrl-D cancel; backspace deletes. */
export function promptHidden(question: string, io: PromptIO = terminal()): Promise<string> {
  const { input, output } = io;
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error?: Error): void => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      output.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish();
        if (char === '\u0003' || (char === '\u0004' && value === '')) return finish(new CancelledError());
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else if (char >= ' ') value += char;
      }
    };
    output.write(question);
    input.setRawMode?.(true);
    input.resume();
    input.on('data', onData);
  });
}

/** Asks a yes/no question; anything but `y`/`yes` is no. */
export async function confirm(question: string, io: PromptIO = terminal()): Promise<boolean> {
  const answer = await promptText(`${question} [y/N] `, io);
  return /^y(es)?$/i.test(answer);
}
