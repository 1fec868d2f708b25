export class ShellSyntaxError extends Error {
  override readonly name = 'ShellSyntaxError';
}

function unsupported(char: string): ShellSyntaxError {
  return new ShellSyntaxError(`'${char}' is not supported by the virtual device`);
}

/** Literal text, or a parameter (`$NAME`, `${NAME}`, `$?`, `$$`, `$#`, `$0`…`$9`) expanded when the command runs. */
export type WordPart = { text: string; quoted: boolean } | { parameter: string; quoted: boolean };
/** One shell word before expansion: its parts in order. */
export type Word = WordPart[];

/** `[fd]<file`, `[fd]>file`, `[fd]>>file`, or `[fd]>&fd` (`target` is then the other descriptor's number). */
export interface Redirection {
  fd: number;
  op: '<' | '>' | '>>' | '>&';
  target: Word;
}

/** `NAME=value … word … [redirections]`, each part in the order written. */
export interface SimpleCommand {
  assignments: { name: string; value: Word }[];
  words: Word[];
  redirections: Redirection[];
}

/** How a pipeline of a list follows the one before it: always (`;`), after a success (`&&`), after a failure (`||`). */
export type ListOperator = ';' | '&&' | '||';

/** Commands joined by `|`, each one's standard output the next one's standard input. */
export interface ListedPipeline {
  after: ListOperator;
  commands: SimpleCommand[];
}

type Token =
  | { kind: 'word'; word: Word; assignment: string | undefined }
  | { kind: 'operator'; operator: ListOperator | '|' | 'newline' }
  | { kind: 'redirect'; fd: number; op: Redirection['op'] };

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SPECIAL_PARAMETERS = new Set(['?', '$', '#', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
/** Characters a backslash escapes inside double quotes; before any other character it stays. */
const DOUBLE_QUOTE_ESCAPES = new Set(['\\', '"', '$', '`', '\n']);

/**
 * Parses a command line as `sh -c` would for what the virtual device runs: lists of pipelines joined by `;`, `&&`,
 * `||` and line breaks, pipelines of simple commands joined by `|`, words with single quotes, double quotes,
 * backslashes and parameters (`$NAME`, `${NAME}`, `$?`), leading `NAME=value` assignments, redirections (`<`, `>`,
 * `>>`, `N>&M`) and `#` comments. Background jobs, subshells, command substitution and `$(…)` are refused with a
 * ShellSyntaxError; so are empty commands between operators, as in `sh`.
 */
export function parseCommandLine(line: string): ListedPipeline[] {
  const pipelines: ListedPipeline[] = [];
  let after: ListOperator = ';';
  let commands: SimpleCommand[] = [];
  let command: SimpleCommand | undefined;
  /** The operator that needs a command after it, until one comes. */
  let expecting: '&&' | '||' | '|' | undefined;
  const tokens = tokenize(line);
  for (let index = 0; index < tokens.length; index++) {
    const token = tokens[index] as Token;
    if (token.kind === 'word' || token.kind === 'redirect') {
      command ??= { assignments: [], words: [], redirections: [] };
      expecting = undefined;
      if (token.kind === 'redirect') {
        const target = tokens[++index];
        if (target?.kind !== 'word') throw new ShellSyntaxError('syntax error: redirection without a file');
        command.redirections.push({ fd: token.fd, op: token.op, target: target.word });
      } else if (token.assignment !== undefined && command.words.length === 0) {
        command.assignments.push({ name: token.assignment, value: assignedValue(token.word, token.assignment) });
      } else {
        command.words.push(token.word);
      }
      continue;
    }
    const { operator } = token;
    if (command === undefined) {
      // A line break may follow any operator (the list goes on below); nothing else may be empty.
      if (operator === 'newline') continue;
      throw new ShellSyntaxError(`syntax error: unexpected '${operator}'`);
    }
    commands.push(command);
    command = undefined;
    if (operator === '|') {
      expecting = '|';
      continue;
    }
    pipelines.push({ after, commands });
    commands = [];
    after = operator === '&&' || operator === '||' ? operator : ';';
    expecting = operator === '&&' || operator === '||' ? operator : undefined;
  }
  if (command !== undefined) {
    commands.push(command);
    pipelines.push({ after, commands });
  } else if (expecting !== undefined) {
    throw new ShellSyntaxError(`syntax error: unexpected end of line after '${expecting}'`);
  }
  return pipelines;
}

/** The value of `NAME=value`: the word without its `NAME=` prefix. */
function assignedValue(word: Word, name: string): Word {
  const [first, ...rest] = word;
  if (first === undefined || !('text' in first)) return rest;
  const text = first.text.slice(name.length + 1);
  return text === '' ? rest : [{ text, quoted: false }, ...rest];
}

function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let parts: Word = [];
  let inWord = false;
  let index = 0;
  const literal = (text: string, quoted: boolean): void => {
    const last = parts[parts.length - 1];
    if (last !== undefined && 'text' in last && last.quoted === quoted) last.text += text;
    else parts.push({ text, quoted });
    inWord = true;
  };
  const endWord = (): void => {
    if (!inWord) return;
    const first = parts[0];
    const equals = first !== undefined && 'text' in first && !first.quoted ? first.text.indexOf('=') : -1;
    const name = equals > 0 ? (first as { text: string }).text.slice(0, equals) : '';
    tokens.push({ kind: 'word', word: parts, assignment: NAME.test(name) ? name : undefined });
    parts = [];
    inWord = false;
  };
  /** A `$…` at `index` (just after the `$`); a `$` that starts nothing is literal. */
  const parameter = (quoted: boolean): void => {
    const next = line[index];
    if (next === '(') throw unsupported('$(');
    if (next === '{') {
      const end = line.indexOf('}', index);
      const name = end === -1 ? '' : line.slice(index + 1, end);
      if (!NAME.test(name) && !SPECIAL_PARAMETERS.has(name)) throw new ShellSyntaxError(`\${${name}}: bad substitution`);
      parts.push({ parameter: name, quoted });
      index = end + 1;
    } else if (next !== undefined && SPECIAL_PARAMETERS.has(next)) {
      parts.push({ parameter: next, quoted });
      index++;
    } else {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(line.slice(index))?.[0];
      if (name === undefined) {
        literal('$', quoted);
        return;
      }
      parts.push({ parameter: name, quoted });
      index += name.length;
    }
    inWord = true;
  };

  while (index < line.length) {
    const char = line[index++] as string;
    if (char === ' ' || char === '\t') {
      endWord();
    } else if (char === '\n') {
      endWord();
      tokens.push({ kind: 'operator', operator: 'newline' });
    } else if (char === '#' && !inWord) {
      while (index < line.length && line[index] !== '\n') index++;
    } else if (char === ';') {
      endWord();
      if (line[index] === ';') throw new ShellSyntaxError("syntax error: unexpected ';;'");
      tokens.push({ kind: 'operator', operator: ';' });
    } else if (char === '&' || char === '|') {
      endWord();
      if (line[index] === char) {
        index++;
        tokens.push({ kind: 'operator', operator: char === '&' ? '&&' : '||' });
      } else if (char === '|') {
        tokens.push({ kind: 'operator', operator: '|' });
      } else {
        throw unsupported('&');
      }
    } else if (char === '<' || char === '>') {
      // A word of one unquoted digit right before the operator is the descriptor (`2>`).
      const last = parts[0];
      let fd = char === '<' ? 0 : 1;
      if (inWord && parts.length === 1 && last !== undefined && 'text' in last && !last.quoted && /^\d$/.test(last.text)) {
        fd = Number(last.text);
        parts = [];
        inWord = false;
      } else {
        endWord();
      }
      let op: Redirection['op'] = char === '<' ? '<' : '>';
      if (char === '>' && line[index] === '>') {
        op = '>>';
        index++;
      } else if (char === '>' && line[index] === '&') {
        op = '>&';
        index++;
      } else if (char === '<' && (line[index] === '<' || line[index] === '&')) {
        throw unsupported(`<${line[index]}`);
      }
      tokens.push({ kind: 'redirect', fd, op });
    } else if (char === '(' || char === ')' || char === '`') {
      throw unsupported(char);
    } else if (char === "'") {
      const end = line.indexOf("'", index);
      if (end === -1) throw new ShellSyntaxError('no closing quote');
      literal(line.slice(index, end), true);
      index = end + 1;
    } else if (char === '"') {
      literal('', true);
      for (;;) {
        if (index >= line.length) throw new ShellSyntaxError('no closing quote');
        const next = line[index++] as string;
        if (next === '"') break;
        if (next === '`') throw unsupported('`');
        if (next === '$') {
          parameter(true);
        } else if (next === '\\' && index < line.length && DOUBLE_QUOTE_ESCAPES.has(line[index] as string)) {
          const escaped = line[index++] as string;
          if (escaped !== '\n') literal(escaped, true);
        } else {
          literal(next, true);
        }
      }
    } else if (char === '\\') {
      if (index < line.length) {
        const escaped = line[index++] as string;
        if (escaped !== '\n') literal(escaped, true);
      }
    } else if (char === '$') {
      parameter(false);
    } else {
      literal(char, false);
    }
  }
  endWord();
  return tokens;
}
