import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { newId } from '../db/ids.js';
import type { DB } from '../db/schema.js';
import { appendEvent } from '../events/log.js';
import { principalActor } from '../events/types.js';
import { ApiError } from '../http/errors.js';
import type { Principal } from '../http/handler.js';
import { decodeCursor, idPosition, toPage, type Page } from '../pagination.js';
import {
  DEFAULT_APK_LIMITS,
  inspectApk,
  InvalidApkError,
  type ApkInspection,
  type ApkLimits,
  type ApkMetadata,
} from './apk.js';
import type { BlobStore, ByteRange } from './blob-store.js';
import {
  blobVisibleTo,
  countAppsOfBlob,
  countBlobsWithIcon,
  deleteApp,
  deleteBlob,
  findAppView,
  findAppViewByOwner,
  findBlob,
  insertApp,
  insertBlob,
  queryAppViews,
  setAppShared,
  type AppViewRow,
} from './repository.js';
import { parseMetadata, toApp, toAppSummary, type App, type AppKind } from './view.js';

export const APK_EXT = '.apk';
export const ICON_EXT = '.png';
export const DEFAULT_MAX_APP_BYTES = 512 * 1024 * 1024;
/** How long inspecting one APK may take before it is refused: real ones take well under a second. */
const DEFAULT_INSPECT_TIMEOUT_MS = 30_000;

const appPosition = idPosition(/^app_[0-9A-Z]{26}$/);

type AppLog = Pick<FastifyBaseLogger, 'warn' | 'error'>;

export interface AppServiceDeps {
  db: Kysely<DB>;
  clock: () => Date;
  store: BlobStore;
  log: AppLog;
  /** Largest APK accepted (CLOUDPHONE_MAX_APP). */
  maxAppBytes: number;
  /** The APK parser; tests count its calls. It stops when `signal` aborts. */
  inspect?: (path: string, limits: ApkLimits, signal: AbortSignal) => Promise<ApkInspection>;
  apkLimits?: ApkLimits;
  /** The deadline of one inspection, past which the APK is `invalid_apk`. */
  inspectTimeoutMs?: number;
  /**
   * Whether the store is this process's alone (true by default). Server nodes sharing it must not remove the files
   * no row refers to at start: another node may have written one and not yet committed its row.
   */
  ownsStore?: boolean;
}

export interface UploadOptions {
  fileName?: string | null | undefined;
  shared?: boolean | undefined;
}

export interface AppFromHash extends UploadOptions {
  sha256: string;
}

export interface UploadedApp {
  /** 201: a new app for this uploader; 200: the uploader already had these bytes. */
  status: 200 | 201;
  app: App;
}

export interface AppListQuery {
  packageName?: string | undefined;
  kind?: AppKind | undefined;
  uploaderId?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface AppDownload {
  stream: Readable;
  /** Bytes in `stream`. */
  size: number;
  /** The inclusive range sent; 0 and total - 1 for the whole file. */
  start: number;
  end: number;
  total: number;
  /** A satisfiable Range was asked for: answer 206 with `Content-Range: bytes start-end/total`. */
  partial: boolean;
  fileName: string;
}

export interface AppForInstall {
  app: App;
  sha256: string;
  size: number;
  metadata: ApkMetadata;
}

/**
 * Uploaded APKs: content-addressed blobs (parsed once, whoever uploads them) and per-uploader apps naming them.
 * Every change of rows is one transaction with its event; blob files are written before and removed after it, under
 * a per-blob lock so that an upload and the deletion of the last app of the same bytes cannot interleave.
 */
export class AppService {
  readonly #db: Kysely<DB>;
  readonly #clock: () => Date;
  readonly #store: BlobStore;
  readonly #log: AppLog;
  readonly #maxAppBytes: number;
  readonly #inspect: (path: string, limits: ApkLimits, signal: AbortSignal) => Promise<ApkInspection>;
  readonly #apkLimits: ApkLimits;
  readonly #inspectTimeoutMs: number;
  readonly #ownsStore: boolean;
  readonly #locks = new Map<string, Promise<unknown>>();
  /** Aborts, at shutdown, every upload still receiving its body or being inspected. */
  readonly #stopping = new AbortController();
  readonly #uploads = new Set<Promise<unknown>>();

  constructor(deps: AppServiceDeps) {
    this.#db = deps.db;
    this.#clock = deps.clock;
    this.#store = deps.store;
    this.#log = deps.log;
    this.#maxAppBytes = deps.maxAppBytes;
    this.#inspect = deps.inspect ?? inspectApk;
    this.#apkLimits = deps.apkLimits ?? DEFAULT_APK_LIMITS;
    this.#inspectTimeoutMs = deps.inspectTimeoutMs ?? DEFAULT_INSPECT_TIMEOUT_MS;
    this.#ownsStore = deps.ownsStore ?? true;
  }

  /**
   * Tidies the store at startup, before any upload: removes the temporary files of interrupted uploads and the
   * files no row refers to (a stop between writing a blob and committing its row). Returns what it removed.
   */
  async start(): Promise<{ temporary: number; orphans: number }> {
    const temporary = await this.#store.clearTemporary();
    const orphans = this.#ownsStore ? await this.#removeUnreferenced() : 0;
    if (temporary > 0 || orphans > 0) {
      this.#log.warn({ temporary, orphans }, 'removed files of interrupted uploads from the app store');
    }
    return { temporary, orphans };
  }

  /** Removes the stored files no row refers to; returns how many. */
  async #removeUnreferenced(): Promise<number> {
    const apks = new Set((await this.#db.selectFrom('app_blobs').select('sha256').execute()).map((row) => row.sha256));
    const icons = new Set(
      (await this.#db.selectFrom('app_blobs').select('icon_sha256').where('icon_sha256', 'is not', null).execute()).map(
        (row) => row.icon_sha256!,
      ),
    );
    let orphans = 0;
    for (const { sha256, ext } of await this.#store.list()) {
      const referenced = ext === APK_EXT ? apks.has(sha256) : ext === ICON_EXT ? icons.has(sha256) : false;
      if (referenced) continue;
      await this.#store.remove(sha256, ext);
      orphans++;
    }
    return orphans;
  }

  /**
   * At shutdown: cuts the uploads in progress (a body still arriving is abandoned, an inspection stops, both
   * answer 503 where the client still listens) and resolves once their temporary files are gone.
   */
  async close(): Promise<void> {
    this.#stopping.abort(new ApiError('service_unavailable', 'The server is stopping: upload the app again later.'));
    await Promise.allSettled(this.#uploads);
  }

  /**
   * Streams an APK into the store (413 past the limit, 422 `invalid_apk`, also when inspecting it takes longer
   * than the deadline) and names it for the caller. The temporary file is gone when the promise settles.
   */
  async upload(
    principal: Principal,
    body: Readable,
    options: UploadOptions,
    requestId: string | null,
  ): Promise<UploadedApp> {
    if (this.#stopping.signal.aborted) {
      body.destroy();
      throw this.#stopping.signal.reason;
    }
    const upload = this.#upload(principal, body, options, requestId);
    this.#uploads.add(upload);
    try {
      return await upload;
    } finally {
      this.#uploads.delete(upload);
    }
  }

  async #upload(
    principal: Principal,
    body: Readable,
    options: UploadOptions,
    requestId: string | null,
  ): Promise<UploadedApp> {
    const stopping = this.#stopping.signal;
    const ingested = await this.#store.ingest(body, { limit: this.#maxAppBytes, signal: stopping }).catch((error: unknown) => {
      throw stopping.aborted ? stopping.reason : error;
    });
    const { sha256, size, tempPath } = ingested;
    try {
      return await this.#withBlobLock(sha256, async () => {
        const existing = await findBlob(this.#db, sha256);
        if (existing !== undefined) {
          // Known bytes: never parsed again. Restore the file if it went missing.
          if (!(await this.#store.has(sha256, APK_EXT))) await this.#store.commit(tempPath, sha256, APK_EXT);
          return this.#db.transaction().execute((trx) => this.#nameBlob(trx, principal, sha256, options, requestId));
        }
        let inspection: ApkInspection;
        const deadline = AbortSignal.timeout(this.#inspectTimeoutMs);
        try {
          inspection = await this.#inspect(tempPath, this.#apkLimits, AbortSignal.any([stopping, deadline]));
        } catch (error) {
          if (error instanceof InvalidApkError) throw new ApiError('invalid_apk', error.message);
          if (stopping.aborted) throw stopping.reason;
          if (deadline.aborted) {
            throw new ApiError(
              'invalid_apk',
              `The APK could not be inspected within ${this.#inspectTimeoutMs / 1000} s: it is not an archive we accept.`,
            );
          }
          throw error;
        }
        const { icon, ...metadata } = inspection;
        const iconSha256 = icon === null ? null : await this.#store.put(icon, ICON_EXT);
        await this.#store.commit(tempPath, sha256, APK_EXT);
        try {
          return await this.#db.transaction().execute(async (trx) => {
            await insertBlob(trx, {
              sha256,
              size,
              package_name: metadata.packageName,
              metadata: JSON.stringify(metadata),
              icon_sha256: iconSha256,
              created_at: this.#clock().toISOString(),
            });
            return this.#nameBlob(trx, principal, sha256, options, requestId);
          });
        } catch (error) {
          await this.#removeFiles(sha256, iconSha256);
          throw error;
        }
      });
    } finally {
      await this.#store.discard(tempPath);
    }
  }

  /**
   * Names bytes the store already has for the caller, without a transfer, when the caller can see an app of them
   * (their own, a shared one, or any for an admin). Otherwise 404 `app_blob_not_found`, the same answer as for
   * unknown bytes: knowing the hash of someone's private APK is not having it, so the bytes must be uploaded (they
   * are still stored and parsed once).
   */
  async fromHash(principal: Principal, input: AppFromHash, requestId: string | null): Promise<UploadedApp> {
    const { sha256 } = input;
    return this.#withBlobLock(sha256, async () => {
      const blob = await findBlob(this.#db, sha256);
      const visible =
        blob !== undefined && (principal.role === 'admin' || (await blobVisibleTo(this.#db, sha256, principal.userId)));
      if (!visible || !(await this.#store.has(sha256, APK_EXT))) {
        throw new ApiError('app_blob_not_found', `No APK with sha256 ${sha256} is stored: upload it.`);
      }
      return this.#db.transaction().execute((trx) => this.#nameBlob(trx, principal, sha256, input, requestId));
    });
  }

  async list(principal: Principal, query: AppListQuery): Promise<Page<App>> {
    const rows = await queryAppViews(this.#db, {
      packageName: query.packageName,
      kind: query.kind,
      uploaderId: query.uploaderId,
      visibleTo: principal.role === 'admin' ? undefined : principal.userId,
      afterId: query.cursor === undefined ? undefined : decodeCursor(query.cursor, appPosition).id,
      limit: query.limit + 1,
    });
    return toPage(rows, query.limit, (row) => toApp(row), (row) => ({ id: row.id }));
  }

  async get(principal: Principal, id: string): Promise<App> {
    return toApp(visible(principal, id, await findAppView(this.#db, id)));
  }

  /** Shares an app with everyone or makes it private again (uploader or admin), with `app.updated` on a change. */
  async update(
    principal: Principal,
    id: string,
    input: { shared?: boolean | undefined },
    requestId: string | null,
  ): Promise<App> {
    return this.#db.transaction().execute(async (trx) => {
      const row = owned(principal, id, await findAppView(trx, id), 'change');
      if (input.shared === undefined || (row.shared === 1) === input.shared) return toApp(row);
      await setAppShared(trx, id, input.shared);
      const updated = { ...row, shared: input.shared ? 1 : 0 };
      await appendEvent(trx, {
        type: 'app.updated',
        actor: principalActor(principal),
        subject: { type: 'app', id },
        data: { app: toAppSummary(updated), changes: ['shared'] },
        requestId,
        occurredAt: this.#clock(),
      });
      return toApp(updated);
    });
  }

  /** Deletes an app; its APK and icon files go (after the commit) once no app refers to them. */
  async delete(principal: Principal, id: string, requestId: string | null): Promise<void> {
    const row = owned(principal, id, await findAppView(this.#db, id), 'delete');
    await this.#withBlobLock(row.sha256, async () => {
      const unreferenced = await this.#db.transaction().execute(async (trx) => {
        const current = owned(principal, id, await findAppView(trx, id), 'delete');
        await deleteApp(trx, id);
        await appendEvent(trx, {
          type: 'app.deleted',
          actor: principalActor(principal),
          subject: { type: 'app', id },
          data: { app: toAppSummary(current) },
          requestId,
          occurredAt: this.#clock(),
        });
        if ((await countAppsOfBlob(trx, current.sha256)) > 0) return undefined;
        await deleteBlob(trx, current.sha256);
        const icon =
          current.icon_sha256 !== null && (await countBlobsWithIcon(trx, current.icon_sha256)) === 0
            ? current.icon_sha256
            : null;
        return { sha256: current.sha256, icon };
      });
      if (unreferenced !== undefined) await this.#removeFiles(unreferenced.sha256, unreferenced.icon);
    });
  }

  /**
   * The APK's bytes, or those of the `Range` header's single range (`bytes=a-b`, `bytes=a-`, `bytes=-n`). A range
   * starting past the end is 416 `range_not_satisfiable`; a header we do not understand (or several ranges) is
   * ignored, as RFC 9110 allows, and the whole file sent.
   */
  async download(principal: Principal, id: string, range?: string | undefined): Promise<AppDownload> {
    const row = visible(principal, id, await findAppView(this.#db, id));
    const total = row.size;
    const wanted = range === undefined ? undefined : parseRange(range, total);
    const fileName = row.file_name ?? `${parseMetadata(row).packageName}.apk`;
    if (wanted === undefined) {
      const stream = this.openBlob(row.sha256);
      return { stream, size: total, start: 0, end: total - 1, total, partial: false, fileName };
    }
    return {
      stream: this.openBlob(row.sha256, { range: wanted }),
      size: wanted.end - wanted.start + 1,
      start: wanted.start,
      end: wanted.end,
      total,
      partial: true,
      fileName,
    };
  }

  /** The app's launcher icon (PNG); 404 `icon_not_found` when it has none. */
  async icon(principal: Principal, id: string): Promise<Buffer> {
    const row = visible(principal, id, await findAppView(this.#db, id));
    if (row.icon_sha256 === null) throw new ApiError('icon_not_found', `App ${id} has no icon.`);
    try {
      return await readFile(this.#store.path(row.icon_sha256, ICON_EXT));
    } catch (error) {
      this.#log.warn({ err: error, appId: id }, 'app icon file missing');
      throw new ApiError('icon_not_found', `App ${id} has no icon.`);
    }
  }

  /** A fresh stream of a blob's bytes (or an inclusive range of them), read `chunkBytes` at a time. */
  openBlob(sha256: string, options: { range?: ByteRange | undefined; chunkBytes?: number | undefined } = {}): Readable {
    return this.#store.open(sha256, APK_EXT, options);
  }

  /** What an install needs, with the same visibility as `get` (404 `app_not_found`). */
  async getForInstall(principal: Principal, appId: string): Promise<AppForInstall> {
    const row = visible(principal, appId, await findAppView(this.#db, appId));
    const metadata = parseMetadata(row);
    return { app: toApp(row, metadata), sha256: row.sha256, size: row.size, metadata };
  }

  /** The caller's app for a stored blob: the existing one (200) or a new one with its `app.uploaded` event (201). */
  async #nameBlob(
    trx: Kysely<DB>,
    principal: Principal,
    sha256: string,
    options: UploadOptions,
    requestId: string | null,
  ): Promise<UploadedApp> {
    const existing = await findAppViewByOwner(trx, principal.userId, sha256);
    if (existing !== undefined) return { status: 200, app: toApp(existing) };
    const now = this.#clock();
    const id = newId('app', now.getTime());
    await insertApp(trx, {
      id,
      sha256,
      owner_id: principal.userId,
      file_name: options.fileName ?? null,
      shared: options.shared === true ? 1 : 0,
      created_at: now.toISOString(),
    });
    const row = await findAppView(trx, id);
    if (row === undefined) throw new Error(`app ${id} vanished in its own transaction`);
    await appendEvent(trx, {
      type: 'app.uploaded',
      actor: principalActor(principal),
      subject: { type: 'app', id },
      data: { app: toAppSummary(row) },
      requestId,
      occurredAt: now,
    });
    return { status: 201, app: toApp(row) };
  }

  async #removeFiles(sha256: string, iconSha256: string | null): Promise<void> {
    try {
      await this.#store.remove(sha256, APK_EXT);
      if (iconSha256 !== null) await this.#store.remove(iconSha256, ICON_EXT);
    } catch (error) {
      this.#log.warn({ err: error, sha256 }, 'could not remove an unreferenced app blob');
    }
  }

  /** Runs `task` after every earlier task on the same blob has finished. */
  async #withBlobLock<T>(sha256: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(sha256) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.catch(() => undefined);
    this.#locks.set(sha256, settled);
    try {
      return await run;
    } finally {
      if (this.#locks.get(sha256) === settled) this.#locks.delete(sha256);
    }
  }
}

function visible(principal: Principal, id: string, row: AppViewRow | undefined): AppViewRow {
  if (row === undefined || (row.owner_id !== principal.userId && row.shared !== 1 && principal.role !== 'admin')) {
    throw new ApiError('app_not_found', `No app ${id}.`);
  }
  return row;
}

function owned(principal: Principal, id: string, row: AppViewRow | undefined, verb: string): AppViewRow {
  const app = visible(principal, id, row);
  if (app.owner_id !== principal.userId && principal.role !== 'admin') {
    throw new ApiError('insufficient_role', `Only the uploader or an admin may ${verb} app ${id}.`);
  }
  return app;
}

/**
 * One `bytes=` range of a `Range` header, clamped to the file: undefined when the header is not one we serve
 * (not bytes, several ranges, malformed), 416 when it cannot be satisfied.
 */
export function parseRange(header: string, total: number): ByteRange | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  const unsatisfiable = () =>
    new ApiError('range_not_satisfiable', `The range ${header.trim()} is outside the file's ${total} bytes.`);
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || total === 0) throw unsatisfiable();
    return { start: Math.max(0, total - suffix), end: total - 1 };
  }
  const start = Number(first);
  const end = last === '' ? total - 1 : Math.min(Number(last), total - 1);
  if (last !== '' && Number(last) < start) return undefined; // invalid: ignored
  if (start >= total) throw unsatisfiable();
  return { start, end };
}
