export class ShellSyntaxError extends Error {
  override readonly name = 'ShellSyntaxError';
}

/** Characters a backslash escapes inside double quotes; before any other character it stays. */
const DOUBLE_QUOTE_ESCAPES = new Set(['\\', '"', '$', '`', '\n']);
/** Unquoted characters that would make `sh` do more than run one command; refused rather than taken literally. */
const UNSUPPORTED_OPERATORS = new Set([';', '|', '&', '>', '(', ')', '`', '$']);
/** Expansions that double quotes still perform. */
const UNSUPPORTED_IN_DOUBLE_QUOTES = new Set(['`', '$']);

function unsupported(char: string): ShellSyntaxError {
  return new ShellSyntaxError(`'${char}' is not supported by the virtual device`);
}

/**
 * Splits a command line into words the way `sh` does for the commands the adb client sends: single quotes, double
 * quotes with backslash escapes, backslashes outside quotes, and `</dev/null` (dropped: stdin is empty anyway; other
 * input redirections are refused). Pipes, lists, output redirections and expansions are refused too: the virtual
 * device runs exactly one command.
 */
export function splitShellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let redirecting = false;
  let index = 0;
  const take = (): string => line[index++] as string;
  const endWord = (): void => {
    if (!inWord) return;
    if (!redirecting) words.push(word);
    else if (word !== '/dev/null') throw new ShellSyntaxError(`redirection from ${word} is not supported`);
    else redirecting = false;
    word = '';
    inWord = false;
  };

  while (index < line.length) {
    const char = take();
    if (char === ' ' || char === '\t' || char === '\n') {
      endWord();
    } else if (char === '<') {
      endWord();
      redirecting = true;
    } else if (UNSUPPORTED_OPERATORS.has(char)) {
      throw unsupported(char);
    } else if (char === "'") {
      const end = line.indexOf("'", index);
      if (end === -1) throw new ShellSyntaxError('no closing quote');
      word += line.slice(index, end);
      index = end + 1;
      inWord = true;
    } else if (char === '"') {
      inWord = true;
      for (;;) {
        if (index >= line.length) throw new ShellSyntaxError('no closing quote');
        const next = take();
        if (next === '"') break;
        if (UNSUPPORTED_IN_DOUBLE_QUOTES.has(next)) throw unsupported(next);
        if (next === '\\' && index < line.length && DOUBLE_QUOTE_ESCAPES.has(line[index] as string)) {
          const escaped = take();
          if (escaped !== '\n') word += escaped;
        } else {
          word += next;
        }
      }
    } else if (char === '\\') {
      if (index < line.length) {
        const escaped = take();
        if (escaped !== '\n') {
          word += escaped;
          inWord = true;
        }
      }
    } else {
      word += char;
      inWord = true;
    }
  }
  endWord();
  if (redirecting) throw new ShellSyntaxError('redirection without a file');
  return words;
}
