import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { buildApp } from '../../src/app.js';
import { loadConfig, type ServerConfig } from '../../src/config.js';
import { openConfigured, type Database } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { operations, type OperationId } from '../../src/generated/operations.js';
import type { Authenticator } from '../../src/http/auth.js';
import { ApiError } from '../../src/http/errors.js';
import type { HandlerInput, Handlers, Principal } from '../../src/http/handler.js';
import { createLogger } from '../../src/logger.js';
import { createServerDatabase } from '../helpers/database.js';

/** Bearer tokens the fake authenticator knows. */
export const principals = {
  admin: {
    userId: 'usr_01JDX2ZP6W3Q8M1N5B7V9C2X4K',
    username: 'admin',
    role: 'admin',
    scopes: ['read', 'write', 'admin'],
    method: 'session',
  },
  readOnlyAdmin: {
    userId: 'usr_01JDX2ZP6W3Q8M1N5B7V9C2X4K',
    username: 'admin',
    role: 'admin',
    scopes: ['read'],
    method: 'api_token',
    tokenId: 'tok_01JDX4A8P3C5V7B9N2M4K6J8H0',
  },
  member: {
    userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
    username: 'alice',
    role: 'member',
    scopes: ['read', 'write'],
    method: 'session',
  },
  viewerReadOnly: {
    userId: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZB',
    username: 'bob',
    role: 'viewer',
    scopes: ['read'],
    method: 'api_token',
    tokenId: 'tok_01JDX4A8P3C5V7B9N2M4K6J8H1',
  },
} satisfies Record<string, Principal>;

export type Caller = keyof typeof principals;

export const fakeAuthenticator: Authenticator = {
  async authenticate(token) {
    const principal = principals[token as Caller];
    if (!principal) throw new ApiError('invalid_token', 'Unknown token.');
    return principal;
  },
};

export function bearer(caller: Caller): { authorization: string } {
  return { authorization: `Bearer ${caller}` };
}

export type AnyInput = HandlerInput<OperationId>;
export type FakeHandler = (
  input: AnyInput,
) => Promise<{ status: number; body?: unknown; headers?: Record<string, string> }>;

/** A handler per operation answering its success status with `{ operationId }` (no body for 204). */
export function fakeHandlers(overrides: Partial<Record<OperationId, FakeHandler>> = {}): Handlers {
  const handlers: Record<string, FakeHandler> = {};
  for (const id of Object.keys(operations) as OperationId[]) {
    const status = operations[id].successStatus;
    handlers[id] = overrides[id] ?? (async () => (status === 204 ? { status } : { status, body: { operationId: id } }));
  }
  return handlers as unknown as Handlers;
}

/** Collects log lines written by the logger. */
export class LogCapture implements DestinationStream {
  readonly lines: string[] = [];

  write(line: string): void {
    this.lines.push(line);
  }

  get entries(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  get text(): string {
    return this.lines.join('');
  }
}

export interface TestApp {
  app: FastifyInstance;
  database: Database;
  config: ServerConfig;
  logs: LogCapture;
  dataDir: string;
  close(): Promise<void>;
}

export interface TestAppOptions {
  handlers?: Handlers;
  clock?: () => Date;
  config?: Partial<ServerConfig>;
}

/**
 * An app over a migrated database on the run's engine (SQLite in its own temporary directory, or a PostgreSQL
 * schema of its own), with fake domains and captured logs.
 */
export async function testApp(options: TestAppOptions = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-platform-'));
  const target = await createServerDatabase();
  const config = loadConfig(
    { dataDir, ...(target.databaseUrl === undefined ? {} : { databaseUrl: target.databaseUrl }), logLevel: 'info', ...options.config },
    {},
  );
  const database = openConfigured(config);
  await migrateToLatest(database.db);
  const logs = new LogCapture();
  const app = buildApp({
    config,
    database,
    domains: { handlers: options.handlers ?? fakeHandlers(), authenticator: fakeAuthenticator },
    clock: options.clock ?? (() => new Date('2026-11-20T09:30:00Z')),
    logger: createLogger({ level: config.logLevel, node: config.nodeName, stream: logs }),
  });
  return {
    app,
    database,
    config,
    logs,
    dataDir,
    async close() {
      await app.close();
      await database.close();
      await target.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A promise with its resolver, to hold a handler until the test lets it go. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
