import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig } from './config.js';
import { copyData, CopyRefusedError } from './db/copy.js';
import { DATABASE_FILE, openConfigured, UnsupportedByEngineError } from './db/database.js';
import { maskedUrl } from './db/dialect.js';
import { migrateToLatest } from './db/migrate.js';
import { startServer } from './index.js';
import type { VirtualDeviceFlags } from './virtual-device/index.js';

const EXIT_ERROR = 1;
const EXIT_USAGE = 2;

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface StartFlags {
  host?: string;
  port?: string;
  nodeName?: string;
  dataDir?: string;
  databaseUrl?: string;
  logLevel?: string;
  logFormat?: string;
  virtualDevices?: string;
  adbServers?: string;
  adbDevices?: string;
}

async function start(flags: StartFlags): Promise<void> {
  const server = await startServer(flags);

  // Handlers go in before the server says it is up, so a signal sent on that cue is never missed. A second
  // signal during shutdown gets Node's default handling and ends the process at once.
  const stop = (signal: NodeJS.Signals) => {
    server.app.log.info({ signal }, 'shutting down');
    server.close().then(
      () => {
        process.exitCode = 0;
      },
      (error: unknown) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exitCode = EXIT_ERROR;
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  const admin = server.initialAdmin;
  say(
    [
      `cloudphone server listening on ${server.url}`,
      `API reference: ${server.url}/docs`,
      ...(admin
        ? [
            `Created user "${admin.username}" with password ${admin.password}`,
            `Log in: ${loginCommand(server.url, admin.username)}`,
          ]
        : []),
    ].join('\n'),
  );
}

/**
 * The command that logs in to this server: `npx cloudphone login …` when a `node_modules/.bin/cloudphone` sits
 * beside the server (a checkout, or a project that installed both packages), prefixed with `cd` to that folder
 * unless the server runs from there; `cloudphone login …` otherwise, for a CLI installed on its own.
 */
export function loginCommand(
  url: string,
  username: string,
  { cwd = process.cwd(), serverDir = fileURLToPath(new URL('..', import.meta.url)) } = {},
): string {
  const command = `cloudphone login --api-url ${url} --username ${username}`;
  const project = projectWithCli(serverDir);
  if (project === undefined) return command;
  return project === resolve(cwd) ? `npx ${command}` : `cd ${shellWord(project)} && npx ${command}`;
}

/** The nearest folder at or above `from` whose `node_modules/.bin` has `cloudphone`: where `npx cloudphone` runs it. */
function projectWithCli(from: string): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', '.bin', 'cloudphone'))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

interface DatabaseFlags {
  dataDir?: string;
  databaseUrl?: string;
}

async function migrate(flags: DatabaseFlags): Promise<void> {
  const database = openConfigured(loadConfig({ dataDir: flags.dataDir, databaseUrl: flags.databaseUrl }));
  try {
    await database.connect();
    const { applied } = await migrateToLatest(database.db);
    if (applied.length === 0) process.stdout.write('The database is up to date.\n');
    for (const name of applied) process.stdout.write(`Applied ${name}\n`);
  } finally {
    await database.close();
  }
}

async function backup(file: string, flags: DatabaseFlags & { force?: boolean }): Promise<void> {
  const config = loadConfig({ dataDir: flags.dataDir, databaseUrl: flags.databaseUrl });
  const database = openConfigured(config, { mustExist: true });
  const destination = resolve(file);
  try {
    const { pages } = await database.backup(destination, flags.force === true);
    process.stdout.write(`Backed up ${join(config.dataDir, DATABASE_FILE)} to ${destination} (${pages} pages)\n`);
  } finally {
    await database.close();
  }
}

async function copyDataCommand(flags: { from: string; to: string }): Promise<void> {
  const { source, tables, milliseconds } = await copyData(flags.from, flags.to);
  const width = Math.max(...tables.map((t) => t.name.length));
  const digits = Math.max(...tables.map((t) => String(t.rows).length));
  for (const { name, rows } of tables) process.stdout.write(`${name.padEnd(width)}  ${String(rows).padStart(digits)}\n`);
  const total = tables.reduce((sum, t) => sum + t.rows, 0);
  process.stdout.write(
    `Copied ${total} rows of ${tables.length} tables from ${source} to ${maskedUrl(flags.to)} ` +
      `in ${(milliseconds / 1000).toFixed(1)} s\n`,
  );
}

function program(): Command {
  const cli = new Command('cloudphone-server')
    .description('The cloudphone server: the HTTP API over one database, SQLite in a data directory or PostgreSQL.')
    .version(version)
    .exitOverride();
  const dataDirHelp = 'the data directory (env CLOUDPHONE_DATA_DIR, default $XDG_DATA_HOME/cloudphone)';
  const databaseUrlHelp =
    'keep the data in PostgreSQL, not SQLite: postgres://user:password@host:port/database (env CLOUDPHONE_DATABASE_URL)';

  cli
    .command('start')
    .description('Start the server; on first start, create the admin user and print its password.')
    .option('--host <host>', 'the address to listen on (env CLOUDPHONE_HOST, default 127.0.0.1)')
    .option('--port <port>', 'the port to listen on, 0 for any free one (env CLOUDPHONE_PORT, default 8080)')
    .option(
      '--node-name <name>',
      "this server's name in logs and metrics, 1 to 63 of A-Z a-z 0-9 . _ - (env CLOUDPHONE_NODE_NAME, default <host name>-<pid>)",
    )
    .option('--data-dir <dir>', dataDirHelp)
    .option('--database-url <url>', databaseUrlHelp)
    .option(
      '--log-level <level>',
      'fatal, error, warn, info, debug, trace or silent (env CLOUDPHONE_LOG_LEVEL, default info)',
    )
    .option(
      '--log-format <format>',
      'auto (readable on a terminal, JSON otherwise), json or pretty (env CLOUDPHONE_LOG_FORMAT, default auto)',
    )
    .option('--virtual-devices <count>', 'run this many in-process virtual devices (env CLOUDPHONE_VIRTUAL_DEVICES, default 0)')
    .option('--adb-servers <list>', 'ADB servers to track, host:port,… (env CLOUDPHONE_ADB_SERVERS)')
    .option('--adb-devices <list>', 'devices to reach directly over ADB-over-TCP, host:port,… (env CLOUDPHONE_ADB_DEVICES)')
    .action(start);

  cli
    .command('migrate')
    .description('Apply pending database migrations and print what was applied.')
    .option('--data-dir <dir>', dataDirHelp)
    .option('--database-url <url>', databaseUrlHelp)
    .action(migrate);

  cli
    .command('backup')
    .description('Copy the SQLite database to <file>; safe while the server runs. PostgreSQL: use pg_dump.')
    .argument('<file>', 'where to write the copy')
    .option('--data-dir <dir>', dataDirHelp)
    .option('--database-url <url>', databaseUrlHelp)
    .option('--force', 'replace <file> if it exists')
    .action(backup);

  cli
    .command('copy-data')
    .summary('Copy a SQLite install into an empty PostgreSQL database, keeping every id and the order.')
    .description(
      'Copy a SQLite install\'s whole database into an empty PostgreSQL database, keeping every id and the event ' +
        'log\'s order; stop the server first. The data directory (the ADB key adbkey, the uploaded apps in blobs/) ' +
        'stays in use: start the server on PostgreSQL with the same --data-dir, or copy those to its own.',
    )
    .requiredOption('--from <path>', `the SQLite database: its data directory, or the ${DATABASE_FILE} file itself`)
    .requiredOption('--to <url>', 'the PostgreSQL database, created and empty: postgres://user:password@host:port/database')
    .action(copyDataCommand);

  cli
    .command('virtual-device')
    .description(
      'Start virtual Android devices (ADB daemons) and print `host:port serial profile` for each; stop on SIGINT or ' +
        'SIGTERM. Devices on 5555, 5557, … show as emulators to an ADB server started afterwards.',
    )
    .option('--count <n>', 'how many devices, 1 to 64', integerIn(1, 64), 1)
    .option('--base-port <port>', 'the first port, then every other one; 0 for free ports', integerIn(0, 65535), 5555)
    .option('--profile <name>', 'virtual (default), pixel-8, pixel-6a, galaxy-s21, pixel-3 or emulator-x86_64')
    .option('--profile-file <file>', 'a JSON profile file instead of a built-in profile')
    .option('--host <host>', 'the address to listen on', '127.0.0.1')
    .action(async (flags: VirtualDeviceFlags) => (await import('./virtual-device/index.js')).runVirtualDevices(flags));

  return cli;
}

function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || number < min || number > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    }
    return number;
  };
}

/** A port already in use, in words that say which setting to change; undefined for other errors. */
function portInUse(error: unknown): string | undefined {
  const { code, address, port } = error as { code?: unknown; address?: unknown; port?: unknown };
  if (code !== 'EADDRINUSE' || typeof address !== 'string' || typeof port !== 'number') return undefined;
  return `${address.includes(':') ? `[${address}]` : address}:${port} is already in use (set CLOUDPHONE_PORT or --port)`;
}

/** Runs the command line `argv` (as `process.argv`), setting `process.exitCode` on failure. */
export async function run(argv: readonly string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
    } else if (error instanceof ConfigError) {
      say(error.message);
      process.exitCode = EXIT_USAGE;
    } else if (error instanceof UnsupportedByEngineError || error instanceof CopyRefusedError) {
      say(`cloudphone-server: ${error.message}`);
      process.exitCode = EXIT_USAGE;
    } else {
      say(`cloudphone-server: ${portInUse(error) ?? (error instanceof Error ? error.message : String(error))}`);
      process.exitCode = EXIT_ERROR;
    }
  }
}
