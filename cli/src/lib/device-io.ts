/**
 * Pure helpers of the handwritten device commands (`devices shell|logcat|label|input|screenshot|…`): parsing their
 * arguments and formatting their output. No heavy imports: every command file loads this.
 */
import type { InputAction, LeaseDevice, LogEntry, ShellResult } from '@cloudphone/sdk';
import { UsageError } from './errors.js';

/** The exit code of `devices shell` when the device command ran out of `--timeout` (like timeout(1)). */
export const SHELL_TIMEOUT_EXIT = 124;

/**
 * The CLI's exit code for a finished device command: its own exit code (0..255), 124 when it timed out, and 1 when
 * the device reported none (killed, or a device without the shell protocol reporting -1).
 */
export function shellExitCode(result: Pick<ShellResult, 'exitCode' | 'timedOut'>): number {
  if (result.timedOut) return SHELL_TIMEOUT_EXIT;
  const code = result.exitCode;
  if (!Number.isInteger(code) || code < 0) return 1;
  return code > 255 ? code & 0xff || 1 : code;
}

const LOG_PRIORITIES = ['V', 'D', 'I', 'W', 'E', 'F'] as const;
export type LogPriority = (typeof LOG_PRIORITIES)[number];

/** `--priority` accepts V/D/I/W/E/F or their names (`error`, `warn`, …). */
export function parsePriority(value: string): LogPriority {
  const upper = value.trim().toUpperCase();
  const names: Record<string, LogPriority> = {
    VERBOSE: 'V',
    DEBUG: 'D',
    INFO: 'I',
    WARN: 'W',
    WARNING: 'W',
    ERROR: 'E',
    FATAL: 'F',
    ASSERT: 'F',
  };
  const priority = (LOG_PRIORITIES as readonly string[]).includes(upper) ? (upper as LogPriority) : names[upper];
  if (!priority) throw new UsageError(`Unknown log priority ${value}: use one of V, D, I, W, E, F`);
  return priority;
}

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

/**
 * One log entry like `adb logcat -v threadtime`: `MM-DD HH:MM:SS.mmm  PID  TID P TAG: message`, in local time
 * (or UTC with `utc`). A multi-line message gives one line per message line, each with the same prefix.
 */
export function formatLogEntry(entry: LogEntry, options: { utc?: boolean } = {}): string {
  const date = new Date(entry.time);
  let stamp: string;
  if (Number.isNaN(date.getTime())) stamp = entry.time;
  else if (options.utc) {
    stamp = `${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${pad(date.getUTCMilliseconds(), 3)}`;
  } else {
    stamp = `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  }
  const prefix = `${stamp} ${String(entry.pid).padStart(5)} ${String(entry.tid).padStart(5)} ${entry.priority} ${entry.tag}: `;
  const lines = entry.message.replace(/\n$/, '').split('\n');
  return lines.map((line) => `${prefix}${line}`.trimEnd()).join('\n') + '\n';
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,62}$/;

/**
 * `key=value` sets a label, `key-` removes it (like `kubectl label`). The result is the `labels` of updateDevice:
 * a removed label is `null`. The same key twice is a usage error.
 */
export function parseLabelArgs(args: readonly string[]): Record<string, string | null> {
  if (args.length === 0) throw new UsageError('Give at least one label: key=value to set, key- to remove');
  const labels: Record<string, string | null> = {};
  for (const arg of args) {
    let key: string;
    let value: string | null;
    const eq = arg.indexOf('=');
    if (eq !== -1) {
      key = arg.slice(0, eq);
      value = arg.slice(eq + 1);
    } else if (arg.endsWith('-') && arg.length > 1) {
      key = arg.slice(0, -1);
      value = null;
    } else {
      throw new UsageError(`Bad label ${JSON.stringify(arg)}: use key=value to set a label, key- to remove it`);
    }
    if (!LABEL_KEY.test(key)) {
      throw new UsageError(
        `Bad label key ${JSON.stringify(key)}: up to 63 letters, digits, '.', '_', '-' and '/', starting with a letter or digit`,
      );
    }
    if (Object.hasOwn(labels, key)) throw new UsageError(`The label ${key} is given twice`);
    labels[key] = value;
  }
  return labels;
}

function coordinate(name: string, value: string | undefined): number {
  if (value === undefined) throw new UsageError(`Missing <${name}>`);
  if (!/^\d+$/.test(value)) throw new UsageError(`<${name}> must be a whole number of pixels >= 0, not ${JSON.stringify(value)}`);
  return Number(value);
}

const INPUT_USAGE = 'Give an action: tap <x> <y> | swipe <x1> <y1> <x2> <y2> | text <text> | key <KEYCODE>';

/** `tap 10 20`, `swipe 0 0 100 100` (+ `--duration`), `text hello world`, `key HOME` → an InputAction. */
export function parseInputArgs(args: readonly string[], options: { durationMs?: number } = {}): InputAction {
  const [action, ...rest] = args;
  const expect = (count: number, usage: string): void => {
    if (rest.length !== count) throw new UsageError(`${action} takes ${usage}`);
  };
  if (options.durationMs !== undefined && action !== 'swipe') throw new UsageError('--duration is only for swipe');
  switch (action) {
    case 'tap':
      expect(2, '<x> <y>');
      return { type: 'tap', x: coordinate('x', rest[0]), y: coordinate('y', rest[1]) };
    case 'swipe': {
      expect(4, '<x1> <y1> <x2> <y2>');
      const [x1, y1, x2, y2] = ['x1', 'y1', 'x2', 'y2'].map((name, i) => coordinate(name, rest[i])) as [number, number, number, number];
      return { type: 'swipe', x1, y1, x2, y2, ...(options.durationMs === undefined ? {} : { durationMs: options.durationMs }) };
    }
    case 'text': {
      if (rest.length === 0) throw new UsageError('text takes the <text> to type');
      const text = rest.join(' ');
      if (text.length > 1000) throw new UsageError('The text is longer than 1000 characters');
      return { type: 'text', text };
    }
    case 'key':
    case 'keyevent': {
      expect(1, 'one <KEYCODE> (HOME, KEYCODE_BACK, 66, …)');
      const key = rest[0]!.toUpperCase();
      if (!/^[A-Z0-9_]{1,64}$/.test(key)) throw new UsageError(`Bad key ${JSON.stringify(rest[0])}: a KEYCODE name like HOME or a number`);
      return { type: 'keyevent', key };
    }
    case undefined:
      throw new UsageError(INPUT_USAGE);
    default:
      throw new UsageError(`Unknown input action ${JSON.stringify(action)}. ${INPUT_USAGE}`);
  }
}

/** `screenshot-<device>-<20261125T023000Z>.png` (UTC, no characters that need quoting). */
export function defaultScreenshotName(deviceId: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z').replaceAll('-', '').replaceAll(':', '');
  return `screenshot-${deviceId}-${stamp}.png`;
}

/** The last segment of a device path (`/sdcard/a.txt` → `a.txt`); a usage error when there is none. */
export function remoteBasename(remotePath: string): string {
  const name = remotePath.replace(/\/+$/, '').split('/').pop() ?? '';
  if (name === '' || name === '.' || name === '..') {
    throw new UsageError(`Cannot name a local file after ${JSON.stringify(remotePath)}: give <local>`);
  }
  return name;
}

/** `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `  42% 1.2 MiB / 3.0 MiB` (without a total: just the bytes so far). */
export function formatProgress(done: number, total: number | null): string {
  if (total === null || total <= 0) return formatBytes(done);
  const percent = Math.min(100, Math.floor((done / total) * 100));
  return `${String(percent).padStart(3)}% ${formatBytes(done)} / ${formatBytes(total)}`;
}

/** The table rows of a lease's devices. */
export function leaseDeviceRows(devices: readonly LeaseDevice[]): Record<string, unknown>[] {
  return devices.map((device) => ({
    id: device.id,
    serial: device.serial,
    kind: device.kind,
    model: device.model,
    sdk: device.sdk,
  }));
}

/** A shell command given as words after `--` or as `--command`: exactly one of them. */
export function shellCommand(words: readonly string[] | undefined, command: string | undefined): { argv: string[] } | { command: string } | undefined {
  const hasWords = words !== undefined && words.length > 0;
  if (hasWords && command !== undefined) throw new UsageError('Give the command either after -- or as --command, not both');
  if (command !== undefined) {
    if (command === '') throw new UsageError('--command must not be empty');
    return { command };
  }
  return hasWords ? { argv: [...words] } : undefined;
}

/** A device id (`dev_` + 26 ULID characters): how an optional leading DEVICE argument is told from the others. */
export function isDeviceId(value: string | undefined): value is string {
  return value !== undefined && /^dev_[0-9A-Z]{26}$/.test(value);
}
