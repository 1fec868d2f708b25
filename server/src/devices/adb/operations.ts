import { Readable } from 'node:stream';
import { AdbFeature, AdbSyncError, type Adb, type AdbSync } from '@yume-chan/adb';
import { AndroidLogPriority, AndroidLogPriorityToCharacter, Logcat, type AndroidLogEntry } from '@yume-chan/android-bin';
import { ReadableStream, type MaybeConsumable, type WritableStream } from '@yume-chan/stream-extra';
import {
  DeviceCommandError,
  DeviceFileNotFoundError,
  DeviceOfflineError,
  DevicePathRefusedError,
  DeviceStorageFullError,
  DeviceTimeoutError,
  InvalidDevicePathError,
} from './errors.js';
import { guard, isDisconnected } from './guard.js';

export type LogPriorityChar = 'V' | 'D' | 'I' | 'W' | 'E' | 'F';

export interface ShellResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
}

export interface FileEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  /** Permission bits (`st_mode & 07777`); the file type is in `type`. */
  mode: number;
  modifiedAt: string;
}

export interface LogEntry {
  time: string;
  pid: number;
  tid: number;
  priority: LogPriorityChar;
  tag: string;
  message: string;
}

export interface LogcatFilter {
  /** The minimum priority shown. */
  priority?: LogPriorityChar;
  /** Only these tags (any of them). */
  tags?: string[];
  pid?: number;
  /** Only the last `tail` matching entries (for a follow: of the backlog). */
  tail?: number;
}

export type InputAction =
  | { type: 'tap'; x: number; y: number }
  | { type: 'swipe'; x1: number; y1: number; x2: number; y2: number; durationMs?: number }
  | { type: 'text'; text: string }
  | { type: 'keyevent'; key: string };

export interface Package {
  packageName: string;
  versionCode: number | null;
  versionName: string | null;
}

export interface ShellSession {
  stdout: AsyncIterable<Uint8Array>;
  /** Null with a pty or without the shell protocol (stderr then comes mixed into stdout). */
  stderr: AsyncIterable<Uint8Array> | null;
  write(data: Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  /** A no-op without a pty. */
  resize(rows: number, cols: number): Promise<void>;
  kill(): Promise<void>;
  /** The exit code; null when unknown (no shell protocol) or killed. Rejects with DeviceOfflineError if the device goes. */
  exited: Promise<number | null>;
}

const DEFAULT_MAX_OUTPUT = 8 * 1024 * 1024;
const MAX_PATH_LENGTH = 1024;
const SHORT_TIMEOUT_MS = 30_000;

/** Quotes one word for the device's `sh`. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function commandLine(command: string | readonly string[]): string {
  return typeof command === 'string' ? command : command.map(shellQuote).join(' ');
}

/** A path acceptable on the device: absolute, at most 1024 characters, no NUL/newline, no `.` or `..` segment. */
export function validateDevicePath(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidDevicePathError(String(path), 'not absolute');
  if (path.length > MAX_PATH_LENGTH) throw new InvalidDevicePathError(path, `longer than ${MAX_PATH_LENGTH} characters`);
  if (/[\0\n\r]/.test(path)) throw new InvalidDevicePathError(path, 'contains NUL or a line break');
  const segments = path.split('/').filter((segment) => segment !== '');
  if (segments.some((segment) => segment === '.' || segment === '..')) {
    throw new InvalidDevicePathError(path, "contains a '.' or '..' segment");
  }
  return `/${segments.join('/')}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Shell

/**
 * Runs a command (a line for the device's `sh`, or an argv quoted word by word) and collects its output. With the
 * shell protocol the exit code and stderr are real; without it stdout has both streams and the exit code is 0. A
 * timeout kills the command and reports `timedOut` with exit code -1.
 */
export async function runShell(
  adb: Adb,
  command: string | readonly string[],
  options: { timeoutMs: number; stdin?: Uint8Array; maxOutputBytes?: number },
): Promise<ShellResult> {
  const started = performance.now();
  const line = commandLine(command);
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const deadline = started + options.timeoutMs;
  const stdout = new Collector(limit);
  const stderr = new Collector(limit);
  const shell = adb.subprocess.shellProtocol;
  const timedOutEarly = (): ShellResult => ({
    exitCode: -1,
    stdout: '',
    stderr: '',
    timedOut: true,
    truncated: false,
    durationMs: Math.round(performance.now() - started),
  });
  let kill: () => unknown;
  let done: Promise<number>;
  let stdinWritable;
  if (shell !== undefined) {
    const process = await guard(adb, shell.spawn(line), { timeoutMs: options.timeoutMs, what: 'starting the shell' }).catch(
      (error: unknown) => {
        if (error instanceof DeviceTimeoutError) return undefined;
        throw error;
      },
    );
    if (process === undefined) return timedOutEarly();
    kill = () => process.kill();
    stdinWritable = process.stdin;
    done = Promise.all([stdout.drain(process.stdout), stderr.drain(process.stderr), process.exited]).then(
      ([, , code]) => code,
    );
  } else {
    const process = await guard(adb, adb.subprocess.noneProtocol.spawn(line), {
      timeoutMs: options.timeoutMs,
      what: 'starting the shell',
    }).catch((error: unknown) => {
      if (error instanceof DeviceTimeoutError) return undefined;
      throw error;
    });
    if (process === undefined) return timedOutEarly();
    kill = () => process.kill();
    stdinWritable = process.stdin;
    done = Promise.all([stdout.drain(process.output), process.exited]).then(() => 0);
  }
  const feeding = (async () => {
    const writer = stdinWritable.getWriter();
    if (options.stdin !== undefined && options.stdin.length > 0) await writer.write(options.stdin);
    await writer.close();
  })();
  feeding.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - performance.now()));
  });
  try {
    const outcome = await guard(adb, Promise.race([done, timedOut]), { onAbandon: () => void safely(kill) });
    const result = (exitCode: number, timed: boolean): ShellResult => ({
      exitCode,
      stdout: stdout.text(),
      stderr: stderr.text(),
      timedOut: timed,
      truncated: stdout.truncated || stderr.truncated,
      durationMs: Math.round(performance.now() - started),
    });
    if (outcome === 'timeout') {
      await safely(kill);
      return result(-1, true);
    }
    return result(outcome, false);
  } finally {
    clearTimeout(timer);
    done.catch(() => undefined);
  }
}

async function safely(action: () => unknown): Promise<void> {
  try {
    await action();
  } catch {
    // already gone
  }
}

/** Keeps up to `limit` bytes of a stream, reading (and dropping) the rest so the device never stalls. */
class Collector {
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  truncated = false;
  constructor(readonly limit: number) {}

  async drain(stream: ReadableStream<Uint8Array>): Promise<void> {
    const reader = stream.getReader();
    try {
      for (let result = await reader.read(); !result.done; result = await reader.read()) {
        const room = this.limit - this.#size;
        if (result.value.length > room) this.truncated = true;
        if (room > 0) {
          const kept = result.value.length > room ? result.value.subarray(0, room) : result.value;
          this.#chunks.push(kept.slice());
          this.#size += kept.length;
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }

  text(): string {
    return new TextDecoder().decode(this.bytes());
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Files

async function openSync(adb: Adb): Promise<AdbSync> {
  return guard(adb, adb.sync(), { timeoutMs: SHORT_TIMEOUT_MS, what: 'opening sync' });
}

function disposeLater(sync: AdbSync): void {
  sync.dispose().catch(() => undefined);
}

interface PathStat {
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
}

/** strerror's text for the errno names a stat_v2 error arrives as. */
const ERRNO_MESSAGES: Record<string, string> = {
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  ELOOP: 'Too many symbolic links encountered',
  ENAMETOOLONG: 'File name too long',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
  EIO: 'I/O error',
};

/**
 * A device's refusal of a sync request on `path` as the error the API maps: a FAIL message (`couldn't create file:
 * Permission denied`, `write failed: No space left on device`, `open failed: …`) or a stat error number. A missing
 * path is DeviceFileNotFoundError, no space DeviceStorageFullError, any other refusal DevicePathRefusedError; other
 * errors are returned as they are.
 */
function syncRefusal(error: unknown, path: string): unknown {
  let message: string;
  if (error instanceof AdbSyncError) message = error.message;
  else if (error instanceof Error && Object.hasOwn(ERRNO_MESSAGES, error.message)) message = ERRNO_MESSAGES[error.message]!;
  else return error;
  if (/No such file or directory|^ENOENT$/.test(message)) return new DeviceFileNotFoundError(path);
  if (/No space left on device|Disk quota exceeded/.test(message)) return new DeviceStorageFullError(path, message);
  return new DevicePathRefusedError(path, message);
}

/** stat (following links) with STA2 when the device has it, else lstat; ENOENT → DeviceFileNotFoundError. */
async function statPath(adb: Adb, sync: AdbSync, path: string): Promise<PathStat> {
  let mode: number;
  let size: number;
  try {
    const stat = await guard(
      adb,
      adb.canUseFeature(AdbFeature.StatV2) ? sync.stat(path) : sync.lstat(path),
      { timeoutMs: SHORT_TIMEOUT_MS, what: 'stat' },
    );
    mode = stat.mode;
    size = Number(stat.size);
  } catch (error) {
    // STA2 reports ENOENT; the v1 STAT has no error code, a missing path is all zeros ("lstat error").
    if (error instanceof Error && (error.message === 'ENOENT' || error.message === 'lstat error')) {
      throw new DeviceFileNotFoundError(path);
    }
    throw syncRefusal(error, path);
  }
  if (mode === 0) throw new DeviceFileNotFoundError(path);
  return { type: fileType(mode), size };
}

function fileType(mode: number): PathStat['type'] {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'directory';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}

/** How far reading the source may run ahead of the device during a push. */
const PUSH_READ_AHEAD_BYTES = 1024 * 1024;

/**
 * Writes `source` to `path` on the device, streaming: the source is read at most `PUSH_READ_AHEAD_BYTES` ahead of
 * what the device took, so reading (e.g. an upload) overlaps the device's writes while memory stays bounded.
 * Resolves the number of bytes written.
 */
export async function pushFile(
  adb: Adb,
  path: string,
  source: AsyncIterable<Uint8Array> | Readable,
  options: { mode?: number; signal?: AbortSignal } = {},
): Promise<{ size: number }> {
  const target = validateDevicePath(path);
  options.signal?.throwIfAborted();
  const iterator = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  let size = 0;
  const stopSource = () => void Promise.resolve(iterator.return?.()).catch(() => undefined);
  const file = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await iterator.next();
        if (next.done) {
          controller.close();
          return;
        }
        const chunk = next.value instanceof Uint8Array ? next.value : Buffer.from(next.value as string);
        size += chunk.length;
        if (chunk.length > 0) controller.enqueue(chunk);
      },
      cancel: stopSource,
    },
    { highWaterMark: PUSH_READ_AHEAD_BYTES, size: (chunk) => chunk.byteLength },
  );
  const sync = await openSync(adb);
  const aborted = new Promise<never>((_, reject) => {
    options.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true });
  });
  aborted.catch(() => undefined);
  try {
    await guard(
      adb,
      Promise.race([
        sync.write({ filename: target, file, permission: (options.mode ?? 0o644) & 0o7777, mtime: Date.now() / 1000 }),
        aborted,
      ]),
      { onAbandon: stopSource },
    );
  } catch (error) {
    stopSource();
    // Closing a sync socket of a dead connection makes @yume-chan/adb reject a promise nobody holds: leave it.
    if (!(error instanceof DeviceOfflineError)) disposeLater(sync);
    throw syncRefusal(error, target);
  }
  disposeLater(sync);
  return { size };
}

/** The file at `path` as a Node stream, with its size. A directory is an InvalidDevicePathError. */
export async function pullFile(adb: Adb, path: string): Promise<{ size: number; stream: Readable }> {
  const target = validateDevicePath(path);
  const sync = await openSync(adb);
  let stat: PathStat;
  try {
    stat = await statPath(adb, sync, target);
  } catch (error) {
    disposeLater(sync);
    throw error;
  }
  if (stat.type === 'directory') {
    disposeLater(sync);
    throw new InvalidDevicePathError(target, 'is a directory');
  }
  const reader = sync.read(target).getReader();
  const offline = isDisconnected(adb);
  // The first read answers whether the device lets the file be read (`open failed: …`), before the response starts.
  let first: Awaited<ReturnType<typeof reader.read>>;
  try {
    first = await guard(adb, reader.read(), { timeoutMs: SHORT_TIMEOUT_MS, what: 'opening the file' });
  } catch (error) {
    reader.cancel().catch(() => undefined);
    if (!(error instanceof DeviceOfflineError)) disposeLater(sync);
    throw syncRefusal(error, target);
  }
  async function* chunks(): AsyncGenerator<Uint8Array> {
    let finished = false;
    try {
      let result = first;
      while (!result.done) {
        yield result.value;
        const next = await Promise.race([reader.read(), offline.then(() => 'offline' as const)]);
        if (next === 'offline') throw new DeviceOfflineError('the device went offline during the download');
        result = next;
      }
      finished = true;
    } catch (error) {
      if (error instanceof DeviceOfflineError) throw error;
      if (await Promise.race([offline, new Promise((resolve) => setTimeout(() => resolve(false), 50))])) {
        throw new DeviceOfflineError('the device went offline during the download', { cause: error });
      }
      throw error;
    } finally {
      if (!finished) reader.cancel().catch(() => undefined);
      disposeLater(sync);
    }
  }
  return { size: stat.size, stream: Readable.from(chunks(), { objectMode: false }) };
}

/** The entries of a directory, without `.` and `..`, sorted by name. */
export async function listDirectory(adb: Adb, path: string): Promise<FileEntry[]> {
  const target = validateDevicePath(path);
  const sync = await openSync(adb);
  try {
    const stat = await statPath(adb, sync, target);
    if (stat.type !== 'directory') throw new InvalidDevicePathError(target, 'is not a directory');
    const entries = await guard(adb, sync.readdir(target), { timeoutMs: SHORT_TIMEOUT_MS, what: 'listing' });
    return entries
      .filter((entry) => entry.name !== '.' && entry.name !== '..')
      .map((entry) => ({
        name: entry.name,
        type: fileType(entry.mode),
        size: Number(entry.size),
        mode: entry.mode & 0o7777,
        modifiedAt: new Date(Number(entry.mtime) * 1000).toISOString(),
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    disposeLater(sync);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Screen, log, power, input, packages

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG of the screen (`screencap -p` over `exec:`, binary-safe). */
export async function takeScreenshot(adb: Adb, options: { timeoutMs?: number } = {}): Promise<Buffer> {
  const bytes = Buffer.from(
    await guard(adb, adb.subprocess.noneProtocol.spawnWait('screencap -p'), {
      timeoutMs: options.timeoutMs ?? SHORT_TIMEOUT_MS,
      what: 'screencap',
    }),
  );
  if (!bytes.subarray(0, 8).equals(PNG_MAGIC)) {
    throw new DeviceCommandError(`screencap did not return a PNG: ${bytes.subarray(0, 200).toString('utf8').trim()}`);
  }
  return bytes;
}

const PRIORITY_RANK: Record<LogPriorityChar, number> = { V: 2, D: 3, I: 4, W: 5, E: 6, F: 7 };

function toLogEntry(entry: AndroidLogEntry): LogEntry {
  const character = AndroidLogPriorityToCharacter[entry.priority] as string | undefined;
  const priority: LogPriorityChar =
    character !== undefined && character in PRIORITY_RANK
      ? (character as LogPriorityChar)
      : entry.priority >= AndroidLogPriority.Fatal
        ? 'F'
        : 'V';
  return {
    time: new Date(entry.seconds * 1000 + Math.floor(entry.nanoseconds / 1e6)).toISOString(),
    pid: entry.pid,
    tid: entry.tid,
    priority,
    tag: entry.tag,
    message: entry.message.replace(/[\0\n]+$/, ''),
  };
}

function matcher(filter: LogcatFilter): (entry: LogEntry) => boolean {
  const minimum = filter.priority === undefined ? 0 : PRIORITY_RANK[filter.priority];
  const tags = filter.tags !== undefined && filter.tags.length > 0 ? new Set(filter.tags) : undefined;
  return (entry) =>
    PRIORITY_RANK[entry.priority] >= minimum &&
    (tags === undefined || tags.has(entry.tag)) &&
    (filter.pid === undefined || entry.pid === filter.pid);
}

function onlyByPid(filter: LogcatFilter): boolean {
  return filter.priority === undefined && (filter.tags === undefined || filter.tags.length === 0);
}

/** The log as it is now (`logcat -B -d`), filtered; `tail` counts matching entries. */
export async function dumpLogcat(adb: Adb, filter: LogcatFilter = {}, options: { timeoutMs?: number } = {}): Promise<LogEntry[]> {
  const matches = matcher(filter);
  // The device applies -t before our tag/priority filters: ask it for the tail only when it filters everything.
  const stream = new Logcat(adb).binary({
    dump: true,
    pid: filter.pid,
    tail: onlyByPid(filter) && filter.tail !== undefined && filter.tail > 0 ? filter.tail : undefined,
  });
  const reader = stream.getReader();
  const read = (async () => {
    const entries: LogEntry[] = [];
    for (let result = await reader.read(); !result.done; result = await reader.read()) {
      const entry = toLogEntry(result.value);
      if (matches(entry)) entries.push(entry);
    }
    return entries;
  })();
  const entries = await guard(adb, read, {
    timeoutMs: options.timeoutMs ?? SHORT_TIMEOUT_MS,
    what: 'logcat',
    onAbandon: () => void reader.cancel().catch(() => undefined),
  });
  if (filter.tail === undefined) return entries;
  return filter.tail === 0 ? [] : entries.slice(-filter.tail);
}

/**
 * The log as it grows (`logcat -B`), filtered, until `signal` aborts (the iteration then ends normally). With `tail`,
 * the backlog is limited to that many entries (the device's count, before the tag/priority filter).
 */
export async function* followLogcat(adb: Adb, filter: LogcatFilter, signal: AbortSignal): AsyncIterable<LogEntry> {
  if (signal.aborted) return;
  const matches = matcher(filter);
  const reader = new Logcat(adb)
    .binary({ pid: filter.pid, tail: filter.tail !== undefined && filter.tail > 0 ? filter.tail : undefined })
    .getReader();
  const offline = isDisconnected(adb).then(() => 'offline' as const);
  const stopped = new Promise<'stopped'>((resolve) => signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
  try {
    for (;;) {
      const result = await Promise.race([reader.read(), offline, stopped]);
      if (result === 'stopped') return;
      if (result === 'offline') throw new DeviceOfflineError('the device went offline');
      if (result.done) {
        if (await Promise.race([offline, new Promise((resolve) => setTimeout(() => resolve(false), 100))])) {
          throw new DeviceOfflineError('the device went offline');
        }
        return;
      }
      const entry = toLogEntry(result.value);
      if (matches(entry)) yield entry;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** Asks the device to reboot (`reboot:`). Resolves once the device took the request; its connection then drops. */
export async function rebootDevice(adb: Adb, options: { timeoutMs?: number } = {}): Promise<void> {
  try {
    await guard(adb, adb.power.reboot(), { timeoutMs: options.timeoutMs ?? SHORT_TIMEOUT_MS, what: 'reboot' });
  } catch (error) {
    // Dropping the connection is what a reboot does.
    if (!(error instanceof DeviceOfflineError)) throw error;
  }
}

/** `input text` reads `%s` as a space and splits on spaces: encode them. */
export function escapeInputText(text: string): string {
  return text.replaceAll(' ', '%s');
}

export function inputArgv(action: InputAction): string[] {
  switch (action.type) {
    case 'tap':
      return ['input', 'tap', String(action.x), String(action.y)];
    case 'swipe':
      return [
        'input',
        'swipe',
        ...[action.x1, action.y1, action.x2, action.y2].map(String),
        ...(action.durationMs === undefined ? [] : [String(action.durationMs)]),
      ];
    case 'text':
      return ['input', 'text', escapeInputText(action.text)];
    case 'keyevent': {
      if (!/^[A-Z0-9_]{1,64}$/.test(action.key)) throw new DeviceCommandError(`invalid key ${JSON.stringify(action.key)}`);
      return ['input', 'keyevent', action.key];
    }
  }
}

/** Injects one input event; a refusal by `input` is a DeviceCommandError. */
export async function sendInput(adb: Adb, action: InputAction, options: { timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? SHORT_TIMEOUT_MS;
  const result = await runShell(adb, inputArgv(action), { timeoutMs });
  if (result.timedOut) throw new DeviceTimeoutError(timeoutMs, 'input');
  if (result.exitCode !== 0 || /^(Error|Exception)/m.test(result.stderr)) {
    throw new DeviceCommandError(`input failed: ${(result.stderr || result.stdout).trim().split('\n')[0] ?? ''}`);
  }
}

/** Installed packages (`pm list packages [-3] --show-versioncode`), sorted by name; versionName is not known here. */
/**
 * The device's packages (`pm list packages`, third-party only with `thirdParty`), with their version codes; with
 * `versionNames`, also their version names, read from one `dumpsys package packages` (null where it has none).
 */
export async function listPackages(
  adb: Adb,
  options: { thirdParty: boolean; versionNames?: boolean },
): Promise<Package[]> {
  const base = ['pm', 'list', 'packages', ...(options.thirdParty ? ['-3'] : [])];
  let result = await runShell(adb, [...base, '--show-versioncode'], { timeoutMs: SHORT_TIMEOUT_MS });
  if (result.exitCode !== 0 || !result.stdout.includes('package:')) {
    // Android before 9 has no --show-versioncode.
    const plain = await runShell(adb, base, { timeoutMs: SHORT_TIMEOUT_MS });
    if (plain.exitCode === 0 || plain.stdout.includes('package:')) result = plain;
  }
  if (result.timedOut) throw new DeviceTimeoutError(SHORT_TIMEOUT_MS, 'pm list packages');
  if (result.exitCode !== 0) throw new DeviceCommandError(`pm list packages failed: ${result.stderr.trim()}`);
  const packages = parsePackageList(result.stdout);
  if (!options.versionNames || packages.length === 0) return packages;
  const dump = await runShell(adb, ['dumpsys', 'package', 'packages'], { timeoutMs: SHORT_TIMEOUT_MS });
  if (dump.timedOut) throw new DeviceTimeoutError(SHORT_TIMEOUT_MS, 'dumpsys package');
  const names = dump.exitCode === 0 ? parseVersionNames(dump.stdout) : new Map<string, string>();
  return packages.map((pkg) => ({ ...pkg, versionName: names.get(pkg.packageName) ?? null }));
}

/**
 * Package name → versionName from `dumpsys package`: the first `Package [name]` block of each name (a later one, in
 * "Hidden system packages", is the factory version of an updated system app).
 */
export function parseVersionNames(dump: string): Map<string, string> {
  const names = new Map<string, string>();
  let current: string | undefined;
  for (const line of dump.split('\n')) {
    const block = /^\s*Package \[([^\]]+)\]/.exec(line);
    if (block !== null) {
      current = names.has(block[1]!) ? undefined : block[1];
      continue;
    }
    const version = /^\s+versionName=(.*?)\s*$/.exec(line);
    if (version !== null && current !== undefined && version[1] !== '' && version[1] !== 'null') {
      names.set(current, version[1]!);
      current = undefined;
    }
  }
  return names;
}

export function parsePackageList(text: string): Package[] {
  const packages: Package[] = [];
  for (const match of text.matchAll(/^package:(\S+?)(?:\s+versionCode:(\d+))?\s*$/gm)) {
    packages.push({ packageName: match[1]!, versionCode: match[2] === undefined ? null : Number(match[2]), versionName: null });
  }
  return packages.sort((a, b) => (a.packageName < b.packageName ? -1 : a.packageName > b.packageName ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------------------------
// Interactive shell

function guardedIterable(adb: Adb, stream: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const offline = isDisconnected(adb).then(() => 'offline' as const);
  return {
    async *[Symbol.asyncIterator]() {
      const reader = stream.getReader();
      try {
        for (;;) {
          const result = await Promise.race([reader.read(), offline]);
          if (result === 'offline') throw new DeviceOfflineError('the device went offline');
          if (result.done) return;
          yield result.value;
        }
      } finally {
        reader.releaseLock();
      }
    },
  };
}

/**
 * An interactive shell: with `pty`, a terminal (stdout only, resizable); otherwise separate stdout and stderr. Without
 * the shell protocol, `shell:`/`exec:` are used and the exit code is null.
 */
export async function openShellSession(
  adb: Adb,
  options: { command?: string; pty: boolean; rows?: number; cols?: number },
): Promise<ShellSession> {
  const shell = adb.subprocess.shellProtocol;
  const command = options.command !== undefined && options.command !== '' ? options.command : undefined;
  let killed = false;
  let stdout: ReadableStream<Uint8Array>;
  let stderr: ReadableStream<Uint8Array> | null = null;
  let stdin: WritableStream<MaybeConsumable<Uint8Array>>;
  let exitedRaw: Promise<number | undefined | void>;
  let killProcess: () => unknown;
  let resize: (rows: number, cols: number) => Promise<void> = async () => undefined;
  const open = { timeoutMs: SHORT_TIMEOUT_MS, what: 'opening the shell' };
  if (shell !== undefined && options.pty) {
    const process = await guard(adb, shell.pty({ command, terminalType: 'xterm-256color' }), open);
    stdout = process.output;
    stdin = process.input;
    exitedRaw = process.exited;
    killProcess = () => process.kill();
    resize = (rows, cols) => guard(adb, process.resize(rows, cols));
  } else if (shell !== undefined) {
    const process = await guard(adb, shell.spawn(command ?? ''), open);
    stdout = process.stdout;
    stderr = process.stderr;
    stdin = process.stdin;
    exitedRaw = process.exited;
    killProcess = () => process.kill();
  } else {
    const none = adb.subprocess.noneProtocol;
    if (options.pty) {
      const process = await guard(adb, none.pty(command), open);
      stdout = process.output;
      stdin = process.input;
      exitedRaw = process.exited;
      killProcess = () => process.kill();
    } else {
      const process = await guard(adb, none.spawn(command ?? ''), open);
      stdout = process.output;
      stdin = process.stdin;
      exitedRaw = process.exited;
      killProcess = () => process.kill();
    }
  }
  if (options.pty && options.rows !== undefined && options.cols !== undefined) {
    await resize(options.rows, options.cols).catch(() => undefined);
  }
  const writer = stdin.getWriter();
  const offline = isDisconnected(adb);
  let onKill: () => void = () => undefined;
  const killedPromise = new Promise<{ code: undefined }>((resolve) => {
    onKill = () => resolve({ code: undefined });
  });
  const exited = (async (): Promise<number | null> => {
    const outcome = await Promise.race([
      exitedRaw.then(
        (code) => ({ code }),
        () => ({ code: undefined }),
      ),
      killedPromise,
      offline.then(() => 'offline' as const),
    ]);
    if (outcome === 'offline') {
      if (killed) return null;
      throw new DeviceOfflineError('the device went offline');
    }
    if (killed) return null;
    return typeof outcome.code === 'number' ? outcome.code : null;
  })();
  exited.catch(() => undefined);
  return {
    stdout: guardedIterable(adb, stdout),
    stderr: stderr === null ? null : guardedIterable(adb, stderr),
    write: (data) => guard(adb, writer.write(data)),
    closeStdin: () => guard(adb, writer.close()),
    resize,
    async kill() {
      killed = true;
      onKill();
      await safely(killProcess);
    },
    exited,
  };
}
