import { ByteQueue } from '../../adb-protocol/index.js';
import { FileSystemError } from '../file-system.js';
import type { CommandHandler, CommandInput, CommandIo, Userland } from './command.js';
import { parseOptions, reportFileError } from './toybox.js';

/** Lines of an input as they arrive, each with whether a line break ended it (the last one may lack it). */
export async function* inputLines(input: CommandInput): AsyncGenerator<{ text: string; ended: boolean }> {
  let pending: Buffer = Buffer.alloc(0);
  for (let data = await input.readSome(); data !== undefined; data = await input.readSome()) {
    pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
    let start = 0;
    for (let newline = pending.indexOf(0x0a); newline !== -1; newline = pending.indexOf(0x0a, start)) {
      yield { text: pending.toString('utf8', start, newline), ended: true };
      start = newline + 1;
    }
    pending = pending.subarray(start);
  }
  if (pending.length > 0) yield { text: pending.toString('utf8'), ended: false };
}

/** The input of one operand: standard input for `-`, else the file; undefined, once reported, if it cannot be read. */
async function open(command: string, operand: string, io: CommandIo, userland: Userland, quiet = false): Promise<CommandInput | undefined> {
  if (operand === '-') return io.stdin;
  const input = new ByteQueue();
  try {
    input.push(userland.files.read(operand));
  } catch (error) {
    if (!quiet) await reportFileError(command, operand, error, io);
    else if (!(error instanceof FileSystemError)) throw error;
    return undefined;
  }
  input.end();
  return input;
}

const POSIX_CLASSES: Record<string, string> = {
  alpha: 'a-zA-Z',
  digit: '0-9',
  alnum: 'a-zA-Z0-9',
  upper: 'A-Z',
  lower: 'a-z',
  space: '\\s',
  blank: ' \\t',
  xdigit: '0-9A-Fa-f',
  punct: '!-\\/:-@\\[-`{-~',
};

/** A POSIX basic (`\(`, `\{`, `\|` special) or extended regular expression as a JavaScript one's source. */
function regexSource(pattern: string, extended: boolean): string {
  let out = '';
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index] as string;
    if (char === '[') {
      // A bracket expression is copied as is, with its POSIX classes spelled out.
      let end = index + 1;
      if (pattern[end] === '^') end++;
      if (pattern[end] === ']') end++;
      while (end < pattern.length && pattern[end] !== ']') end = pattern.startsWith('[:', end) ? pattern.indexOf(':]', end) + 2 : end + 1;
      const body = pattern.slice(index + 1, end).replace(/\[:([a-z]+):\]/g, (_, name: string) => POSIX_CLASSES[name] ?? '');
      out += `[${body.replace(/\\/g, '\\\\')}]`;
      index = end;
    } else if (char === '\\' && index + 1 < pattern.length) {
      const next = pattern[++index] as string;
      if (!extended && '(){}|+?'.includes(next)) out += next;
      else out += /[A-Za-z0-9]/.test(next) && !'wWsSbB'.includes(next) ? next : `\\${next}`;
    } else if (!extended && '(){}|+?'.includes(char)) {
      out += `\\${char}`;
    } else {
      out += char === '/' ? '\\/' : char;
    }
  }
  return out;
}

/** `grep [-EFHchilnoqsvwx] [-m MAX] [-e PATTERN]… [PATTERN] [FILE…]`, reading standard input line by line. */
const grep: CommandHandler = async (args, io, userland) => {
  const options = await parseOptions('grep', args, { flags: 'EFHchilnoqsvwx', valued: 'em' }, io);
  if (options === undefined) return 2;
  const patterns = options.values.get('e') ?? [];
  if (patterns.length === 0) {
    const pattern = options.operands.shift();
    if (pattern === undefined) {
      await io.stderr('grep: Need 1 argument\n');
      return 2;
    }
    patterns.push(pattern);
  }
  const has = (flag: string) => options.flags.has(flag);
  const max = Number(options.values.get('m')?.at(-1) ?? Number.POSITIVE_INFINITY);
  const sources = patterns.flatMap((pattern) => pattern.split('\n')).map((pattern) => {
    const body = has('F') ? pattern.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') : regexSource(pattern, has('E'));
    return has('x') ? `^(?:${body})$` : has('w') ? `(?<![A-Za-z0-9_])(?:${body})(?![A-Za-z0-9_])` : body;
  });
  let matcher: RegExp;
  try {
    matcher = new RegExp(sources.map((body) => `(?:${body})`).join('|'), has('i') ? 'gi' : 'g');
  } catch {
    await io.stderr(`grep: bad regex '${patterns.join('\n')}'\n`);
    return 2;
  }
  const operands = options.operands.length > 0 ? options.operands : ['-'];
  const named = has('H') || (operands.length > 1 && !has('h'));
  let matched = false;
  let failed = false;
  for (const operand of operands) {
    const name = operand === '-' ? '(standard input)' : operand;
    const input = await open('grep', operand, io, userland, has('s'));
    if (input === undefined) {
      failed = true;
      continue;
    }
    let count = 0;
    let number = 0;
    for await (const { text } of inputLines(input)) {
      number++;
      matcher.lastIndex = 0;
      const found = matcher.test(text) !== has('v');
      if (!found) continue;
      matched = true;
      count++;
      if (has('q')) return 0;
      if (has('l')) break;
      if (!has('c')) {
        const prefix = `${named ? `${name}:` : ''}${has('n') ? `${number}:` : ''}`;
        if (has('o') && !has('v')) {
          matcher.lastIndex = 0;
          const parts = [...text.matchAll(matcher)].map((match) => match[0]).filter((part) => part !== '');
          await io.stdout(parts.map((part) => `${prefix}${part}\n`).join(''));
        } else {
          await io.stdout(`${prefix}${text}\n`);
        }
      }
      if (count >= max) break;
    }
    if (has('l') && count > 0) await io.stdout(`${name}\n`);
    else if (has('c')) await io.stdout(`${named ? `${name}:` : ''}${count}\n`);
  }
  if (failed && !(has('q') && matched)) return 2;
  return matched ? 0 : 1;
};

/** `head [-n LINES | -LINES] [-c BYTES] [-qv] [FILE…]`: stops reading once it has printed enough. */
const head: CommandHandler = async (args, io, userland) => {
  const numeric = args.map((arg) => (/^-\d+$/.test(arg) ? `-n${arg.slice(1)}` : arg));
  const options = await parseOptions('head', numeric, { flags: 'qv', valued: 'nc' }, io);
  if (options === undefined) return 1;
  const limit = (letter: string, fallback: number): number | undefined => {
    const value = options.values.get(letter)?.at(-1);
    if (value === undefined) return fallback;
    return /^\d+$/.test(value) ? Number(value) : undefined;
  };
  const lines = limit('n', 10);
  const bytes = limit('c', Number.POSITIVE_INFINITY);
  if (lines === undefined || bytes === undefined) {
    await io.stderr(`head: not integer: ${options.values.get(lines === undefined ? 'n' : 'c')?.at(-1)}\n`);
    return 1;
  }
  const byBytes = options.values.has('c');
  const operands = options.operands.length > 0 ? options.operands : ['-'];
  const headings = options.flags.has('v') || (operands.length > 1 && !options.flags.has('q'));
  let status = 0;
  for (const [index, operand] of operands.entries()) {
    const input = await open('head', operand, io, userland);
    if (input === undefined) {
      status = 1;
      continue;
    }
    if (headings) await io.stdout(`${index > 0 ? '\n' : ''}==> ${operand === '-' ? 'standard input' : operand} <==\n`);
    if (byBytes) {
      let left = bytes;
      for (let data = left > 0 ? await input.readSome() : undefined; data !== undefined; data = await input.readSome()) {
        await io.stdout(data.subarray(0, left));
        left -= Math.min(left, data.length);
        if (left === 0) break;
      }
      continue;
    }
    let left = lines;
    if (left === 0) continue;
    for await (const { text, ended } of inputLines(input)) {
      await io.stdout(ended ? `${text}\n` : text);
      if (--left === 0) break;
    }
  }
  return status;
};

/** `wc [-lwc] [FILE…]`: lines, words and bytes, space-separated as toybox prints them, with a total for several. */
const wc: CommandHandler = async (args, io, userland) => {
  const options = await parseOptions('wc', args, { flags: 'lwcm' }, io);
  if (options === undefined) return 1;
  const shown = ['l', 'w', 'c'].map((letter, index) =>
    options.flags.size === 0 || options.flags.has(letter) || (index === 2 && options.flags.has('m')),
  );
  const totals = [0, 0, 0];
  const report = async (counts: number[], name: string | undefined): Promise<void> => {
    const fields = counts.filter((_, index) => shown[index]).map(String);
    await io.stdout(`${[...fields, ...(name === undefined ? [] : [name])].join(' ')}\n`);
  };
  const operands = options.operands.length > 0 ? options.operands : ['-'];
  let status = 0;
  for (const operand of operands) {
    const input = await open('wc', operand, io, userland);
    if (input === undefined) {
      status = 1;
      continue;
    }
    const counts = [0, 0, 0];
    let inWord = false;
    for (let data = await input.readSome(); data !== undefined; data = await input.readSome()) {
      counts[2]! += data.length;
      for (const byte of data) {
        if (byte === 0x0a) counts[0]! += 1;
        const space = byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
        if (!space && !inWord) counts[1]! += 1;
        inWord = !space;
      }
    }
    counts.forEach((count, index) => (totals[index]! += count));
    await report(counts, options.operands.length > 0 ? operand : undefined);
  }
  if (operands.length > 1) await report(totals, 'total');
  return status;
};

/** Text filters as toybox has them: `grep`, `head`, `wc`. */
export const TEXT_COMMANDS: Record<string, CommandHandler> = { grep, head, wc };
