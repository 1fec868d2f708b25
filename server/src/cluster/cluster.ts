import type { HostType } from '../devices/types.js';

/**
 * What one server node knows of the others sharing its database. A node on SQLite is alone; nodes on one PostgreSQL
 * database form a cluster (see postgres.ts).
 *
 * Messages tell the other nodes of a change this node made and committed, so that their in-process state follows:
 * a long poll to answer, a WebSocket to close, a host to connect to. A message is never delivered to the node that
 * published it: that node applies the change itself, as a lone node does.
 */
export interface ClusterMessages {
  /** Long polls waiting on `key` (a lease id, an install job id) in `waiters` are to be answered. */
  wake: { waiters: string; key: string };
  /** A lease ended: its device sessions close and the installs on its devices stop. */
  'lease.ended': { leaseId: string; userId: string; deviceIds: string[] };
  /** A credential ended: the WebSockets opened with it close (a `Revocation`). */
  revoked: { revocation: unknown };
  /** A host was added: every node connects to it. */
  'host.added': { id: string; type: HostType; address: string };
  /** A host was deleted: every node disconnects from it and forgets its devices. */
  'host.removed': { id: string };
}

export type Topic = keyof ClusterMessages;

export interface Cluster {
  /** This node's name (`--node-name`). */
  readonly node: string;
  /** Whether other nodes may share the database (PostgreSQL). */
  readonly shared: boolean;
  /** Whether this node does the cluster's background work now: lease expiry, and recording what device hosts report. */
  isLeader(): boolean;
  /** Calls `listener` whenever this node gains or loses the leadership; returns the unsubscribe function. */
  onLeadership(listener: (leader: boolean) => void): () => void;
  /** The name of the node that leads now, or null while none does. */
  leader(): Promise<string | null>;
  /** The names of the nodes connected to the database now, this one included. */
  liveNodes(): Promise<Set<string>>;
  /** Tells the other nodes (after a commit). Fire and forget: a failure is logged. */
  publish<T extends Topic>(topic: T, message: ClusterMessages[T]): void;
  /** Calls `listener` for each message on `topic` from another node; returns the unsubscribe function. */
  subscribe<T extends Topic>(topic: T, listener: (message: ClusterMessages[T]) => void): () => void;
  /** Calls `listener` when messages may have been missed (the connection that carries them came back). */
  onResync(listener: () => void): () => void;
  /**
   * Calls `listener` after events committed through any node of the cluster; returns the unsubscribe function. A
   * lone node is never called: its own writes are all there is.
   */
  onEventsCommitted(listener: () => void): () => void;
  /** Why this node cannot serve yet (not yet hearing the other nodes), or null when it can. */
  notReady(): string | null;
  /** Joins: starts listening and campaigning for the leadership. */
  start(): Promise<void>;
  /** Leaves: gives up the leadership and stops listening. */
  close(): Promise<void>;
}

/** A node alone on its database (SQLite): it leads from its start, and no message has anyone to go to. */
export class LoneNode implements Cluster {
  readonly node: string;
  readonly shared: boolean = false;
  readonly #listeners = new Set<(leader: boolean) => void>();
  #leader = false;

  constructor(node: string) {
    this.node = node;
  }

  isLeader(): boolean {
    return this.#leader;
  }

  onLeadership(listener: (leader: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async leader(): Promise<string | null> {
    return this.#leader ? this.node : null;
  }

  async liveNodes(): Promise<Set<string>> {
    return new Set([this.node]);
  }

  publish<T extends Topic>(_topic: T, _message: ClusterMessages[T]): void {}

  subscribe<T extends Topic>(_topic: T, _listener: (message: ClusterMessages[T]) => void): () => void {
    return () => undefined;
  }

  onResync(): () => void {
    return () => undefined;
  }

  onEventsCommitted(): () => void {
    return () => undefined;
  }

  notReady(): string | null {
    return null;
  }

  async start(): Promise<void> {
    this.#setLeader(true);
  }

  async close(): Promise<void> {
    this.#setLeader(false);
  }

  #setLeader(leader: boolean): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    for (const listener of [...this.#listeners]) listener(leader);
  }
}
