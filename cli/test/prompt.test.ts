import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CancelledError } from '../src/lib/errors.js';
import { canPrompt, confirm, promptHidden, promptText, type PromptIO } from '../src/lib/prompt.js';

/** A pretend terminal: what the user types goes into `input`, what the prompt shows comes out of `shown()`. */
function terminal(tty = true): PromptIO & { input: PassThrough; shown: () => string; rawModes: boolean[] } {
  const input = Object.assign(new PassThrough(), { isTTY: tty, setRawMode: (mode: boolean) => rawModes.push(mode) });
  const output = Object.assign(new PassThrough(), { isTTY: tty });
  const rawModes: boolean[] = [];
  let text = '';
  output.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { input, output, rawModes, shown: () => text };
}

describe('promptHidden', () => {
  it('reads a secret without echoing it, honouring backspace', async () => {
    const io = terminal();
    const answer = promptHidden('Password: ', io);
    io.input.write('secrex');
    io.input.write('\u007ft\r');
    expect(await answer).toBe('secret');
    expect(io.shown()).toBe('Password: \n');
    expect(io.rawModes).toEqual([true, false]);
  });

  it('is cancelled by Ctrl-C or Ctrl-D', async () => {
    const first = terminal();
    const cancelled = promptHidden('Password: ', first);
    first.input.write('abc\u0003');
    await expect(cancelled).rejects.toBeInstanceOf(CancelledError);

    const second = terminal();
    const ended = promptHidden('Password: ', second);
    second.input.write('\u0004');
    await expect(ended).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('promptText and confirm', () => {
  it('reads one line', async () => {
    const io = terminal(false);
    const answer = promptText('Username: ', io);
    io.input.write('  alice \n');
    expect(await answer).toBe('alice');
    expect(io.shown()).toContain('Username: ');
  });

  it('is cancelled when the input ends first', async () => {
    const io = terminal(false);
    const answer = promptText('Username: ', io);
    io.input.end();
    await expect(answer).rejects.toBeInstanceOf(CancelledError);
  });

  it('takes only y or yes as yes', async () => {
    for (const [typed, expected] of [['y', true], ['YES', true], ['', false], ['no', false], ['yep', false]] as const) {
      const io = terminal(false);
      const answer = confirm('Delete?', io);
      io.input.write(`${typed}\n`);
      expect(await answer).toBe(expected);
      expect(io.shown()).toContain('Delete? [y/N] ');
    }
  });

  it('needs a terminal on both ends to prompt', () => {
    expect(canPrompt(terminal(true))).toBe(true);
    expect(canPrompt(terminal(false))).toBe(false);
  });
});
