import { createHash, createHmac } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { openapiDocument } from '../generated/openapi.js';
import { operations, type OperationId } from '../generated/operations.js';
import { ApiError } from './errors.js';
import { unescapePointer } from './json-pointer.js';

/** A request whose first attempt began this long ago and never finished (a crash) may be run again. */
const ABANDONED_AFTER_MS = 60_000;
/** How often claims also delete every expired record. */
const PURGE_INTERVAL_MS = 60_000;

export interface IdempotentRequest {
  userId: string;
  key: string;
  operationId: OperationId;
  /** What makes two requests the same: the validated path, query and body. */
  input: { params: unknown; query: unknown; body: unknown };
  requestId: string;
}

export interface OperationResponse {
  status: number;
  body?: unknown;
}

export type IdempotentOutcome<R extends OperationResponse> =
  { replayed: false; response: R } | { replayed: true; response: OperationResponse };

/** JSON with object keys sorted at every level, so equal values hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * What identifies a request: an HMAC of the operation and its input keyed with the Idempotency-Key. The key is
 * stored only as a digest, so the record cannot be used to test guesses of a secret in the input (a password).
 */
function requestHash(request: IdempotentRequest): string {
  return createHmac('sha256', request.key)
    .update(`${request.operationId}\n${canonicalJson(request.input)}`)
    .digest('hex');
}

function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

type JsonObject = Record<string, unknown>;
/** Where a secret sits in a response body: property names, with `*` for every item of an array. */
type FieldPath = string[];

function resolveRef(node: JsonObject): JsonObject {
  if (typeof node.$ref !== 'string') return node;
  let target: unknown = openapiDocument;
  for (const segment of node.$ref.slice(2).split('/')) {
    target = (target as JsonObject)[unescapePointer(segment)];
  }
  return resolveRef(target as JsonObject);
}

/** The paths of the properties marked `x-secret: true` in a schema. */
function secretPaths(schema: JsonObject, prefix: FieldPath = []): FieldPath[] {
  const node = resolveRef(schema);
  const paths: FieldPath[] = [];
  for (const keyword of ['allOf', 'oneOf', 'anyOf']) {
    for (const part of (node[keyword] ?? []) as JsonObject[]) paths.push(...secretPaths(part, prefix));
  }
  if (node.items !== undefined) paths.push(...secretPaths(node.items as JsonObject, [...prefix, '*']));
  for (const [name, property] of Object.entries((node.properties ?? {}) as Record<string, JsonObject>)) {
    if (resolveRef(property)['x-secret'] === true) paths.push([...prefix, name]);
    else paths.push(...secretPaths(property, [...prefix, name]));
  }
  return paths;
}

const secretsByOperation = new Map<OperationId, FieldPath[]>();

/** The secret fields of an operation's success response, from the contract (`x-secret: true`). */
export function responseSecrets(operationId: OperationId): FieldPath[] {
  let paths = secretsByOperation.get(operationId);
  if (paths === undefined) {
    const { method, path, successStatus } = operations[operationId];
    const item = (openapiDocument.paths as Record<string, Record<string, JsonObject>>)[path]![method.toLowerCase()]!;
    const response = resolveRef((item.responses as Record<string, JsonObject>)[String(successStatus)]!);
    const schema = (response.content as Record<string, JsonObject> | undefined)?.['application/json']?.schema;
    paths = schema === undefined ? [] : secretPaths(schema as JsonObject);
    secretsByOperation.set(operationId, paths);
  }
  return paths;
}

/** A copy of `value` without the fields at `paths`. */
export function withoutSecrets(value: unknown, paths: FieldPath[]): unknown {
  if (paths.length === 0 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    const inner = paths.filter((p) => p[0] === '*').map((p) => p.slice(1));
    return value.map((item) => withoutSecrets(item, inner));
  }
  const out: JsonObject = {};
  for (const [name, member] of Object.entries(value)) {
    const below = paths.filter((p) => p[0] === name);
    if (below.some((p) => p.length === 1)) continue;
    out[name] = withoutSecrets(member, below.map((p) => p.slice(1)));
  }
  return out;
}

/** What is kept of a final response: a success without its secrets. */
function storable(operationId: OperationId, response: OperationResponse): unknown {
  return response.status < 300 ? withoutSecrets(response.body, responseSecrets(operationId)) : response.body;
}

function secretNotReplayable(stored: unknown): ApiError {
  const id = stored !== null && typeof stored === 'object' && 'id' in stored ? String(stored.id) : undefined;
  const created = `The first request with this Idempotency-Key ${id === undefined ? 'succeeded' : `created ${id}`}`;
  return new ApiError(
    'idempotency_secret_not_replayable',
    `${created}, but its response held a secret, which is shown once and never stored. ` +
      `If that response was lost, revoke ${id ?? 'what it created'} and repeat the request with a new key.`,
  );
}

/**
 * A final answer is kept and replayed: a success or a client error. Server errors and 429s say "try again", so the
 * key is released for the retry to run afresh.
 */
function isFinal(status: number): boolean {
  return status < 500 && status !== 429;
}

/**
 * `Idempotency-Key` handling, per (user, key): the first request claims the key by inserting an in-progress row
 * (the primary key settles races), runs, and stores its final status and body. A retry with the same request gets
 * the stored response; with another request, `idempotency_key_reused`; while the first still runs,
 * `idempotency_key_in_use`. Records expire after the configured TTL and are purged as new keys are claimed.
 *
 * A success body's secrets (`x-secret` in the contract, such as a new API token's) are never stored, so a success
 * that had one is not replayed: the retry gets `idempotency_secret_not_replayable`, naming what was created.
 */
export class IdempotencyStore {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #ttlMs: number;
  /** When expired records were last deleted (they are looked up by key, so stale ones only take space). */
  #purgedAt = Number.NEGATIVE_INFINITY;

  constructor(db: Kysely<DB>, clock: () => Date, ttlSeconds: number) {
    this.#db = db;
    this.#clock = clock;
    this.#ttlMs = ttlSeconds * 1000;
  }

  async run<R extends OperationResponse>(
    received: IdempotentRequest,
    handle: () => Promise<R>,
  ): Promise<IdempotentOutcome<R>> {
    const request = { ...received, key: keyDigest(received.key) };
    const claim = await this.#claim(request, requestHash(received));
    if ('stored' in claim) return { replayed: true, response: claim.stored };
    let response: R;
    try {
      response = await handle();
    } catch (error) {
      if (error instanceof ApiError && isFinal(error.status)) {
        await this.#finish(request, claim.claimedAt, {
          status: error.status,
          body: error.toProblem(request.requestId),
        });
      } else {
        await this.#release(request, claim.claimedAt);
      }
      throw error;
    }
    if (isFinal(response.status)) await this.#finish(request, claim.claimedAt, response);
    else await this.#release(request, claim.claimedAt);
    return { replayed: false, response };
  }

  /**
   * Claims the key for this request, or returns the response stored for it. A claim is identified by its
   * `created_at`, so an attempt that was taken over cannot overwrite the record of the one that took it over.
   */
  async #claim(
    request: IdempotentRequest,
    hash: string,
  ): Promise<{ claimedAt: string } | { stored: OperationResponse }> {
    const now = this.#clock();
    const nowIso = now.toISOString();
    if (now.getTime() - this.#purgedAt >= PURGE_INTERVAL_MS) {
      this.#purgedAt = now.getTime();
      await this.#db.deleteFrom('idempotency_keys').where('expires_at', '<=', nowIso).execute();
    }

    const inserted = await this.#db
      .insertInto('idempotency_keys')
      .values({
        user_id: request.userId,
        key: request.key,
        operation_id: request.operationId,
        request_hash: hash,
        status: null,
        response_body: null,
        created_at: nowIso,
        expires_at: new Date(now.getTime() + this.#ttlMs).toISOString(),
      })
      .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows === 1n) return { claimedAt: nowIso };

    const row = await this.#db
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('user_id', '=', request.userId)
      .where('key', '=', request.key)
      .executeTakeFirst();
    if (!row) return this.#claim(request, hash);
    if (row.expires_at <= nowIso) {
      // Expired but not yet purged: as if it were gone.
      await this.#db
        .deleteFrom('idempotency_keys')
        .where('user_id', '=', request.userId)
        .where('key', '=', request.key)
        .where('expires_at', '<=', nowIso)
        .execute();
      return this.#claim(request, hash);
    }
    if (row.request_hash !== hash) {
      throw new ApiError('idempotency_key_reused', 'This Idempotency-Key was used with a different request.');
    }
    if (row.status !== null) {
      const body: unknown = row.response_body === null ? undefined : JSON.parse(row.response_body);
      if (row.status < 300 && responseSecrets(request.operationId).length > 0) throw secretNotReplayable(body);
      return { stored: { status: row.status, body } };
    }
    if (now.getTime() - Date.parse(row.created_at) >= ABANDONED_AFTER_MS) {
      const taken = await this.#db
        .updateTable('idempotency_keys')
        .set({ created_at: nowIso, expires_at: new Date(now.getTime() + this.#ttlMs).toISOString() })
        .where('user_id', '=', request.userId)
        .where('key', '=', request.key)
        .where('created_at', '=', row.created_at)
        .where('status', 'is', null)
        .executeTakeFirst();
      if (taken.numUpdatedRows === 1n) return { claimedAt: nowIso };
    }
    throw new ApiError('idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed.');
  }

  async #finish(request: IdempotentRequest, claimedAt: string, response: OperationResponse): Promise<void> {
    await this.#db
      .updateTable('idempotency_keys')
      .set({
        status: response.status,
        response_body:
          response.body === undefined ? null : JSON.stringify(storable(request.operationId, response)),
      })
      .where('user_id', '=', request.userId)
      .where('key', '=', request.key)
      .where('created_at', '=', claimedAt)
      .execute();
  }

  async #release(request: IdempotentRequest, claimedAt: string): Promise<void> {
    await this.#db
      .deleteFrom('idempotency_keys')
      .where('user_id', '=', request.userId)
      .where('key', '=', request.key)
      .where('created_at', '=', claimedAt)
      .execute();
  }
}
