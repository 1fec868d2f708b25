import { createHash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import pg from 'pg';
import type { Cluster, ClusterMessages, Topic } from './cluster.js';

export type ClusterLog = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>;

/** How long a lost connection waits before the next attempt, doubling up to the maximum. */
const RETRY_INITIAL_MS = 250;
const RETRY_MAX_MS = 4000;
/**
 * The leader checks its lock's connection this often, and gives up the leadership when the check fails, so that a
 * leader cut off from the database stops its background work about when the database lets another node take over.
 */
const LEADER_CHECK_MS = 2000;
/**
 * TCP keepalive on the cluster's own connections, on both ends: a node or database that vanishes without closing its
 * connections (a machine lost, a network cut) is noticed within a few seconds, not the system's default of hours.
 */
const KEEPALIVE_IDLE_S = 2;
const KEEPALIVE_INTERVAL_S = 1;
const KEEPALIVE_COUNT = 3;

interface Envelope {
  node: string;
  topic: Topic;
  message: unknown;
}

/**
 * The nodes sharing one PostgreSQL database (one schema of it): messages go over `LISTEN/NOTIFY` on a channel of
 * the schema, and the leadership is a session-level advisory lock of the schema, held on a connection of its own.
 * The other nodes wait on that lock in the database (a blocked `pg_advisory_lock`), so when the leader's session
 * ends (the process exits or is killed, its connection breaks) the database grants the lock to one of them at once.
 * Every connection of the node carries `application_name = cloudphone:<node>`, which is how `leader()` names the
 * lock's holder.
 */
export class PostgresCluster implements Cluster {
  readonly node: string;
  readonly shared = true;
  readonly #url: string;
  readonly #log: ClusterLog;
  readonly #subscribers = new Map<Topic, Set<(message: never) => void>>();
  readonly #leadershipListeners = new Set<(leader: boolean) => void>();
  readonly #resyncListeners = new Set<() => void>();
  #channel = '';
  #eventsChannel = '';
  readonly #eventsListeners = new Set<() => void>();
  #lockKey = 0n;
  #listener: pg.Client | null = null;
  #listening = false;
  #publisher: pg.Client | null = null;
  #publishing: Promise<void> = Promise.resolve();
  #lockClient: pg.Client | null = null;
  #leader = false;
  #closed = false;
  #tasks: Promise<void>[] = [];
  #started = false;
  #listenerQueries: Promise<void> = Promise.resolve();

  constructor(options: { node: string; url: string; log: ClusterLog }) {
    this.node = options.node;
    this.#url = options.url;
    this.#log = options.log;
  }

  isLeader(): boolean {
    return this.#leader;
  }

  onLeadership(listener: (leader: boolean) => void): () => void {
    this.#leadershipListeners.add(listener);
    return () => this.#leadershipListeners.delete(listener);
  }

  /** Calls `listener` after the message connection came back from a break, when messages may have been missed. */
  onResync(listener: () => void): () => void {
    this.#resyncListeners.add(listener);
    return () => this.#resyncListeners.delete(listener);
  }

  /**
   * Calls `listener` when events have committed on any node: the event log's trigger notifies the schema's events
   * channel (see migration 0010), and PostgreSQL delivers a notification only at its transaction's commit.
   */
  onEventsCommitted(listener: () => void): () => void {
    this.#eventsListeners.add(listener);
    return () => this.#eventsListeners.delete(listener);
  }

  async leader(): Promise<string | null> {
    if (this.#listener === null) return null;
    const high = Number(BigInt.asIntN(64, this.#lockKey) >> 32n) >>> 0;
    const low = Number(this.#lockKey & 0xffffffffn) >>> 0;
    const rows = await this.#onListener<{ name: string | null }>(
      `select a.application_name as name from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database where datname = current_database())
          and l.classid = $1::bigint::oid and l.objid = $2::bigint::oid and l.objsubid = 1`,
      [high, low],
    );
    const name = rows[0]?.name;
    return name?.startsWith(APPLICATION_PREFIX) ? name.slice(APPLICATION_PREFIX.length) : null;
  }

  /** Every node keeps its message connection for as long as it runs, under its `application_name`. */
  async liveNodes(): Promise<Set<string>> {
    const rows = await this.#onListener<{ name: string }>(
      `select distinct application_name as name from pg_stat_activity
        where datname = current_database() and starts_with(application_name, $1)`,
      [APPLICATION_PREFIX],
    );
    return new Set(rows.map((row) => row.name.slice(APPLICATION_PREFIX.length)));
  }

  /** Runs a query on the message connection, one at a time (a pg client takes one query at a time). */
  #onListener<R extends object>(text: string, values: unknown[]): Promise<R[]> {
    const run = this.#listenerQueries.then(async () => {
      const client = this.#listener;
      if (client === null) throw new Error('the database connection for messages is down');
      return (await client.query<R>(text, values)).rows;
    });
    this.#listenerQueries = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  publish<T extends Topic>(topic: T, message: ClusterMessages[T]): void {
    const payload = JSON.stringify({ node: this.node, topic, message } satisfies Envelope);
    // In order, on one connection: a node's messages arrive in the order it sent them.
    this.#publishing = this.#publishing.then(async () => {
      try {
        const client = this.#publisher ?? (await this.#connectPublisher());
        await client.query('select pg_notify($1, $2)', [this.#channel, payload]);
      } catch (error) {
        this.#publisher?.end().catch(() => undefined);
        this.#publisher = null;
        this.#log.error({ err: error, topic }, 'could not tell the other nodes of a change');
      }
    });
  }

  subscribe<T extends Topic>(topic: T, listener: (message: ClusterMessages[T]) => void): () => void {
    let listeners = this.#subscribers.get(topic);
    if (listeners === undefined) this.#subscribers.set(topic, (listeners = new Set()));
    listeners.add(listener as (message: never) => void);
    return () => listeners.delete(listener as (message: never) => void);
  }

  notReady(): string | null {
    if (!this.#started) return 'the node is joining the cluster';
    return this.#listening ? null : 'the node does not hear the other nodes (the database connection for messages is down)';
  }

  /** Resolves once the node hears the others; the leadership is campaigned for in the background. */
  async start(): Promise<void> {
    const probe = await this.#client();
    try {
      const { rows } = await probe.query<{ schema: string; key: string; events: string }>(
        `select current_schema() as schema, hashtextextended('cloudphone leader ' || current_schema(), 0)::text as key,
                'cloudphone_events_' || left(md5(current_schema()), 24) as events`,
      );
      const schema = rows[0]!.schema;
      this.#eventsChannel = rows[0]!.events;
      this.#lockKey = BigInt(rows[0]!.key);
      this.#channel = `cloudphone_${createHash('sha256').update(schema).digest('hex').slice(0, 32)}`;
    } finally {
      await probe.end().catch(() => undefined);
    }
    await this.#listen();
    this.#started = true;
    this.#tasks.push(this.#keepListening(), this.#campaign());
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#setLeader(false);
    const clients = [this.#listener, this.#publisher, this.#lockClient];
    await this.#publishing;
    await Promise.all(clients.map((client) => client?.end().catch(() => undefined)));
    await Promise.allSettled(this.#tasks);
  }

  // ---------------------------------------------------------------------------------------------------------------

  async #client(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#url,
      application_name: `${APPLICATION_PREFIX}${this.node}`,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_IDLE_S * 1000,
      connectionTimeoutMillis: 5000,
    });
    // A broken connection is noticed by the query or the 'end' it causes; the 'error' event must not go unheard.
    client.on('error', () => undefined);
    await client.connect();
    await client.query(
      `select set_config('tcp_keepalives_idle', '${KEEPALIVE_IDLE_S}', false),
              set_config('tcp_keepalives_interval', '${KEEPALIVE_INTERVAL_S}', false),
              set_config('tcp_keepalives_count', '${KEEPALIVE_COUNT}', false)`,
    );
    return client;
  }

  async #connectPublisher(): Promise<pg.Client> {
    const client = await this.#client();
    client.once('end', () => {
      if (this.#publisher === client) this.#publisher = null;
    });
    this.#publisher = client;
    return client;
  }

  async #listen(): Promise<void> {
    const client = await this.#client();
    client.on('notification', (notification) => {
      if (notification.channel === this.#eventsChannel) {
        for (const listener of [...this.#eventsListeners]) this.#safely(listener);
        return;
      }
      if (notification.channel !== this.#channel || notification.payload === undefined) return;
      this.#deliver(notification.payload);
    });
    await client.query(`listen ${client.escapeIdentifier(this.#channel)}`);
    await client.query(`listen ${client.escapeIdentifier(this.#eventsChannel)}`);
    this.#listener = client;
    this.#listening = true;
  }

  /** Reconnects the message connection whenever it ends, then resyncs (messages sent meanwhile are lost). */
  async #keepListening(): Promise<void> {
    let delay = RETRY_INITIAL_MS;
    while (!this.#closed) {
      const client = this.#listener;
      if (client !== null) await ended(client);
      this.#listening = false;
      this.#listener = null;
      if (this.#closed) return;
      this.#log.warn('lost the database connection for messages from the other nodes; reconnecting');
      while (!this.#closed) {
        try {
          await this.#listen();
          delay = RETRY_INITIAL_MS;
          this.#log.info('hearing the other nodes again');
          for (const listener of [...this.#resyncListeners]) this.#safely(listener);
          break;
        } catch {
          await sleep(delay);
          delay = Math.min(delay * 2, RETRY_MAX_MS);
        }
      }
    }
  }

  /** Waits for the leadership lock, leads while its session lasts, and waits again after losing it. */
  async #campaign(): Promise<void> {
    let delay = RETRY_INITIAL_MS;
    while (!this.#closed) {
      let client: pg.Client | null = null;
      try {
        client = await this.#client();
        this.#lockClient = client;
        const lost = ended(client);
        await client.query('select pg_advisory_lock($1::bigint)', [this.#lockKey.toString()]);
        if (this.#closed) break;
        delay = RETRY_INITIAL_MS;
        this.#setLeader(true);
        await Promise.race([lost, this.#checkWhileLeading(client)]);
      } catch (error) {
        if (!this.#closed) this.#log.warn({ err: error }, 'the connection holding or awaiting the leadership failed');
      } finally {
        this.#setLeader(false);
        this.#lockClient = null;
        await client?.end().catch(() => undefined);
      }
      if (this.#closed) return;
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  /** Resolves (the leadership is to be given up) when the lock's connection stops answering. */
  async #checkWhileLeading(client: pg.Client): Promise<void> {
    while (!this.#closed) {
      await sleep(LEADER_CHECK_MS);
      const answered = await Promise.race([
        client.query('select 1').then(
          () => true,
          () => false,
        ),
        sleep(LEADER_CHECK_MS).then(() => false),
      ]);
      if (!answered) return;
    }
  }

  #setLeader(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    this.#log.info({ leader }, leader ? 'this node leads the cluster' : 'this node no longer leads the cluster');
    for (const listener of [...this.#leadershipListeners]) this.#safely(() => listener(leader));
  }

  #deliver(payload: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(payload) as Envelope;
    } catch {
      return;
    }
    if (envelope.node === this.node) return;
    for (const listener of [...(this.#subscribers.get(envelope.topic) ?? [])]) {
      this.#safely(() => listener(envelope.message as never));
    }
  }

  #safely(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.#log.error({ err: error }, 'a cluster listener failed');
    }
  }
}

/** The prefix of every node connection's `application_name`, followed by the node's name. */
const APPLICATION_PREFIX = 'cloudphone:';

function ended(client: pg.Client): Promise<void> {
  return new Promise((resolve) => {
    client.once('end', () => resolve());
    client.once('error', () => resolve());
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
