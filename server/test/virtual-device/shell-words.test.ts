import { describe, expect, it } from 'vitest';
import { parseCommandLine, ShellSyntaxError, type ListedPipeline, type Word } from '../../src/virtual-device/shell-words.js';

/** The words of each command, with parameters as `${name}` and quoting dropped: enough to compare splits. */
function words(line: string): string[][] {
  return parseCommandLine(line).flatMap(({ commands }) => commands.map((command) => command.words.map(flatten)));
}

function flatten(word: Word): string {
  return word.map((part) => ('text' in part ? part.text : `\${${part.parameter}}`)).join('');
}

function shape(pipelines: ListedPipeline[]): unknown {
  return pipelines.map(({ after, commands }) => ({ after, commands: commands.map((command) => command.words.map(flatten)) }));
}

describe('parseCommandLine: words', () => {
  it.each([
    ['echo hi', [['echo', 'hi']]],
    ['  echo \t  a   b  ', [['echo', 'a', 'b']]],
    ['', []],
    ["pm 'install' '-r' '/data/local/tmp/a b.apk'", [['pm', 'install', '-r', '/data/local/tmp/a b.apk']]],
    ["echo 'it'\\''s'", [['echo', "it's"]]],
    ['echo "a  b" "x\\"y" "back\\\\slash" "keep\\n"', [['echo', 'a  b', 'x"y', 'back\\slash', 'keep\\n']]],
    ['echo a\\ b \\\'q', [['echo', 'a b', "'q"]]],
    ["echo '' \"\"", [['echo', '', '']]],
    ['echo a"b"\'c\'d', [['echo', 'abcd']]],
    ["echo '$HOME; a|b'", [['echo', '$HOME; a|b']]],
    ['echo \\$HOME "\\$x" $ "a$"', [['echo', '$HOME', '$x', '$', 'a$']]],
    ['echo $X ${Y}z "$?" $1 $#', [['echo', '${X}', '${Y}z', '${?}', '${1}', '${#}']]],
    ['echo a # a comment', [['echo', 'a']]],
    ['echo a#b', [['echo', 'a#b']]],
  ])('%j', (line, expected) => {
    expect(words(line)).toEqual(expected);
  });

  it('keeps quoting, so that only unquoted expansions are split', () => {
    const [command] = parseCommandLine('echo "$A" $B')[0]!.commands;
    expect(command!.words).toEqual([
      [{ text: 'echo', quoted: false }],
      [{ text: '', quoted: true }, { parameter: 'A', quoted: true }],
      [{ parameter: 'B', quoted: false }],
    ]);
  });

  it('takes leading NAME=value words as assignments', () => {
    const [only] = parseCommandLine('X=1 Y="a b" Z= cmd W=2')[0]!.commands;
    expect(only!.assignments.map(({ name, value }) => [name, flatten(value)])).toEqual([
      ['X', '1'],
      ['Y', 'a b'],
      ['Z', ''],
    ]);
    expect(only!.words.map(flatten)).toEqual(['cmd', 'W=2']);
    expect(parseCommandLine("'X=1' 1X=2")[0]!.commands[0]!.assignments).toEqual([]);
  });

  it('reads redirections with their descriptors', () => {
    const [command] = parseCommandLine('cmd <in >out 2>>err 2>&1 >&2 a>b')[0]!.commands;
    expect(command!.redirections.map(({ fd, op, target }) => [fd, op, flatten(target)])).toEqual([
      [0, '<', 'in'],
      [1, '>', 'out'],
      [2, '>>', 'err'],
      [2, '>&', '1'],
      [1, '>&', '2'],
      [1, '>', 'b'],
    ]);
    expect(command!.words.map(flatten)).toEqual(['cmd', 'a']);
  });
});

describe('parseCommandLine: lists and pipelines', () => {
  it.each([
    ['echo a', [{ after: ';', commands: [['echo', 'a']] }]],
    ['echo a; echo b;', [{ after: ';', commands: [['echo', 'a']] }, { after: ';', commands: [['echo', 'b']] }]],
    [
      'ls /nope && echo yes || echo no',
      [
        { after: ';', commands: [['ls', '/nope']] },
        { after: '&&', commands: [['echo', 'yes']] },
        { after: '||', commands: [['echo', 'no']] },
      ],
    ],
    ["echo 'a;b' \"c&&d\" e\\;f", [{ after: ';', commands: [['echo', 'a;b', 'c&&d', 'e;f']] }]],
    ['true&&false', [{ after: ';', commands: [['true']] }, { after: '&&', commands: [['false']] }]],
    ['ps -A | grep x | wc -l', [{ after: ';', commands: [['ps', '-A'], ['grep', 'x'], ['wc', '-l']] }]],
    ['echo a |\n cat\necho b', [{ after: ';', commands: [['echo', 'a'], ['cat']] }, { after: ';', commands: [['echo', 'b']] }]],
    ['true &&\n\n echo c', [{ after: ';', commands: [['true']] }, { after: '&&', commands: [['echo', 'c']] }]],
  ])('%j', (line, expected) => {
    expect(shape(parseCommandLine(line))).toEqual(expected);
  });

  it.each([
    ['; echo a', "syntax error: unexpected ';'"],
    ['echo a ;; echo b', "syntax error: unexpected ';;'"],
    ['echo a && && echo b', "syntax error: unexpected '&&'"],
    ['| cat', "syntax error: unexpected '|'"],
    ['echo a &&', "syntax error: unexpected end of line after '&&'"],
    ['echo a |', "syntax error: unexpected end of line after '|'"],
    ['echo a >', 'syntax error: redirection without a file'],
    ['echo a > | cat', 'syntax error: redirection without a file'],
    ["echo 'open", 'no closing quote'],
    ['echo "open', 'no closing quote'],
    ['echo a & echo b', "'&' is not supported by the virtual device"],
    ['(echo a)', "'(' is not supported by the virtual device"],
    ['echo `id`', "'`' is not supported by the virtual device"],
    ['echo "$(id)"', "'$(' is not supported by the virtual device"],
    ['cat <<EOF', "'<<' is not supported by the virtual device"],
    ['echo ${a-b}', '${a-b}: bad substitution'],
  ])('refuses %j', (line, message) => {
    expect(() => parseCommandLine(line)).toThrow(new ShellSyntaxError(message));
  });
});
