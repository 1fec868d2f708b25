import { sql, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { lockForTransaction } from '../../db/dialect.js';
import { newId } from '../../db/ids.js';
import type { DB, WebhookAttemptsTable, WebhookDeliveriesTable, WebhookEndpointsTable } from '../../db/schema.js';
import { appendEvent } from '../../events/log.js';
import type { Cause } from '../../events/types.js';
import type { components } from '../../generated/types.js';
import { ApiError, type FieldError } from '../../http/errors.js';
import type { Principal } from '../../http/handler.js';
import { decodeCursor, idPosition, likeLiteral, toPage, type Page } from '../../pagination.js';
import { newWebhookSecret, type SecretBox } from './secrets.js';
import { checkWebhookUrl } from './target.js';

type Schemas = components['schemas'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type WebhookEndpointWithSecret = Schemas['WebhookEndpointWithSecret'];
export type WebhookSecretRotation = Schemas['WebhookSecretRotation'];
export type WebhookDelivery = Schemas['WebhookDelivery'];
export type WebhookEndpointSummary = Schemas['WebhookEndpointSummary'];

export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;
type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;

export interface NewWebhookEndpoint {
  url: string;
  eventTypes?: string[] | undefined;
  description?: string | null | undefined;
  enabled?: boolean | undefined;
  scope?: 'own' | 'all' | undefined;
}

export interface WebhookEndpointPatch {
  url?: string | undefined;
  eventTypes?: string[] | undefined;
  description?: string | null | undefined;
  enabled?: boolean | undefined;
}

export interface WebhookDeliveryQuery {
  status?: 'pending' | 'delivered' | 'failed' | undefined;
  eventTypes?: string[] | undefined;
  since?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface WebhookServiceDeps {
  db: Kysely<DB>;
  clock: () => Date;
  /** Seals the signing secrets kept in the database. */
  secrets: SecretBox;
  /** Accept endpoints on loopback, private and link-local addresses (CLOUDPHONE_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate: boolean;
  /** Tells the dispatcher that deliveries may be due now. */
  wake: () => void;
}

/** An event type (`lease.expired`) or a family of them (`lease.*`), as `listEvents` filters by. */
const EVENT_TYPE_PATTERN = /^[a-z_]+(\.[a-z_]+)*(\.\*)?$/;
const MAX_PATTERN_LENGTH = 64;
const MAX_PATTERNS = 50;
/** How long deliveries are still signed with the secret a rotation replaced, for receivers to switch over. */
const PREVIOUS_SECRET_TTL_MS = 24 * 3600 * 1000;
const DEFAULT_TEST_MESSAGE = 'A test event from cloudphone.';

const endpointPosition = idPosition(/^whe_[0-9A-Z]{26}$/);
/** Deliveries are listed by event id, newest first. */
const deliveryPosition = idPosition(/^evt_[0-9A-Z]{26}$/);

/** The patterns as given, checked: `field` names them in errors. */
function checkPatterns(patterns: readonly string[], field: string): string[] {
  const errors: FieldError[] = [];
  if (patterns.length > MAX_PATTERNS) errors.push({ field, message: `must list at most ${MAX_PATTERNS} types` });
  patterns.forEach((pattern, index) => {
    if (pattern.length > MAX_PATTERN_LENGTH || !EVENT_TYPE_PATTERN.test(pattern)) {
      errors.push({ field: `${field}/${index}`, message: 'must be an event type or a family written `family.*`' });
    } else if (patterns.indexOf(pattern) !== index) {
      errors.push({ field: `${field}/${index}`, message: 'is listed twice' });
    }
  });
  if (errors.length > 0) throw new ApiError('validation_failed', 'The event types are invalid.', { errors });
  return [...patterns];
}

/** The rows that let the outbox match an event's type in the index: a family's prefix ends with its dot. */
function typeRows(endpointId: string, patterns: readonly string[]) {
  return patterns.map((pattern) => ({
    endpoint_id: endpointId,
    pattern,
    prefix: pattern.endsWith('.*') ? pattern.slice(0, -1) : null,
  }));
}

export function toWebhookEndpoint(row: WebhookEndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    userId: row.user_id,
    scope: row.scope,
    url: row.url,
    description: row.description,
    eventTypes: JSON.parse(row.event_types) as string[],
    enabled: row.enabled === 1,
    disabledReason: row.disabled_reason,
    failingSince: row.failing_since,
    secretRotatedAt: row.secret_rotated_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toWebhookEndpointSummary(row: WebhookEndpointRow): WebhookEndpointSummary {
  return { id: row.id, userId: row.user_id, url: row.url, scope: row.scope, enabled: row.enabled === 1 };
}

export function toWebhookDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    eventType: row.event_type,
    status: row.status,
    attempts: Number(row.attempts),
    nextAttemptAt: row.next_attempt_at,
    lastAttemptAt: row.last_attempt_at,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    createdAt: row.created_at,
    deliveredAt: row.delivered_at,
  };
}

function toAttempt(row: WebhookAttemptRow): NonNullable<WebhookDelivery['attemptLog']>[number] {
  return {
    number: Number(row.number),
    trigger: row.trigger,
    startedAt: row.started_at,
    statusCode: row.status_code,
    latencyMs: Number(row.latency_ms),
    error: row.error,
    responseExcerpt: row.response_excerpt,
  };
}

function notFound(id: string): ApiError {
  return new ApiError('not_found', `No webhook endpoint ${id}.`);
}

/**
 * Webhook endpoints and their deliveries. Members manage their own endpoints, which receive the events they may see;
 * admins manage everyone's and may create endpoints for every event (scope `all`). Others' endpoints are reported as
 * not found. Signing secrets are made here, shown once, and kept sealed.
 */
export class WebhookService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #secrets: SecretBox;
  readonly #allowPrivate: boolean;
  readonly #wake: () => void;

  constructor(deps: WebhookServiceDeps) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#secrets = deps.secrets;
    this.#allowPrivate = deps.allowPrivate;
    this.#wake = deps.wake;
  }

  /** The caller's endpoints, oldest first; an admin's list holds everyone's, or with `userId` one user's. */
  async list(principal: Principal, query: { userId?: string | undefined; cursor?: string | undefined; limit: number }): Promise<Page<WebhookEndpoint>> {
    if (principal.role !== 'admin' && query.userId !== undefined && query.userId !== principal.userId) {
      throw new ApiError('insufficient_role', "Listing other users' webhook endpoints needs the admin role.");
    }
    const owner = principal.role === 'admin' ? query.userId : principal.userId;
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, endpointPosition);
    let select = this.#db.selectFrom('webhook_endpoints').selectAll();
    if (owner !== undefined) select = select.where('user_id', '=', owner);
    if (after !== undefined) select = select.where('id', '>', after.id);
    const rows = await select.orderBy('id').limit(query.limit + 1).execute();
    return toPage(rows, query.limit, toWebhookEndpoint, (row) => ({ id: row.id }));
  }

  async get(principal: Principal, id: string): Promise<WebhookEndpoint> {
    return toWebhookEndpoint(await this.#find(this.#db, principal, id));
  }

  async create(principal: Principal, input: NewWebhookEndpoint, cause: Cause): Promise<WebhookEndpointWithSecret> {
    const scope = input.scope ?? 'own';
    if (scope === 'all' && principal.role !== 'admin') {
      throw new ApiError('insufficient_role', 'An endpoint for every event (scope all) needs the admin role.');
    }
    const patterns = checkPatterns(input.eventTypes ?? [], '/eventTypes');
    await checkWebhookUrl(input.url, { allowPrivate: this.#allowPrivate });
    const secret = newWebhookSecret();
    const now = this.#clock();
    const at = now.toISOString();
    const enabled = input.enabled ?? true;
    const row: WebhookEndpointRow = {
      id: newId('whe', now.getTime()),
      user_id: principal.userId,
      scope,
      url: input.url,
      description: input.description ?? null,
      event_types: JSON.stringify(patterns),
      enabled: enabled ? 1 : 0,
      disabled_reason: enabled ? null : 'manual',
      failing_since: null,
      secret: this.#secrets.seal(secret),
      previous_secret: null,
      previous_secret_expires_at: null,
      secret_rotated_at: null,
      created_at: at,
      updated_at: at,
    };
    await this.#db.transaction().execute(async (trx) => {
      await trx.insertInto('webhook_endpoints').values(row).execute();
      if (patterns.length > 0) await trx.insertInto('webhook_endpoint_types').values(typeRows(row.id, patterns)).execute();
      await this.#record(trx, 'webhook.endpoint_created', row, cause, now);
    });
    this.#wake();
    return { ...toWebhookEndpoint(row), secret };
  }

  /** Enabling clears why the endpoint was disabled and since when it was failing. */
  async update(principal: Principal, id: string, patch: WebhookEndpointPatch, cause: Cause): Promise<WebhookEndpoint> {
    const patterns = patch.eventTypes === undefined ? undefined : checkPatterns(patch.eventTypes, '/eventTypes');
    if (patch.url !== undefined) await checkWebhookUrl(patch.url, { allowPrivate: this.#allowPrivate });
    const row = await this.#db.transaction().execute(async (trx) => {
      await lockForTransaction(trx, `webhook_endpoint ${id}`);
      const current = await this.#find(trx, principal, id);
      const now = this.#clock();
      const next: WebhookEndpointRow = { ...current, updated_at: now.toISOString() };
      if (patch.url !== undefined) next.url = patch.url;
      if (patch.description !== undefined) next.description = patch.description;
      if (patterns !== undefined) next.event_types = JSON.stringify(patterns);
      if (patch.enabled === true) {
        Object.assign(next, { enabled: 1, disabled_reason: null, failing_since: null });
      } else if (patch.enabled === false && current.enabled === 1) {
        Object.assign(next, { enabled: 0, disabled_reason: 'manual' });
      }
      await trx
        .updateTable('webhook_endpoints')
        .set({
          url: next.url,
          description: next.description,
          event_types: next.event_types,
          enabled: next.enabled,
          disabled_reason: next.disabled_reason,
          failing_since: next.failing_since,
          updated_at: next.updated_at,
        })
        .where('id', '=', id)
        .execute();
      if (patterns !== undefined) {
        await trx.deleteFrom('webhook_endpoint_types').where('endpoint_id', '=', id).execute();
        if (patterns.length > 0) await trx.insertInto('webhook_endpoint_types').values(typeRows(id, patterns)).execute();
      }
      await this.#record(trx, 'webhook.endpoint_updated', next, cause, now);
      return next;
    });
    this.#wake();
    return toWebhookEndpoint(row);
  }

  /** Deletes the endpoint with its deliveries and their attempts. */
  async delete(principal: Principal, id: string, cause: Cause): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await lockForTransaction(trx, `webhook_endpoint ${id}`);
      const row = await this.#find(trx, principal, id);
      await trx.deleteFrom('webhook_endpoints').where('id', '=', id).execute();
      await this.#record(trx, 'webhook.endpoint_deleted', row, cause, this.#clock());
    });
    this.#wake();
  }

  /**
   * Replaces the signing secret. The replaced one keeps signing deliveries, second, for 24 hours; a secret replaced
   * before that is dropped at once.
   */
  async rotateSecret(principal: Principal, id: string, cause: Cause): Promise<WebhookSecretRotation> {
    const secret = newWebhookSecret();
    const rotation = await this.#db.transaction().execute(async (trx) => {
      await lockForTransaction(trx, `webhook_endpoint ${id}`);
      const current = await this.#find(trx, principal, id);
      const now = this.#clock();
      const at = now.toISOString();
      const expires = new Date(now.getTime() + PREVIOUS_SECRET_TTL_MS).toISOString();
      const next: WebhookEndpointRow = {
        ...current,
        secret: this.#secrets.seal(secret),
        previous_secret: current.secret,
        previous_secret_expires_at: expires,
        secret_rotated_at: at,
        updated_at: at,
      };
      await trx
        .updateTable('webhook_endpoints')
        .set({
          secret: next.secret,
          previous_secret: next.previous_secret,
          previous_secret_expires_at: next.previous_secret_expires_at,
          secret_rotated_at: next.secret_rotated_at,
          updated_at: next.updated_at,
        })
        .where('id', '=', id)
        .execute();
      await this.#record(trx, 'webhook.endpoint_secret_rotated', next, cause, now);
      return { secret, previousSecretExpiresAt: expires };
    });
    this.#wake();
    return rotation;
  }

  /** The endpoint's deliveries, newest first. */
  async listDeliveries(principal: Principal, id: string, query: WebhookDeliveryQuery): Promise<Page<WebhookDelivery>> {
    await this.#find(this.#db, principal, id);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, deliveryPosition);
    const patterns = query.eventTypes ?? [];
    let select = this.#db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', id);
    if (query.status !== undefined) select = select.where('status', '=', query.status);
    if (patterns.length > 0) {
      select = select.where((eb) =>
        eb.or(
          patterns.map((pattern) =>
            pattern.endsWith('.*')
              ? sql<SqlBool>`${sql.ref('event_type')} like ${`${likeLiteral(pattern.slice(0, -1))}%`} escape '\\'`
              : eb('event_type', '=', pattern),
          ),
        ),
      );
    }
    if (query.since !== undefined) select = select.where('created_at', '>=', new Date(query.since).toISOString());
    if (after !== undefined) select = select.where('event_id', '<', after.id);
    const rows = await select.orderBy('event_id', 'desc').limit(query.limit + 1).execute();
    return toPage(rows, query.limit, toWebhookDelivery, (row) => ({ id: row.event_id }));
  }

  /** A delivery with its attempts, oldest first. */
  async getDelivery(principal: Principal, id: string, eventId: string): Promise<WebhookDelivery> {
    await this.#find(this.#db, principal, id);
    const row = await this.#findDelivery(this.#db, id, eventId);
    const attempts = await this.#db
      .selectFrom('webhook_attempts')
      .selectAll()
      .where('endpoint_id', '=', id)
      .where('event_id', '=', eventId)
      .orderBy('number')
      .execute();
    return { ...toWebhookDelivery(row), attemptLog: attempts.map(toAttempt) };
  }

  /**
   * Queues one more attempt of a delivery now, whatever its state; the dispatcher records it as `manual`. The count
   * of attempts goes on, so a delivery that had used up its schedule gets this one attempt.
   */
  async redeliver(principal: Principal, id: string, eventId: string): Promise<WebhookDelivery> {
    const row = await this.#db.transaction().execute(async (trx) => {
      const endpoint = await this.#find(trx, principal, id);
      if (endpoint.enabled !== 1) {
        throw new ApiError('webhook_endpoint_disabled', `Webhook endpoint ${id} is disabled; enable it to send it events.`);
      }
      await this.#findDelivery(trx, id, eventId);
      await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'pending', next_attempt_at: this.#clock().toISOString(), manual: 1 })
        .where('endpoint_id', '=', id)
        .where('event_id', '=', eventId)
        .execute();
      return this.#findDelivery(trx, id, eventId);
    });
    this.#wake();
    return toWebhookDelivery(row);
  }

  /** Queues every failed delivery of the endpoint created at or after `since` again, now; returns how many. */
  async recover(principal: Principal, id: string, since: string): Promise<number> {
    await this.#find(this.#db, principal, id);
    const result = await this.#db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', next_attempt_at: this.#clock().toISOString(), manual: 1 })
      .where('endpoint_id', '=', id)
      .where('status', '=', 'failed')
      .where('created_at', '>=', new Date(since).toISOString())
      .executeTakeFirst();
    const requeued = Number(result.numUpdatedRows);
    if (requeued > 0) this.#wake();
    return requeued;
  }

  /** Appends a `webhook.test` event about the endpoint, which the outbox queues for it alone. */
  async sendTestEvent(principal: Principal, id: string, message: string | undefined, cause: Cause): Promise<string> {
    const eventId = await this.#db.transaction().execute(async (trx) => {
      const endpoint = await this.#find(trx, principal, id);
      if (endpoint.enabled !== 1) {
        throw new ApiError('webhook_endpoint_disabled', `Webhook endpoint ${id} is disabled; enable it to send it events.`);
      }
      return appendEvent(trx, {
        type: 'webhook.test',
        actor: cause.actor,
        subject: { type: 'webhook_endpoint', id },
        data: { endpointId: id, message: message ?? DEFAULT_TEST_MESSAGE },
        requestId: cause.requestId,
        occurredAt: this.#clock(),
      });
    });
    this.#wake();
    return eventId;
  }

  /** The endpoint, when the principal may see it: theirs, or any for an admin. */
  async #find(db: Kysely<DB>, principal: Principal, id: string): Promise<WebhookEndpointRow> {
    let select = db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id);
    if (principal.role !== 'admin') select = select.where('user_id', '=', principal.userId);
    const row = await select.executeTakeFirst();
    if (row === undefined) throw notFound(id);
    return row;
  }

  async #findDelivery(db: Kysely<DB>, id: string, eventId: string): Promise<WebhookDeliveryRow> {
    const row = await db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('endpoint_id', '=', id)
      .where('event_id', '=', eventId)
      .executeTakeFirst();
    if (row === undefined) throw new ApiError('not_found', `Webhook endpoint ${id} has no delivery of event ${eventId}.`);
    return row;
  }

  async #record(
    trx: Kysely<DB>,
    type: 'webhook.endpoint_created' | 'webhook.endpoint_updated' | 'webhook.endpoint_deleted' | 'webhook.endpoint_secret_rotated',
    row: WebhookEndpointRow,
    cause: Cause,
    at: Date,
  ): Promise<void> {
    await appendEvent(trx, {
      type,
      actor: cause.actor,
      subject: { type: 'webhook_endpoint', id: row.id },
      data: { endpoint: toWebhookEndpointSummary(row) },
      requestId: cause.requestId,
      occurredAt: at,
    });
  }
}
