/** Log priorities by their letter, with the number Android stores (`android_LogPriority`). */
export const LOG_PRIORITIES = { V: 2, D: 3, I: 4, W: 5, E: 6, F: 7 } as const;
export type LogPriority = keyof typeof LOG_PRIORITIES;

export interface LogEntry {
  /** Milliseconds since the epoch. */
  time: number;
  pid: number;
  tid: number;
  uid: number;
  priority: LogPriority;
  tag: string;
  message: string;
}

/** Who writes a log line; system services run as uid 1000 in system_server. */
export interface LogWriter {
  pid: number;
  tid: number;
  uid: number;
}

export const SYSTEM_SERVER: LogWriter = { pid: 1432, tid: 1432, uid: 1000 };

/** The `main` log buffer of a device: the newest entries up to a bound, and live listeners for `logcat` follow mode. */
export class LogBuffer {
  readonly #entries: LogEntry[] = [];
  readonly #listeners = new Set<(entry: LogEntry) => void>();

  constructor(private readonly capacity = 10_000) {}

  append(priority: LogPriority, tag: string, message: string, writer: LogWriter = SYSTEM_SERVER): LogEntry {
    const entry: LogEntry = { time: Date.now(), ...writer, priority, tag, message };
    this.#entries.push(entry);
    if (this.#entries.length > this.capacity) this.#entries.shift();
    for (const listener of this.#listeners) listener(entry);
    return entry;
  }

  get entries(): readonly LogEntry[] {
    return this.#entries;
  }

  clear(): void {
    this.#entries.length = 0;
  }

  /** Calls `listener` with every entry appended from now on, until the returned function is called. */
  subscribe(listener: (entry: LogEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

/** `logcat -v threadtime`: `MM-DD HH:MM:SS.mmm  PID  TID P TAG     : message`, one line per message line. */
export function formatThreadtime(entry: LogEntry): string {
  const date = new Date(entry.time);
  const stamp =
    `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  const ids = `${String(entry.pid).padStart(5)} ${String(entry.tid).padStart(5)}`;
  const prefix = `${stamp} ${ids} ${entry.priority} ${entry.tag.padEnd(8)}: `;
  return entry.message
    .split('\n')
    .map((line) => `${prefix}${line}\n`)
    .join('');
}

const LOGGER_ENTRY_HEADER_SIZE = 28;
const LOG_ID_MAIN = 0;

/**
 * `logcat -B`: a `logger_entry` (liblog's `log_read.h`, version 4) — u16 payload length, u16 header size (28 =
 * `sizeof(logger_entry)`), i32 pid, u32 tid, u32 sec, u32 nsec, u32 log id, u32 uid, all little-endian — then the
 * payload: priority byte, tag, NUL, message, NUL.
 */
export function encodeBinaryEntry(entry: LogEntry): Buffer {
  const tag = Buffer.from(entry.tag, 'utf8');
  const message = Buffer.from(entry.message, 'utf8');
  const payloadLength = 1 + tag.length + 1 + message.length + 1;
  const record = Buffer.alloc(LOGGER_ENTRY_HEADER_SIZE + payloadLength);
  record.writeUInt16LE(payloadLength, 0);
  record.writeUInt16LE(LOGGER_ENTRY_HEADER_SIZE, 2);
  record.writeInt32LE(entry.pid, 4);
  record.writeUInt32LE(entry.tid, 8);
  record.writeUInt32LE(Math.floor(entry.time / 1000), 12);
  record.writeUInt32LE((entry.time % 1000) * 1_000_000, 16);
  record.writeUInt32LE(LOG_ID_MAIN, 20);
  record.writeUInt32LE(entry.uid, 24);
  record.writeUInt8(LOG_PRIORITIES[entry.priority], LOGGER_ENTRY_HEADER_SIZE);
  tag.copy(record, LOGGER_ENTRY_HEADER_SIZE + 1);
  message.copy(record, LOGGER_ENTRY_HEADER_SIZE + 1 + tag.length + 1);
  return record;
}
