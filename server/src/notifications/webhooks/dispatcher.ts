import { setMaxListeners } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { Cluster } from '../../cluster/cluster.js';
import { lockForTransaction } from '../../db/dialect.js';
import { newId } from '../../db/ids.js';
import type { DB } from '../../db/schema.js';
import { appendEvent, type EventRow } from '../../events/log.js';
import { eventJson } from '../../events/service.js';
import { systemCause } from '../../events/types.js';
import { FAILING_ENDPOINT_DISABLED_AFTER_SECONDS, nextAttemptAt } from './schedule.js';
import type { SecretBox } from './secrets.js';
import { toWebhookEndpointSummary } from './service.js';
import { signatureHeaders } from './signing.js';
import { sendWebhook, type AttemptResult } from './target.js';

/** Attempts in flight at once, over all endpoints. */
export const MAX_IN_FLIGHT = 32;
/** Attempts in flight at once to one endpoint: a slow one holds no more slots than this. */
export const MAX_IN_FLIGHT_PER_ENDPOINT = 4;
/** The longest the dispatcher sleeps between looks at the queue, whatever it expects. */
export const DEFAULT_POLL_MS = 1000;
/**
 * Due deliveries read at once, at most this many of each endpoint: an attempt that ends starts the next from what
 * was read, and the queue is read again only once that runs out (or new work is announced, or it is a second old).
 */
const READ_AHEAD = 256;
const READ_AHEAD_PER_ENDPOINT = 16;
const READ_AHEAD_MAX_AGE_MS = 1000;
/**
 * Attempts recorded in one transaction at most: the attempts that end while one batch is recorded are recorded
 * together in the next, so a busy dispatcher pays one commit for many, and an idle one records each at once.
 */
const RECORD_BATCH = 64;

interface AttemptRecord {
  delivery: DueDelivery;
  started: Date;
  result: AttemptResult;
  resolve(disabled: boolean): void;
  reject(error: unknown): void;
}

type Log = Pick<FastifyBaseLogger, 'warn' | 'error'>;

export interface WebhookDispatcherDeps {
  db: Kysely<DB>;
  clock: () => Date;
  log: Log;
  /** Deliveries go out only while this node leads; without a cluster, always. */
  cluster?: Cluster | undefined;
  secrets: SecretBox;
  /** Send to loopback, private and link-local addresses too (CLOUDPHONE_WEBHOOK_ALLOW_PRIVATE). */
  allowPrivate: boolean;
  /** For one whole attempt (CLOUDPHONE_WEBHOOK_TIMEOUT). */
  timeoutMs: number;
  pollMs?: number | undefined;
  /** How long `close` waits for the attempts in flight before cutting them short; the attempt timeout by default. */
  closeTimeoutMs?: number | undefined;
  /** Draws the retry jitter: a number in [0, 1). */
  random?: (() => number) | undefined;
}

/** A due delivery as the dispatcher picks it. */
interface DueDelivery {
  endpoint_id: string;
  event_id: string;
  manual: number;
  url: string;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: string | null;
}

/** Signing secrets kept unsealed in memory, for as many endpoints. */
const UNSEALED_KEPT = 1000;

const keyOf = (delivery: { endpoint_id: string; event_id: string }) => `${delivery.endpoint_id} ${delivery.event_id}`;

const isSuccess = (status: number | null) => status !== null && status >= 200 && status < 300;

/**
 * Sends the queued webhook deliveries (see outbox.ts) while this node leads: each due delivery is signed with its
 * endpoint's secrets, sent, and its attempt recorded with the delivery's new state in one transaction. A delivery is
 * marked delivered only after a 2xx answer, so one cut short by a crash or a change of leader is simply due again
 * (with the same `webhook-id`, the event's id): delivery is at least once.
 */
export class WebhookDispatcher {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #log: Log;
  readonly #cluster: Cluster | undefined;
  readonly #secrets: SecretBox;
  readonly #allowPrivate: boolean;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #closeTimeoutMs: number;
  readonly #random: () => number;
  /** Attempts in flight by delivery, and how many each endpoint has. */
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #perEndpoint = new Map<string, number>();
  /** Attempts that ended since the queue was last read, which that read may still show as due. */
  readonly #ended = new Set<string>();
  /** Due deliveries read from the queue and not started yet, oldest first, and when they were read. */
  #ready: { delivery: DueDelivery; event: EventRow }[] = [];
  #readAt = 0;
  /** Unsealed signing secrets by their sealed text (a rotation seals a new one), for the endpoints sent to lately. */
  readonly #unsealed = new Map<string, string>();
  /** Attempts waiting to be recorded, and the batch being recorded. */
  #records: AttemptRecord[] = [];
  #recording: Promise<void> | null = null;
  /** Cuts short the attempts still in flight when `close` has waited long enough. */
  readonly #abort = new AbortController();
  #leading = false;
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  #pumping: Promise<void> | null = null;
  #again = false;
  #unsubscribe: () => void = () => undefined;

  constructor(deps: WebhookDispatcherDeps) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#cluster = deps.cluster;
    this.#secrets = deps.secrets;
    this.#allowPrivate = deps.allowPrivate;
    this.#timeoutMs = deps.timeoutMs;
    this.#pollMs = deps.pollMs ?? DEFAULT_POLL_MS;
    this.#closeTimeoutMs = deps.closeTimeoutMs ?? deps.timeoutMs;
    this.#random = deps.random ?? Math.random;
    // Every attempt in flight listens for the abort.
    setMaxListeners(MAX_IN_FLIGHT, this.#abort.signal);
  }

  /** Follows the leadership: dispatches while this node leads. */
  start(): void {
    if (this.#cluster === undefined) {
      this.#lead(true);
      return;
    }
    this.#unsubscribe = this.#cluster.onLeadership((leader) => this.#lead(leader));
    this.#lead(this.#cluster.isLeader());
  }

  /** Looks at the queue now: deliveries may have become due (new events committed, a redelivery asked for). */
  wake(): void {
    if (!this.#leading || this.#closed) return;
    if (this.#pumping !== null) {
      this.#again = true;
      return;
    }
    this.#clearTimer();
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = null;
    });
  }

  /**
   * Stops taking deliveries and waits for the attempts in flight, at most `closeTimeoutMs`; those still running then
   * are cut short and not recorded, to be due again on the next leader.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#leading = false;
    this.#unsubscribe();
    this.#clearTimer();
    await this.#pumping;
    const inFlight = Promise.all(this.#inFlight.values());
    let bound: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      bound = setTimeout(resolve, this.#closeTimeoutMs);
    });
    await Promise.race([inFlight, waited]);
    clearTimeout(bound);
    this.#abort.abort();
    await inFlight;
  }

  #lead(leader: boolean): void {
    this.#leading = leader && !this.#closed;
    if (this.#leading) {
      this.wake();
    } else {
      this.#clearTimer();
    }
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async #pump(): Promise<void> {
    let sleepMs = this.#pollMs;
    do {
      this.#again = false;
      try {
        sleepMs = await this.#startDue();
      } catch (error) {
        this.#log.error({ err: error }, 'could not read the webhook delivery queue');
        sleepMs = this.#pollMs;
      }
    } while (this.#again && this.#leading);
    if (!this.#leading) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.wake();
    }, sleepMs);
    this.#timer.unref();
  }

  /** Starts the attempts of the due deliveries there is room for; returns how long to sleep before looking again. */
  async #startDue(): Promise<number> {
    const now = this.#clock();
    const nowText = now.toISOString();
    if (this.#inFlight.size < MAX_IN_FLIGHT) {
      this.#ended.clear();
      const due = await this.#due(nowText);
      const events = await this.#events([...new Set(due.map((delivery) => delivery.event_id))]);
      this.#ready = due.flatMap((delivery) => {
        const event = events.get(delivery.event_id);
        return event === undefined ? [] : [{ delivery, event }];
      });
      this.#readAt = performance.now();
      this.#startReady();
    }
    const next = await this.#db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.min('next_attempt_at').as('at'))
      .where('status', '=', 'pending')
      .where('next_attempt_at', '>', nowText)
      .executeTakeFirst();
    const at = next?.at;
    if (at === null || at === undefined) return this.#pollMs;
    return Math.min(this.#pollMs, Math.max(0, Date.parse(at) - now.getTime()));
  }

  /**
   * Starts the deliveries read ahead that there is room for, oldest first, each endpoint within its limit; forgets
   * those that are in flight or ended since (the read may predate their end), and everything once a second old.
   */
  #startReady(): void {
    if (performance.now() - this.#readAt > READ_AHEAD_MAX_AGE_MS) this.#ready = [];
    const kept: { delivery: DueDelivery; event: EventRow }[] = [];
    for (const item of this.#ready) {
      const key = keyOf(item.delivery);
      if (this.#inFlight.has(key) || this.#ended.has(key)) continue;
      const busy = this.#perEndpoint.get(item.delivery.endpoint_id) ?? 0;
      if (this.#inFlight.size >= MAX_IN_FLIGHT || busy >= MAX_IN_FLIGHT_PER_ENDPOINT) {
        kept.push(item);
      } else {
        this.#start(item.delivery, item.event);
      }
    }
    this.#ready = kept;
  }

  /** After an attempt: the next one from what was read ahead, or a new look at the queue when that ran out. */
  #next(): void {
    if (!this.#leading || this.#closed) return;
    this.#startReady();
    if (this.#ready.length === 0) this.wake();
  }

  /**
   * The due deliveries of enabled endpoints, the first few of each endpoint (those in flight among them), oldest
   * first: an endpoint with a long backlog does not fill the page and hide the others' deliveries.
   */
  async #due(now: string): Promise<DueDelivery[]> {
    const ranked = this.#db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
      // A delivery whose event left the log would hold one of its endpoint's places for nothing.
      .innerJoin('events as ev', 'ev.id', 'd.event_id')
      .select([
        'd.endpoint_id',
        'd.event_id',
        'd.manual',
        'd.next_attempt_at',
        'e.url',
        'e.secret',
        'e.previous_secret',
        'e.previous_secret_expires_at',
      ])
      .select((eb) =>
        eb.fn
          .agg<number>('row_number', [])
          .over((ob) => ob.partitionBy('d.endpoint_id').orderBy('d.next_attempt_at').orderBy('d.event_id'))
          .as('rank'),
      )
      .where('d.status', '=', 'pending')
      .where('d.next_attempt_at', '<=', now)
      .where('e.enabled', '=', 1);
    return this.#db
      .selectFrom(ranked.as('due'))
      .select(['endpoint_id', 'event_id', 'manual', 'url', 'secret', 'previous_secret', 'previous_secret_expires_at'])
      .where('rank', '<=', READ_AHEAD_PER_ENDPOINT)
      .orderBy('next_attempt_at')
      .orderBy('event_id')
      .limit(READ_AHEAD)
      .execute();
  }

  async #events(ids: string[]): Promise<Map<string, EventRow>> {
    if (ids.length === 0) return new Map();
    const rows = await this.#db.selectFrom('events').selectAll().where('id', 'in', ids).execute();
    return new Map(rows.map((row) => [row.id, row]));
  }

  #start(delivery: DueDelivery, event: EventRow): void {
    const key = keyOf(delivery);
    const endpointId = delivery.endpoint_id;
    this.#perEndpoint.set(endpointId, (this.#perEndpoint.get(endpointId) ?? 0) + 1);
    const attempt = this.#attempt(delivery, event)
      .catch((error: unknown) =>
        this.#log.error({ err: error, endpointId, eventId: delivery.event_id }, 'could not record a webhook attempt'),
      )
      .finally(() => {
        this.#inFlight.delete(key);
        this.#ended.add(key);
        const left = (this.#perEndpoint.get(endpointId) ?? 1) - 1;
        if (left === 0) {
          this.#perEndpoint.delete(endpointId);
        } else {
          this.#perEndpoint.set(endpointId, left);
        }
        this.#next();
      });
    this.#inFlight.set(key, attempt);
  }

  async #attempt(delivery: DueDelivery, event: EventRow): Promise<void> {
    const started = this.#clock();
    let result: AttemptResult;
    try {
      const body = eventJson(event);
      const headers = signatureHeaders({
        id: event.id,
        timestampSeconds: started.getTime() / 1000,
        body,
        secrets: this.#signingSecrets(delivery, started),
      });
      result = await sendWebhook({
        url: delivery.url,
        headers,
        body,
        timeoutMs: this.#timeoutMs,
        allowPrivate: this.#allowPrivate,
        signal: this.#abort.signal,
        now: this.#clock,
      });
    } catch (error) {
      // Only a secret that does not unseal (the key file was replaced) gets here: sending never throws.
      result = { statusCode: null, latencyMs: 0, excerpt: null, error: (error as Error).message, retryAfterSeconds: null };
    }
    if (this.#abort.signal.aborted) return;
    const disabled = await this.#record(delivery, started, result);
    // Nothing more goes to an endpoint that was just disabled.
    if (disabled) this.#ready = this.#ready.filter((item) => item.delivery.endpoint_id !== delivery.endpoint_id);
  }

  #unseal(sealed: string): string {
    let secret = this.#unsealed.get(sealed);
    if (secret === undefined) {
      secret = this.#secrets.unseal(sealed);
      if (this.#unsealed.size >= UNSEALED_KEPT) this.#unsealed.delete(this.#unsealed.keys().next().value!);
      this.#unsealed.set(sealed, secret);
    }
    return secret;
  }

  /** The endpoint's secret, and the one a rotation replaced while it still signs: newest first. */
  #signingSecrets(delivery: DueDelivery, now: Date): string[] {
    const secrets = [this.#unseal(delivery.secret)];
    const expires = delivery.previous_secret_expires_at;
    if (delivery.previous_secret !== null && expires !== null && Date.parse(expires) > now.getTime()) {
      secrets.push(this.#unseal(delivery.previous_secret));
    }
    return secrets;
  }

  /**
   * Records an attempt and what follows from it, in one transaction with the attempts that end meanwhile: a 2xx
   * delivers and clears the endpoint's failing streak; a 410 fails the delivery and disables the endpoint (`gone`);
   * anything else schedules the next attempt (no sooner than a 429's or 503's Retry-After) or, after the last, fails
   * the delivery, and disables an endpoint that has been failing for five days (`failing`). Resolves whether it
   * disabled the endpoint.
   */
  #record(delivery: DueDelivery, started: Date, result: AttemptResult): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#records.push({ delivery, started, result, resolve, reject });
      this.#recording ??= this.#recordBatches().finally(() => {
        this.#recording = null;
      });
    });
  }

  /** Records the waiting attempts, a batch per transaction, until none waits; a batch that fails fails each of its. */
  async #recordBatches(): Promise<void> {
    while (this.#records.length > 0) {
      const batch = this.#records.splice(0, RECORD_BATCH);
      try {
        const disabled = await this.#db.transaction().execute(async (trx) => {
          // In one order, so that two transactions taking several of these locks never wait on each other.
          const endpoints = [...new Set(batch.map((record) => record.delivery.endpoint_id))].sort();
          for (const endpointId of endpoints) await lockForTransaction(trx, `webhook_endpoint ${endpointId}`);
          const outcomes: boolean[] = [];
          for (const record of batch) outcomes.push(await this.#recordIn(trx, record.delivery, record.started, record.result));
          return outcomes;
        });
        batch.forEach((record, index) => record.resolve(disabled[index]!));
      } catch (error) {
        for (const record of batch) record.reject(error);
      }
    }
  }

  async #recordIn(trx: Kysely<DB>, delivery: DueDelivery, started: Date, result: AttemptResult): Promise<boolean> {
    const { endpoint_id: endpointId, event_id: eventId } = delivery;
    const now = this.#clock();
    const nowText = now.toISOString();
    const current = await trx
      .selectFrom('webhook_deliveries')
      .select(['attempts', 'manual', 'next_attempt_at'])
      .where('endpoint_id', '=', endpointId)
      .where('event_id', '=', eventId)
      .executeTakeFirst();
    const endpoint = await trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', endpointId).executeTakeFirst();
    // Deleted while the attempt ran.
    if (current === undefined || endpoint === undefined) return false;
    const number = Number(current.attempts) + 1;
    await trx
      .insertInto('webhook_attempts')
      .values({
        id: newId('wha', started.getTime()),
        endpoint_id: endpointId,
        event_id: eventId,
        number,
        trigger: delivery.manual === 1 ? 'manual' : 'scheduled',
        started_at: started.toISOString(),
        status_code: result.statusCode,
        latency_ms: result.latencyMs,
        error: result.error,
        response_excerpt: result.excerpt,
      })
      .execute();
    const { statusCode } = result;
    const delivered = isSuccess(statusCode);
    const gone = statusCode === 410;
    const retryAfterSeconds = statusCode === 429 || statusCode === 503 ? result.retryAfterSeconds : null;
    const next = delivered || gone ? null : nextAttemptAt(now, number, { retryAfterSeconds, random: this.#random });
    // A redelivery asked for while this attempt ran still happens.
    const requeued = current.manual === 1 && delivery.manual !== 1;
    await trx
      .updateTable('webhook_deliveries')
      .set({
        attempts: number,
        last_attempt_at: started.toISOString(),
        last_status_code: statusCode,
        last_error: result.error,
        ...(delivered ? { delivered_at: nowText } : {}),
        ...(requeued
          ? {}
          : {
              status: delivered ? 'delivered' : next === null ? 'failed' : 'pending',
              next_attempt_at: next?.toISOString() ?? null,
              manual: 0,
            }),
      })
      .where('endpoint_id', '=', endpointId)
      .where('event_id', '=', eventId)
      .execute();
    if (delivered) {
      if (endpoint.failing_since !== null) {
        await trx.updateTable('webhook_endpoints').set({ failing_since: null }).where('id', '=', endpointId).execute();
      }
      return false;
    }
    const failingSince = endpoint.failing_since ?? nowText;
    if (endpoint.failing_since === null) {
      await trx.updateTable('webhook_endpoints').set({ failing_since: nowText }).where('id', '=', endpointId).execute();
    }
    if (endpoint.enabled !== 1) return false;
    const failingFor = (now.getTime() - Date.parse(failingSince)) / 1000;
    const reason = gone ? 'gone' : failingFor >= FAILING_ENDPOINT_DISABLED_AFTER_SECONDS ? 'failing' : null;
    if (reason === null) return false;
    await trx
      .updateTable('webhook_endpoints')
      .set({ enabled: 0, disabled_reason: reason, updated_at: nowText })
      .where('id', '=', endpointId)
      .execute();
    await appendEvent(trx, {
      type: 'webhook.endpoint_disabled',
      actor: systemCause.actor,
      subject: { type: 'webhook_endpoint', id: endpointId },
      data: { endpoint: toWebhookEndpointSummary({ ...endpoint, enabled: 0 }), reason },
      requestId: null,
      occurredAt: now,
    });
    return true;
  }
}
