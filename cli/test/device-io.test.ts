import { describe, expect, test } from 'vitest';
import {
  defaultScreenshotName,
  formatBytes,
  formatLogEntry,
  formatProgress,
  isDeviceId,
  parseInputArgs,
  parseLabelArgs,
  parsePriority,
  remoteBasename,
  shellCommand,
  shellExitCode,
} from '../src/lib/device-io.js';
import { UsageError } from '../src/lib/errors.js';

describe('formatLogEntry', () => {
  const entry = { time: '2026-11-25T02:30:04.007Z', pid: 1234, tid: 1240, priority: 'I' as const, tag: 'ActivityManager', message: 'Start proc' };

  test('is threadtime-like', () => {
    expect(formatLogEntry(entry, { utc: true })).toBe('11-25 02:30:04.007  1234  1240 I ActivityManager: Start proc\n');
  });

  test('pads small and large ids like logcat', () => {
    expect(formatLogEntry({ ...entry, pid: 1, tid: 123456 }, { utc: true })).toBe('11-25 02:30:04.007     1 123456 I ActivityManager: Start proc\n');
  });

  test('repeats the prefix on every line of a multi-line message', () => {
    expect(formatLogEntry({ ...entry, priority: 'E', tag: 'App', message: 'boom\n  at a\n' }, { utc: true })).toBe(
      '11-25 02:30:04.007  1234  1240 E App: boom\n11-25 02:30:04.007  1234  1240 E App:   at a\n',
    );
  });

  test('uses local time by default', () => {
    const line = formatLogEntry(entry);
    const d = new Date(entry.time);
    expect(line.slice(0, 5)).toBe(`${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`);
  });
});

describe('parsePriority', () => {
  test.each([
    ['E', 'E'],
    ['e', 'E'],
    ['warn', 'W'],
    ['Fatal', 'F'],
  ])('%s → %s', (input, priority) => expect(parsePriority(input)).toBe(priority));
  test('rejects others', () => expect(() => parsePriority('X')).toThrow(UsageError));
});

describe('parseLabelArgs', () => {
  test('sets and removes like kubectl', () => {
    expect(parseLabelArgs(['team=payments', 'rack-', 'empty=', 'url=a=b'])).toEqual({ team: 'payments', rack: null, empty: '', url: 'a=b' });
  });
  test.each([[[]], [['nokey']], [['=v']], [['-']], [['a=1', 'a-']], [['-bad=1']]])('rejects %j', (args) => {
    expect(() => parseLabelArgs(args)).toThrow(UsageError);
  });
});

describe('parseInputArgs', () => {
  test('tap', () => expect(parseInputArgs(['tap', '10', '20'])).toEqual({ type: 'tap', x: 10, y: 20 }));
  test('swipe with and without a duration', () => {
    expect(parseInputArgs(['swipe', '0', '1', '2', '3'])).toEqual({ type: 'swipe', x1: 0, y1: 1, x2: 2, y2: 3 });
    expect(parseInputArgs(['swipe', '0', '1', '2', '3'], { durationMs: 500 })).toEqual({ type: 'swipe', x1: 0, y1: 1, x2: 2, y2: 3, durationMs: 500 });
  });
  test('text joins its words', () => expect(parseInputArgs(['text', 'hello', 'world'])).toEqual({ type: 'text', text: 'hello world' }));
  test('key, upper-cased; keyevent too', () => {
    expect(parseInputArgs(['key', 'home'])).toEqual({ type: 'keyevent', key: 'HOME' });
    expect(parseInputArgs(['keyevent', '66'])).toEqual({ type: 'keyevent', key: '66' });
  });
  test.each([[[]], [['tap', '1']], [['tap', '1', '-2']], [['tap', '1.5', '2']], [['swipe', '1', '2', '3']], [['text']], [['key', 'a b']], [['key', 'A', 'B']], [['jump']]])(
    'rejects %j',
    (args) => expect(() => parseInputArgs(args)).toThrow(UsageError),
  );
  test('--duration only for swipe', () => expect(() => parseInputArgs(['tap', '1', '2'], { durationMs: 5 })).toThrow('only for swipe'));
});

describe('shellExitCode', () => {
  test.each([
    [{ exitCode: 0, timedOut: false }, 0],
    [{ exitCode: 1, timedOut: false }, 1],
    [{ exitCode: 127, timedOut: false }, 127],
    [{ exitCode: -1, timedOut: true }, 124],
    [{ exitCode: -1, timedOut: false }, 1],
    [{ exitCode: 256, timedOut: false }, 1],
    [{ exitCode: 258, timedOut: false }, 2],
  ])('%j → %i', (result, code) => expect(shellExitCode(result)).toBe(code));
});

describe('shellCommand', () => {
  test('words or a string', () => {
    expect(shellCommand(['echo', 'a b'], undefined)).toEqual({ argv: ['echo', 'a b'] });
    expect(shellCommand(undefined, 'ls | wc')).toEqual({ command: 'ls | wc' });
    expect(shellCommand([], undefined)).toBeUndefined();
  });
  test('not both, not empty', () => {
    expect(() => shellCommand(['ls'], 'ls')).toThrow(UsageError);
    expect(() => shellCommand(undefined, '')).toThrow(UsageError);
  });
});

test('defaultScreenshotName', () => {
  expect(defaultScreenshotName('dev_01JDX6A1B2C3D4E5F6G7H8J9K0', new Date('2026-11-25T02:30:04.007Z'))).toBe(
    'screenshot-dev_01JDX6A1B2C3D4E5F6G7H8J9K0-20261125T023004Z.png',
  );
});

test('remoteBasename', () => {
  expect(remoteBasename('/sdcard/a.txt')).toBe('a.txt');
  expect(remoteBasename('/sdcard/dir/')).toBe('dir');
  expect(() => remoteBasename('/')).toThrow(UsageError);
});

test('isDeviceId', () => {
  expect(isDeviceId('dev_01JDX6A1B2C3D4E5F6G7H8J9K0')).toBe(true);
  expect(isDeviceId('/sdcard/x')).toBe(false);
  expect(isDeviceId(undefined)).toBe(false);
});

test('formatBytes and formatProgress', () => {
  expect(formatBytes(512)).toBe('512 B');
  expect(formatBytes(1536)).toBe('1.5 KiB');
  expect(formatProgress(512, 1024)).toBe(' 50% 512 B / 1.0 KiB');
  expect(formatProgress(2048, null)).toBe('2.0 KiB');
});
