import { describe, expect, it } from 'vitest';
import { ShellSyntaxError, splitCommandList, splitShellWords } from '../../src/adb/shell-words.js';

describe('splitShellWords', () => {
  it.each([
    ['echo hi', ['echo', 'hi']],
    ['  echo \t  a   b  ', ['echo', 'a', 'b']],
    ['', []],
    ["pm 'install' '-r' '/data/local/tmp/a b.apk'", ['pm', 'install', '-r', '/data/local/tmp/a b.apk']],
    ["echo 'it'\\''s'", ['echo', "it's"]],
    ['echo "a  b" "x\\"y" "back\\\\slash" "keep\\n"', ['echo', 'a  b', 'x"y', 'back\\slash', 'keep\\n']],
    ['echo a\\ b \\\'q', ['echo', 'a b', "'q"]],
    ["echo '' \"\"", ['echo', '', '']],
    ['echo a"b"\'c\'d', ['echo', 'abcd']],
    ["rm '/data/local/tmp/x.apk' </dev/null", ['rm', '/data/local/tmp/x.apk']],
    ['cat < /dev/null', ['cat']],
    ["echo '$HOME; a|b'", ['echo', '$HOME; a|b']],
    ['echo \\$HOME "\\$x"', ['echo', '$HOME', '$x']],
  ])('%j', (line, words) => {
    expect(splitShellWords(line)).toEqual(words);
  });

  it.each([
    ["echo 'open", 'no closing quote'],
    ['echo "open', 'no closing quote'],
    ['cat < /etc/hosts', 'redirection from /etc/hosts is not supported'],
    ['cat <', 'redirection without a file'],
    ['echo a | cat', "'|' is not supported by the virtual device"],
    ['echo a > /sdcard/x', "'>' is not supported by the virtual device"],
    ['echo $HOME', "'$' is not supported by the virtual device"],
    ['echo "$(id)"', "'$' is not supported by the virtual device"],
  ])('refuses %j', (line, message) => {
    expect(() => splitShellWords(line)).toThrow(new ShellSyntaxError(message));
  });
});

describe('splitCommandList', () => {
  it.each([
    ['echo a', [{ after: ';', words: ['echo', 'a'] }]],
    ['', []],
    ['echo a; echo b;', [{ after: ';', words: ['echo', 'a'] }, { after: ';', words: ['echo', 'b'] }]],
    [
      'ls /nope && echo yes || echo no',
      [
        { after: ';', words: ['ls', '/nope'] },
        { after: '&&', words: ['echo', 'yes'] },
        { after: '||', words: ['echo', 'no'] },
      ],
    ],
    ["echo 'a;b' \"c&&d\" e\\;f", [{ after: ';', words: ['echo', 'a;b', 'c&&d', 'e;f'] }]],
    ['true&&false', [{ after: ';', words: ['true'] }, { after: '&&', words: ['false'] }]],
  ])('%j', (line, commands) => {
    expect(splitCommandList(line)).toEqual(commands);
  });

  it.each([
    ['; echo a', "syntax error: unexpected ';'"],
    ['echo a ;; echo b', "syntax error: unexpected ';'"],
    ['echo a &&', "syntax error: unexpected end of line after '&&'"],
    ['echo a | cat', "'|' is not supported by the virtual device"],
    ['echo a & echo b', "'&' is not supported by the virtual device"],
  ])('refuses %j', (line, message) => {
    expect(() => splitCommandList(line)).toThrow(new ShellSyntaxError(message));
  });
});
