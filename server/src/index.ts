import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { buildApp } from './app.js';
import { loadConfig, type ConfigInput, type LogFormat, type ServerConfig } from './config.js';
import { openConfigured, secureDataDir, type Database } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { LoneNode, type Cluster } from './cluster/cluster.js';
import { PostgresCluster } from './cluster/postgres.js';
import { createDomains, type Domains } from './domains.js';
import { createLogger } from './logger.js';

export { buildApp, type AppDomains, type AppOptions } from './app.js';
export {
  ConfigError,
  loadConfig,
  type ConfigInput,
  type LoginThrottle,
  type LogFormat,
  type LogLevel,
  type ServerConfig,
} from './config.js';
export { openConfigured, openDatabase, openDataDir, openPostgres, type Database } from './db/database.js';
export { migrateToLatest } from './db/migrate.js';
export type { Authenticator } from './http/auth.js';
export { ApiError, errorCatalogue, type ErrorCode, type FieldError, type Problem } from './http/errors.js';
export type { Handlers, Principal, RequestContext } from './http/handler.js';
export { createLogger, humanLogStream } from './logger.js';

export interface StartOptions extends ConfigInput {
  /** The time source of the domains and idempotency records; tests inject one. */
  clock?: () => Date;
  /** Where log lines go; standard output by default. With a stream, the `auto` log format is JSON. */
  logStream?: DestinationStream;
}

export interface RunningServer {
  /** The base URL to reach the server, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The port listened on (the one chosen by the system when `port` was 0). */
  port: number;
  app: FastifyInstance;
  config: ServerConfig;
  /** The admin created on the first start of an empty data directory, with its one-time password. */
  initialAdmin: { username: string; password: string } | null;
  /** Graceful shutdown: stop accepting, finish in-flight requests, checkpoint and close the database. */
  close(): Promise<void>;
}

/** A host to reach a server listening on `host`: a wildcard address is reached through loopback. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function running(
  app: FastifyInstance,
  database: Database,
  domains: Domains,
  cluster: Cluster,
  config: ServerConfig,
  initialAdmin: RunningServer['initialAdmin'],
): RunningServer {
  const { port } = app.server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${reachableHost(config.host)}:${port}`,
    port,
    app,
    config,
    initialAdmin,
    close() {
      // The leadership first (another node takes over at once), then HTTP (in-flight requests finish, long polls
      // are answered, WebSockets close), then the devices, then the database.
      closing ??= cluster
        .close()
        .then(() => Promise.all([app.close(), domains.drain()]))
        .then(() => domains.close())
        .then(() => database.close());
      return closing;
    },
  };
}

/**
 * Starts a server: loads the configuration (`options` over `CLOUDPHONE_*` variables over defaults), opens the
 * database (SQLite in the data directory, or PostgreSQL at `databaseUrl`, which must answer), listens, then
 * migrates it, creates the first admin on an empty database and starts the domains. The port comes before the
 * migrations so that a busy one fails the start before anything runs or is written; requests that arrive meanwhile
 * wait until the start is done.
 */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  const { clock = () => new Date(), logStream, ...settings } = options;
  const config = loadConfig(settings);
  const logger = createLogger({
    level: config.logLevel,
    node: config.nodeName,
    format: logFormat(config.logFormat, logStream === undefined && process.stdout.isTTY === true),
    ...(logStream ? { stream: logStream } : {}),
  });
  const database = openConfigured(config);
  try {
    await database.connect();
  } catch (error) {
    await database.close();
    throw error;
  }
  const startup = settlement();
  let app: FastifyInstance | undefined;
  let domains: Domains | undefined;
  const cluster: Cluster =
    config.databaseUrl === undefined
      ? new LoneNode(config.nodeName)
      : new PostgresCluster({ node: config.nodeName, url: config.databaseUrl, log: logger.child({ component: 'cluster' }) });
  try {
    // SQLite's opening secured it already; on PostgreSQL it still holds the ADB key and the uploaded apps.
    secureDataDir(config.dataDir);
    domains = await createDomains({ db: database.db, clock, config, log: logger, cluster });
    app = buildApp({
      config,
      database,
      domains,
      clock,
      logger,
      started: startup.promise,
      readiness: () => cluster.notReady(),
    });
    await app.listen({ host: config.host, port: config.port });
    const { applied } = await migrateToLatest(database.db);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
    const initialAdmin = await domains.bootstrap();
    await domains.start(`http://${reachableHost(config.host)}:${(app.server.address() as AddressInfo).port}`);
    await cluster.start();
    startup.resolve();
    return running(app, database, domains, cluster, config, initialAdmin);
  } catch (error) {
    startup.reject(error);
    await app?.close();
    await cluster.close();
    await domains?.close();
    await database.close();
    throw error;
  }
}

/** The format of the log lines: `auto` is `pretty` on a terminal and `json` elsewhere. */
export function logFormat(setting: LogFormat, terminal: boolean): 'json' | 'pretty' {
  if (setting === 'auto') return terminal ? 'pretty' : 'json';
  return setting;
}

/** A promise with its resolve and reject functions (`Promise.withResolvers` arrived in Node 22). */
function settlement(): { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}
