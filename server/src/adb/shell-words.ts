export class ShellSyntaxError extends Error {
  override readonly name = 'ShellSyntaxError';
}

/** Characters a backslash escapes inside double quotes; before any other character it stays. */
const DOUBLE_QUOTE_ESCAPES = new Set(['\\', '"', '$', '`', '\n']);
/** Unquoted characters `sh` would give a meaning the virtual device lacks; refused rather than taken literally. */
const UNSUPPORTED_OPERATORS = new Set([';', '|', '&', '>', '(', ')', '`', '$']);
/** Expansions that double quotes still perform. */
const UNSUPPORTED_IN_DOUBLE_QUOTES = new Set(['`', '$']);

function unsupported(char: string): ShellSyntaxError {
  return new ShellSyntaxError(`'${char}' is not supported by the virtual device`);
}

/** How a command of a list follows the one before it: always (`;`), after a success (`&&`), after a failure (`||`). */
export type ListOperator = ';' | '&&' | '||';

/** One simple command of a command list, with the operator that joins it to the previous one (`;` for the first). */
export interface ListedCommand {
  after: ListOperator;
  words: string[];
}

/**
 * Splits a command line into a list of simple commands joined by `;`, `&&` and `||` (as `sh` runs them: left to
 * right, `&&` only after a success, `||` only after a failure), each split into words as {@link splitShellWords}
 * does. An empty command between operators is a syntax error, as in `sh`; a trailing `;` is allowed.
 */
export function splitCommandList(line: string): ListedCommand[] {
  const commands: ListedCommand[] = [];
  let after: ListOperator = ';';
  for (const { text, operator } of splitAtOperators(line)) {
    const words = splitShellWords(text);
    if (words.length > 0) {
      commands.push({ after, words });
    } else if (operator !== undefined) {
      throw new ShellSyntaxError(`syntax error: unexpected '${operator}'`);
    } else if (commands.length > 0 && after !== ';') {
      throw new ShellSyntaxError(`syntax error: unexpected end of line after '${after}'`);
    }
    if (operator !== undefined) after = operator;
  }
  return commands;
}

/** The line cut at its unquoted `;`, `&&` and `||`, each piece with the operator that ends it. */
function splitAtOperators(line: string): { text: string; operator: ListOperator | undefined }[] {
  const pieces: { text: string; operator: ListOperator | undefined }[] = [];
  let start = 0;
  let quote: string | undefined;
  for (let index = 0; index < line.length; index++) {
    const char = line[index] as string;
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
      else if (char === '\\' && quote === '"') index++;
      continue;
    }
    if (char === "'" || char === '"') quote = char;
    else if (char === '\\') index++;
    else if (char === ';' || ((char === '&' || char === '|') && line[index + 1] === char)) {
      const operator = (char === ';' ? ';' : `${char}${char}`) as ListOperator;
      pieces.push({ text: line.slice(start, index), operator });
      if (operator !== ';') index++;
      start = index + 1;
    }
  }
  pieces.push({ text: line.slice(start), operator: undefined });
  return pieces;
}

/**
 * Splits one simple command into words the way `sh` does for the commands the adb client sends: single quotes,
 * double quotes with backslash escapes, backslashes outside quotes, and `</dev/null` (dropped: stdin is empty
 * anyway; other input redirections are refused). Pipes, background jobs, output redirections, subshells and
 * expansions are refused too.
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
