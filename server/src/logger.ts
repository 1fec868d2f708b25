import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import { pino, type DestinationStream } from 'pino';
import type { LogLevel } from './config.js';

/** Fields that hold credentials, wherever they appear in a log object. */
const SECRET_FIELDS = ['password', 'currentPassword', 'refreshToken', 'accessToken', 'secret', 'token'];

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
];

export interface LoggerOptions {
  level: LogLevel;
  /** The node's name (`ServerConfig.nodeName`): the `node` field of every line. */
  node: string;
  /** `json` (the default): one JSON object per line; `pretty`: one readable line per entry (`humanLogStream`). */
  format?: 'json' | 'pretty';
  /** Where lines go; standard output by default. */
  stream?: DestinationStream;
}

/**
 * The server's logger: pino JSON lines naming their node, with credentials redacted (before formatting, so in both
 * formats). Standard
 * output is written asynchronously in JSON, so a busy server batches lines into few writes instead of one blocking
 * write per request; pino flushes it at exit.
 */
export function createLogger(options: LoggerOptions): FastifyBaseLogger {
  const destination =
    options.format === 'pretty'
      ? humanLogStream(options.stream ?? process.stdout)
      : (options.stream ?? pino.destination({ dest: 1, sync: false }));
  return pino(
    {
      level: options.level,
      base: { pid: process.pid, hostname: hostname(), node: options.node },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const OMITTED = new Set(['level', 'time', 'node', 'msg', 'pid', 'hostname']);

function formatValue(value: unknown): string {
  return typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

/**
 * A compact human format for a terminal: `12:04:05.123 node-a INFO  request completed method=GET status=200 …`, the
 * node's name after the time. Errors keep their stack on the following lines.
 */
export function humanLogStream(out: { write(text: string): unknown }): DestinationStream {
  return {
    write(line: string): void {
      const entry = JSON.parse(line) as Record<string, unknown>;
      const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
      const level = (LEVEL_NAMES[entry.level as number] ?? String(entry.level)).padEnd(5);
      const fields = Object.entries(entry)
        .filter(([key]) => !OMITTED.has(key) && key !== 'err')
        .map(([key, value]) => `${key}=${formatValue(value)}`);
      const err = entry.err as { stack?: string } | undefined;
      const stack = err?.stack ? `\n${err.stack}` : '';
      const node = typeof entry.node === 'string' ? [entry.node] : [];
      out.write(`${[time, ...node, level, entry.msg ?? '', ...fields].join(' ')}${stack}\n`);
    },
  };
}
