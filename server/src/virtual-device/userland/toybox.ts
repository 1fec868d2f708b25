import { FileSystemError } from '../file-system.js';
import type { CommandIo } from './command.js';

export interface Options {
  flags: Set<string>;
  /** Values of options that take one (`-e PATTERN`, `-n 5`, `-n5`), in order. */
  values: Map<string, string[]>;
  operands: string[];
}

/**
 * toybox-style options: single letters, combinable (`-in`), anywhere before `--`; letters in `valued` take the rest
 * of their argument or the next one; at least `operands` operands. Prints toybox's message and resolves undefined
 * on a bad option or too few operands.
 */
export async function parseOptions(
  command: string,
  args: string[],
  spec: { flags: string; valued?: string; operands?: number },
  io: CommandIo,
): Promise<Options | undefined> {
  const options: Options = { flags: new Set(), values: new Map(), operands: [] };
  const valued = spec.valued ?? '';
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    if (arg === '--') {
      options.operands.push(...args.slice(index + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      options.operands.push(arg);
      continue;
    }
    for (let at = 1; at < arg.length; at++) {
      const letter = arg[at] as string;
      if (valued.includes(letter)) {
        const value = at + 1 < arg.length ? arg.slice(at + 1) : args[++index];
        if (value === undefined) {
          await io.stderr(`${command}: Missing argument to -${letter}\n`);
          return undefined;
        }
        options.values.set(letter, [...(options.values.get(letter) ?? []), value]);
        break;
      }
      if (!spec.flags.includes(letter)) {
        await io.stderr(`${command}: Unknown option '${letter}'\n`);
        return undefined;
      }
      options.flags.add(letter);
    }
  }
  const needed = spec.operands ?? 0;
  if (options.operands.length < needed) {
    await io.stderr(`${command}: Need ${needed} argument${needed === 1 ? '' : 's'}\n`);
    return undefined;
  }
  return options;
}

/** toybox's one-line report of a file it could not use (`cat: /x: No such file or directory`); other errors are thrown. */
export async function reportFileError(command: string, path: string, error: unknown, io: CommandIo): Promise<number> {
  if (!(error instanceof FileSystemError)) throw error;
  await io.stderr(`${command}: ${path}: ${error.message}\n`);
  return 1;
}
