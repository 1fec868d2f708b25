import { homedir, hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { isTimeZone } from './billing/calendar.js';
import { parseAddress } from './address.js';
import { isPostgresUrl, maskedUrl } from './db/dialect.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: readable lines when standard output is a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const LOCAL_ADB_MODES = ['auto', 'on', 'off'] as const;
export type LocalAdb = (typeof LOCAL_ADB_MODES)[number];

/** How repeated failed logins from one source address are slowed down. */
export interface LoginThrottle {
  /** Failures of one username from one address allowed before its attempts from there are delayed. */
  freeAttempts: number;
  /** Failures of any usernames from one address allowed before every attempt from there is delayed. */
  addressFreeAttempts: number;
  /** The longest delay between attempts, in seconds. */
  maxDelaySeconds: number;
  /** Failures are forgotten after this many seconds without one. */
  forgetAfterSeconds: number;
}

export interface ServerConfig {
  host: string;
  port: number;
  /**
   * This server process's name among the nodes sharing one database: the `node` field of every log line and the
   * `node` label of every metric. 1 to 63 letters, digits, dots, dashes or underscores.
   */
  nodeName: string;
  /** Holds the SQLite database (unless `databaseUrl` is set) and uploaded apps; created 0700. Always absolute. */
  dataDir: string;
  /** A `postgres://` URL: the server keeps its data in that PostgreSQL database instead of SQLite in `dataDir`. */
  databaseUrl?: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** The first admin's password; generated when unset. */
  adminPassword?: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  bodyLimitBytes: number;
  /** Trust `X-Forwarded-*` headers (when behind a reverse proxy). */
  trustProxy: boolean;
  loginThrottle: LoginThrottle;
  idempotencyTtlSeconds: number;
  /** ADB servers whose devices are tracked, each `host:port` (CLOUDPHONE_ADB_SERVERS, comma-separated). */
  adbServers: string[];
  /**
   * The local ADB server at 127.0.0.1:5037: `auto` tracks it when something answers there at boot, `on` always,
   * `off` never.
   */
  localAdb: LocalAdb;
  /** Devices reached directly over ADB-over-TCP, each `host:port` (CLOUDPHONE_ADB_DEVICES, comma-separated). */
  adbDevices: string[];
  /** How many in-process virtual devices to run (0: none). */
  virtualDevices: number;
  /** The built-in profile the virtual devices use. */
  virtualProfile: string;
  /** The largest file a push to a device accepts. */
  maxPushBytes: number;
  /** The largest APK an upload accepts. */
  maxAppBytes: number;
  /** How many devices of one install job receive the APK at once. */
  installConcurrency: number;
  /** The IANA time zone whose calendar months are the billing periods and whose days usage reports group by. */
  billingTimeZone: string;
  /**
   * How often budgets and minute quotas are checked: a lease runs past its budget by at most this much device time
   * (at most 60 s).
   */
  billingCheckSeconds: number;
  /**
   * The SMTP server email goes through, `smtp://` or `smtps://` with any credentials in the URL; email is off
   * without it.
   */
  smtpUrl?: string;
  /** The sender of every email, an address or `Name <address>`. */
  mailFrom: string;
  /** The server's address as users reach it, for the links in emails; `http://<host>:<port>` when unset. */
  publicUrl?: string;
  /**
   * Lets webhook endpoints point at loopback, private and link-local addresses (an admin's choice for a private
   * network); refused otherwise, so that webhooks cannot reach into the server's own network.
   */
  webhookAllowPrivate: boolean;
  /** How long one webhook delivery attempt may take, in seconds. */
  webhookTimeoutSeconds: number;
  /** How many minutes before a lease expires its holder is warned (0: never). */
  leaseExpiryWarningMinutes: number;
  /** How many days read notifications stay in the inbox. */
  inboxRetentionDays: number;
  /** Seconds between the keepalives of a live event stream. */
  streamHeartbeatSeconds: number;
}

/** Explicit settings (API options or CLI flags). Scalars may also be given as the strings a flag would carry. */
export type ConfigInput = {
  [K in keyof ServerConfig]?:
    | ServerConfig[K]
    | (ServerConfig[K] extends readonly string[] ? string : ServerConfig[K] extends object ? never : string);
};

/** A setting has a value it cannot take. The message is one line naming the setting. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const UNITS = { '': 1, s: 1, m: 60, h: 3600, d: 86_400, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

function scaled(pattern: RegExp) {
  return z
    .string()
    .trim()
    .toLowerCase()
    .regex(pattern)
    .transform((text) => {
      const [, amount, unit] = /^(\d+)([a-z]*)$/.exec(text)!;
      return Number(amount) * UNITS[unit as keyof typeof UNITS];
    });
}

const integer = (min: number, max: number) =>
  z.union([z.number(), z.string().trim().regex(/^\d+$/).transform(Number)]).pipe(z.int().min(min).max(max));
const duration = z.union([z.number(), scaled(/^\d+[smhd]?$/)]).pipe(z.int().min(1));
const size = z.union([z.number(), scaled(/^\d+(b|kb|mb|gb)?$/)]).pipe(z.int().min(1024));
/** `host:port`, as the device sources parse it. */
const address = z
  .string()
  .trim()
  .refine((text) => {
    try {
      parseAddress(text);
      return true;
    } catch {
      return false;
    }
  });
/** A comma-separated list (or an array) of `host:port` addresses, without duplicates. */
const addresses = z
  .union([
    z.array(z.string()),
    z.string().transform((text) =>
      text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== ''),
    ),
  ])
  .pipe(z.array(address))
  .transform((list) => [...new Set(list)]);
const flag = z.union([
  z.boolean(),
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no']))
    .transform((v) => v === 'true' || v === '1' || v === 'yes'),
]);

/** A node name: short and plain enough for a log field, a Prometheus label value and a host name. */
const NODE_NAME = /^[A-Za-z0-9._-]{1,63}$/;

/** The default node name, `<host name>-<process id>`, with the host name cut and cleaned to fit `NODE_NAME`. */
function defaultNodeName(): string {
  const pid = `-${process.pid}`;
  return `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63 - pid.length)}${pid}`;
}

const configSchema = z.object({
  host: z.string().trim().min(1),
  port: integer(0, 65_535),
  nodeName: z.string().trim().regex(NODE_NAME),
  dataDir: z
    .string()
    .trim()
    .min(1)
    .transform((p) => resolve(p)),
  databaseUrl: z.string().trim().refine(isPostgresUrl).optional(),
  logLevel: z.enum(LOG_LEVELS),
  logFormat: z.string().trim().toLowerCase().pipe(z.enum(LOG_FORMATS)),
  adminPassword: z.string().min(12).max(256).optional(),
  accessTokenTtlSeconds: duration,
  refreshTokenTtlSeconds: duration,
  bodyLimitBytes: size,
  trustProxy: flag,
  loginThrottle: z.object({
    freeAttempts: z.int().min(0),
    addressFreeAttempts: z.int().min(0),
    maxDelaySeconds: z.int().min(1),
    forgetAfterSeconds: z.int().min(1),
  }),
  idempotencyTtlSeconds: duration,
  adbServers: addresses,
  localAdb: z.string().trim().toLowerCase().pipe(z.enum(LOCAL_ADB_MODES)),
  adbDevices: addresses,
  virtualDevices: integer(0, 200),
  virtualProfile: z.string().trim().regex(/^[A-Za-z0-9._-]{1,64}$/),
  maxPushBytes: size,
  maxAppBytes: size,
  installConcurrency: integer(1, 100),
  billingTimeZone: z.string().trim().refine(isTimeZone),
  billingCheckSeconds: integer(1, 60),
  smtpUrl: z
    .string()
    .trim()
    .refine((text) => /^smtps?:\/\/[^/]/.test(text) && URL.canParse(text))
    .optional(),
  mailFrom: z.string().trim().min(3).max(320),
  publicUrl: z
    .string()
    .trim()
    .refine((text) => /^https?:\/\/[^/]/.test(text) && URL.canParse(text))
    .transform((text) => text.replace(/\/+$/, ''))
    .optional(),
  webhookAllowPrivate: flag,
  webhookTimeoutSeconds: integer(1, 60),
  leaseExpiryWarningMinutes: integer(0, 1440),
  inboxRetentionDays: integer(1, 3650),
  streamHeartbeatSeconds: integer(1, 300),
}) satisfies z.ZodType<ServerConfig, unknown>;

interface Setting {
  env?: string;
  expected: string;
  /** Never echoed in error messages. */
  secret?: true;
  /** How a bad value is echoed in error messages, when not as it is. */
  shown?: (value: string) => string;
}

const settings: Record<keyof ServerConfig, Setting> = {
  host: { env: 'CLOUDPHONE_HOST', expected: 'a host name or IP address' },
  port: { env: 'CLOUDPHONE_PORT', expected: 'an integer from 0 to 65535' },
  nodeName: { env: 'CLOUDPHONE_NODE_NAME', expected: '1 to 63 letters, digits, dots, dashes or underscores' },
  dataDir: { env: 'CLOUDPHONE_DATA_DIR', expected: 'a directory path' },
  databaseUrl: {
    env: 'CLOUDPHONE_DATABASE_URL',
    expected: 'a PostgreSQL URL such as postgres://user:password@host:5432/database',
    shown: maskedUrl,
  },
  logLevel: { env: 'CLOUDPHONE_LOG_LEVEL', expected: `one of ${LOG_LEVELS.join(', ')}` },
  logFormat: { env: 'CLOUDPHONE_LOG_FORMAT', expected: `one of ${LOG_FORMATS.join(', ')}` },
  adminPassword: { env: 'CLOUDPHONE_ADMIN_PASSWORD', expected: 'a password of 12 to 256 characters', secret: true },
  accessTokenTtlSeconds: {
    env: 'CLOUDPHONE_ACCESS_TOKEN_TTL',
    expected: 'a duration of at least 1 second such as 900, 15m or 1h',
  },
  refreshTokenTtlSeconds: {
    env: 'CLOUDPHONE_REFRESH_TOKEN_TTL',
    expected: 'a duration of at least 1 second such as 86400, 12h or 30d',
  },
  bodyLimitBytes: { env: 'CLOUDPHONE_BODY_LIMIT', expected: 'a size of at least 1kb such as 1048576, 512kb or 1mb' },
  trustProxy: { env: 'CLOUDPHONE_TRUST_PROXY', expected: 'true or false' },
  loginThrottle: {
    expected: 'freeAttempts, addressFreeAttempts >= 0 and maxDelaySeconds, forgetAfterSeconds >= 1, all integers',
  },
  idempotencyTtlSeconds: { expected: 'a duration of at least 1 second such as 3600, 60m or 1d' },
  adbServers: {
    env: 'CLOUDPHONE_ADB_SERVERS',
    expected: 'a comma-separated list of host:port addresses such as 127.0.0.1:5037,lab-1:5037',
  },
  localAdb: { env: 'CLOUDPHONE_LOCAL_ADB', expected: 'one of auto, on, off' },
  adbDevices: {
    env: 'CLOUDPHONE_ADB_DEVICES',
    expected: 'a comma-separated list of host:port addresses such as 198.51.100.20:5555',
  },
  virtualDevices: { env: 'CLOUDPHONE_VIRTUAL_DEVICES', expected: 'an integer from 0 to 200' },
  virtualProfile: {
    env: 'CLOUDPHONE_VIRTUAL_PROFILE',
    expected: 'a profile name of 1 to 64 letters, digits, dots, dashes or underscores',
  },
  maxPushBytes: { env: 'CLOUDPHONE_MAX_PUSH', expected: 'a size of at least 1kb such as 104857600, 512mb or 4gb' },
  maxAppBytes: { env: 'CLOUDPHONE_MAX_APP', expected: 'a size of at least 1kb such as 104857600 or 512mb' },
  installConcurrency: { env: 'CLOUDPHONE_INSTALL_CONCURRENCY', expected: 'an integer from 1 to 100' },
  billingTimeZone: { env: 'CLOUDPHONE_BILLING_TIME_ZONE', expected: 'an IANA time zone such as UTC or Europe/Berlin' },
  billingCheckSeconds: { env: 'CLOUDPHONE_BILLING_CHECK', expected: 'an integer number of seconds from 1 to 60' },
  smtpUrl: {
    env: 'CLOUDPHONE_SMTP_URL',
    expected: 'an SMTP URL such as smtp://user:password@mail.example.com:587 or smtps://mail.example.com',
    shown: maskedUrl,
  },
  mailFrom: { env: 'CLOUDPHONE_MAIL_FROM', expected: 'a sender such as cloudphone@example.com or "Farm <farm@example.com>"' },
  publicUrl: { env: 'CLOUDPHONE_PUBLIC_URL', expected: 'an http or https URL such as https://farm.example.com' },
  webhookAllowPrivate: { env: 'CLOUDPHONE_WEBHOOK_ALLOW_PRIVATE', expected: 'true or false' },
  webhookTimeoutSeconds: { env: 'CLOUDPHONE_WEBHOOK_TIMEOUT', expected: 'an integer number of seconds from 1 to 60' },
  leaseExpiryWarningMinutes: {
    env: 'CLOUDPHONE_LEASE_EXPIRY_WARNING',
    expected: 'an integer number of minutes from 0 (off) to 1440',
  },
  inboxRetentionDays: { env: 'CLOUDPHONE_INBOX_RETENTION', expected: 'an integer number of days from 1 to 3650' },
  streamHeartbeatSeconds: { env: 'CLOUDPHONE_STREAM_HEARTBEAT', expected: 'an integer number of seconds from 1 to 300' },
};

function defaults(env: NodeJS.ProcessEnv): ServerConfig {
  const xdgDataHome = env.XDG_DATA_HOME;
  const dataHome = xdgDataHome && isAbsolute(xdgDataHome) ? xdgDataHome : join(homedir(), '.local', 'share');
  return {
    host: '127.0.0.1',
    port: 8080,
    nodeName: defaultNodeName(),
    dataDir: join(dataHome, 'cloudphone'),
    logLevel: 'info',
    logFormat: 'auto',
    accessTokenTtlSeconds: 900,
    refreshTokenTtlSeconds: 30 * 86_400,
    bodyLimitBytes: 1024 ** 2,
    trustProxy: false,
    loginThrottle: { freeAttempts: 3, addressFreeAttempts: 20, maxDelaySeconds: 60, forgetAfterSeconds: 900 },
    idempotencyTtlSeconds: 86_400,
    adbServers: [],
    localAdb: 'auto',
    adbDevices: [],
    virtualDevices: 0,
    virtualProfile: 'virtual',
    maxPushBytes: 4 * 1024 ** 3,
    maxAppBytes: 512 * 1024 ** 2,
    installConcurrency: 16,
    billingTimeZone: 'UTC',
    billingCheckSeconds: 5,
    mailFrom: 'cloudphone <cloudphone@localhost>',
    webhookAllowPrivate: false,
    webhookTimeoutSeconds: 15,
    leaseExpiryWarningMinutes: 5,
    inboxRetentionDays: 30,
    streamHeartbeatSeconds: 15,
  };
}

/**
 * The server's configuration: each setting from `options` if given, else from its `CLOUDPHONE_*` variable in
 * `env` (empty counts as unset), else its default. Throws `ConfigError` on the first bad value.
 */
export function loadConfig(options: ConfigInput = {}, env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const raw: Record<string, unknown> = { ...defaults(env) };
  const labels: Record<string, string> = {};
  for (const [key, setting] of Object.entries(settings) as [keyof ServerConfig, Setting][]) {
    const fromEnv = setting.env ? env[setting.env] : undefined;
    if (options[key] !== undefined) {
      raw[key] = options[key];
      labels[key] = key;
    } else if (setting.env && fromEnv) {
      raw[key] = fromEnv;
      labels[key] = setting.env;
    } else {
      labels[key] = key;
    }
  }

  const parsed = configSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const key = parsed.error.issues[0]?.path[0] as keyof ServerConfig;
  const setting = settings[key];
  const value = setting.shown && typeof raw[key] === 'string' ? setting.shown(raw[key]) : raw[key];
  const got = setting.secret ? '' : `, got ${JSON.stringify(value)}`;
  throw new ConfigError(`${labels[key]}: expected ${setting.expected}${got}`);
}
