import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { DB } from '../../src/db/schema.js';
import type { components } from '../../src/generated/types.js';
import { operations, type OperationId } from '../../src/generated/operations.js';
import type { Role } from '../../src/http/access.js';
import { startServer, type RunningServer, type StartOptions } from '../../src/index.js';
import { ManualClock } from '../helpers/clock.js';
import { expectContractResponse } from '../helpers/contract.js';
import { createServerDatabase, readServerDatabase, type DatabaseReader } from '../helpers/database.js';

export const ADMIN_PASSWORD = 'admin-password-for-tests';
export const PASSWORD = 'correct-horse-battery-staple';

type TokenPair = components['schemas']['TokenPair'];

export interface ApiResponse {
  status: number;
  headers: Headers;
  contentType: string | null;
  /** The parsed JSON, already checked against the contract. */
  body: any;
}

export interface CallOptions {
  path?: Record<string, string>;
  query?: Record<string, string | number | boolean | string[]>;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is, instead of `body` (bytes or a stream for `application/octet-stream` uploads). */
  rawBody?: string | Uint8Array | ReadableStream<Uint8Array>;
  /** Read a successful response's body as bytes (a Buffer in `body`), not as text or JSON. */
  binary?: boolean;
  /** Aborts the request (and a streamed upload still in progress). */
  signal?: AbortSignal;
  contentType?: string;
  /** A bearer token; none for an anonymous call. */
  token?: string | undefined;
  headers?: Record<string, string>;
}

export interface Caller {
  username: string;
  userId: string;
  password: string;
  pair: TokenPair;
  token: string;
}

export type Counts = Record<'users' | 'sessions' | 'api_tokens' | 'events' | 'idempotency_keys', number>;

/**
 * A real server on a random port over a fresh data directory and a fresh database on the run's engine (its SQLite
 * file, or a PostgreSQL schema of its own), with a manual clock and a read-only view of that database.
 */
export interface Api {
  url: string;
  clock: ManualClock;
  server: RunningServer;
  /** The server's database, read-only. */
  database: DatabaseReader;
  admin: Caller;
  /** Calls an operation over HTTP; the response must be one the contract declares. */
  call(operationId: OperationId, options?: CallOptions): Promise<ApiResponse>;
  /** Creates a user (as the admin) and logs them in. */
  addCaller(role: Role, username?: string): Promise<Caller>;
  login(username: string, password: string): Promise<TokenPair>;
  counts(): Promise<Counts>;
  close(): Promise<void>;
}

let sequence = 0;

/** A username no other call in this process has used. */
export function uniqueUsername(stem = 'user'): string {
  sequence += 1;
  return `${stem}-${process.pid}-${sequence}`;
}

function expandPath(template: string, path: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = path[name];
    if (value === undefined) throw new Error(`no value for path parameter ${name}`);
    return encodeURIComponent(value);
  });
}

function queryString(query: CallOptions['query']): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

function checkAgainstContract(operationId: OperationId, response: ApiResponse): void {
  expectContractResponse(operationId, { status: response.status, contentType: response.contentType, body: response.body });
}

/** The number of rows in each of `tables`. */
export async function countRows<T extends keyof DB>(reader: DatabaseReader, tables: T[]): Promise<Record<T, number>> {
  const counts = await Promise.all(
    tables.map(async (table) => {
      const { rows } = await sql<{ n: number }>`select count(*) as n from ${sql.table(table)}`.execute(reader.db);
      return [table, Number(rows[0]!.n)] as const;
    }),
  );
  return Object.fromEntries(counts) as Record<T, number>;
}

export async function startApi(options: StartOptions = {}): Promise<Api> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cloudphone-api-'));
  const clock = new ManualClock(new Date());
  const target = await createServerDatabase();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    ...(target.databaseUrl === undefined ? {} : { databaseUrl: target.databaseUrl }),
    logLevel: 'silent',
    adminPassword: ADMIN_PASSWORD,
    clock: clock.now,
    // Never the machine's ADB server at 127.0.0.1:5037.
    localAdb: 'off',
    ...options,
  }).catch(async (error: unknown) => {
    await target.drop();
    throw error;
  });
  const database = readServerDatabase(server.config);

  async function call(operationId: OperationId, call: CallOptions = {}): Promise<ApiResponse> {
    const meta = operations[operationId];
    const headers: Record<string, string> = { accept: 'application/json', ...call.headers };
    if (call.token !== undefined) headers.authorization = `Bearer ${call.token}`;
    const payload = call.rawBody ?? (call.body === undefined ? undefined : JSON.stringify(call.body));
    if (payload !== undefined) headers['content-type'] = call.contentType ?? 'application/json';
    const response = await fetch(`${server.url}${expandPath(meta.path, call.path ?? {})}${queryString(call.query)}`, {
      method: meta.method,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
      ...(payload instanceof ReadableStream ? { duplex: 'half' } : {}),
      ...(call.signal === undefined ? {} : { signal: call.signal }),
    } as RequestInit);
    const contentType = response.headers.get('content-type');
    const isJson = /\bjson\b/.test(contentType ?? '');
    if (call.binary === true && !isJson) {
      const bytes = Buffer.from(await response.arrayBuffer());
      const result: ApiResponse = {
        status: response.status,
        headers: response.headers,
        contentType,
        body: bytes,
      };
      checkAgainstContract(operationId, { ...result, body: undefined });
      return result;
    }
    const text = await response.text();
    const result: ApiResponse = {
      status: response.status,
      headers: response.headers,
      contentType: text === '' ? null : contentType,
      // Binary responses (files, screenshots) stay text; everything else is JSON.
      body: text === '' ? undefined : isJson ? JSON.parse(text) : text,
    };
    checkAgainstContract(operationId, result);
    return result;
  }

  async function login(username: string, password: string): Promise<TokenPair> {
    const response = await call('login', { body: { username, password } });
    if (response.status !== 200)
      throw new Error(`login as ${username}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body as TokenPair;
  }

  const adminPair = await login('admin', ADMIN_PASSWORD);
  const admin: Caller = {
    username: 'admin',
    userId: adminPair.user.id,
    password: ADMIN_PASSWORD,
    pair: adminPair,
    token: adminPair.accessToken,
  };

  return {
    url: server.url,
    clock,
    server,
    database,
    admin,
    call,
    login,
    async addCaller(role, username = uniqueUsername(role)) {
      const created = await call('createUser', { token: admin.token, body: { username, password: PASSWORD, role } });
      if (created.status !== 201)
        throw new Error(`create ${username}: ${created.status} ${JSON.stringify(created.body)}`);
      const pair = await login(username, PASSWORD);
      return { username, userId: pair.user.id, password: PASSWORD, pair, token: pair.accessToken };
    },
    counts: () => countRows(database, ['users', 'sessions', 'api_tokens', 'events', 'idempotency_keys']),
    async close() {
      await database.close();
      await server.close();
      await target.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
