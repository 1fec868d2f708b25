import { createReadStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inspectApk, type ApkInspection, type ApkLimits } from '../../src/apps/apk.js';
import { BlobStore } from '../../src/apps/blob-store.js';
import { AppService, parseRange } from '../../src/apps/service.js';
import type { Role } from '../../src/http/access.js';
import { ApiError } from '../../src/http/errors.js';
import type { Principal } from '../../src/http/handler.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { ManualClock } from '../helpers/clock.js';
import { openTestDatabase } from '../helpers/database.js';
import { buildZip } from './zip.js';
import { insertUser } from '../helpers/users.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface FixtureOptions {
  maxAppBytes?: number;
  /** Replaces the real parser (which `inspected` still records). */
  inspect?: (path: string, limits: ApkLimits, signal: AbortSignal) => Promise<ApkInspection>;
  inspectTimeoutMs?: number;
  /** A node of a cluster sharing the store: its temporary folder and whether it removes unreferenced files. */
  sharedAs?: string;
}

async function fixture(options: FixtureOptions = {}) {
  const database = await openTestDatabase();
  const { db } = database;
  const dir = mkdtempSync(join(tmpdir(), 'cloudphone-apps-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => database.close());
  const clock = new ManualClock();
  const store = new BlobStore(join(dir, 'blobs'), options.sharedAs);
  const inspected: string[] = [];
  const warnings: unknown[] = [];
  const apps = new AppService({
    db,
    clock: clock.now,
    store,
    log: { warn: (o: unknown) => warnings.push(o), error: (o: unknown) => warnings.push(o) } as never,
    maxAppBytes: options.maxAppBytes ?? 64 * 1024 * 1024,
    inspect: (path: string, limits: ApkLimits, signal: AbortSignal) => {
      inspected.push(path);
      return (options.inspect ?? inspectApk)(path, limits, signal);
    },
    ...(options.inspectTimeoutMs === undefined ? {} : { inspectTimeoutMs: options.inspectTimeoutMs }),
    ownsStore: options.sharedAs === undefined,
  });
  const at = clock.now().toISOString();
  const user = (username: string, role: Role = 'member'): Promise<Principal> => insertUser(db, username, role, at);
  /** Every file in the store (relative paths), temp files included. */
  function files(): string[] {
    const root = join(dir, 'blobs');
    const out: string[] = [];
    const walk = (rel: string) => {
      let names: string[];
      try {
        names = readdirSync(join(root, rel));
      } catch {
        return;
      }
      for (const name of names) {
        const path = join(rel, name);
        if (statSync(join(root, path)).isDirectory()) walk(path);
        else out.push(path);
      }
    };
    walk('');
    return out.sort();
  }
  async function events() {
    const rows = await db.selectFrom('events').selectAll().orderBy('seq').execute();
    return rows.map((row) => ({ type: row.type, subjectId: row.subject_id, data: JSON.parse(row.data) as unknown, requestId: row.request_id }));
  }
  async function counts() {
    const apps = await db.selectFrom('apps').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const blobs = await db.selectFrom('app_blobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return { apps: Number(apps.n), blobs: Number(blobs.n) };
  }
  return { db, dir, store, apps, inspected, warnings, user, files, events, counts };
}

const sha256Of = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const upload = (path: string) => createReadStream(path);

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('AppService upload', () => {
  it('stores the blob, its icon and an app with its event; the same bytes again are 200 without a re-parse', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const sha = sha256Of(APKS.settings);
    const first = await f.apps.upload(alice, upload(APKS.settings), { fileName: 'settings.apk', shared: false }, 'req_1');
    expect(first.status).toBe(201);
    expect(first.app).toMatchObject({
      sha256: sha,
      size: statSync(APKS.settings).size,
      fileName: 'settings.apk',
      kind: 'app',
      shared: false,
      uploaderId: 'usr_alice',
      uploaderName: 'alice',
      createdAt: '2026-11-20T09:00:00.000Z',
      metadata: { packageName: 'io.appium.settings', versionCode: 192, label: 'Appium Settings', launchableActivity: 'io.appium.settings.Settings' },
    });
    expect(first.app.id).toMatch(/^app_[0-9A-Z]{26}$/);
    expect(first.app.iconUrl).toBe(`/v1/apps/${first.app.id}/icon`);
    expect(await f.events()).toEqual([
      {
        type: 'app.uploaded',
        subjectId: first.app.id,
        data: { app: { id: first.app.id, sha256: sha, packageName: 'io.appium.settings', versionName: '8.0.10', uploaderId: 'usr_alice' } },
        requestId: 'req_1',
      },
    ]);

    const again = await f.apps.upload(alice, upload(APKS.settings), { fileName: 'other.apk' }, 'req_2');
    expect(again.status).toBe(200);
    expect(again.app).toEqual(first.app);
    expect(f.inspected).toHaveLength(1);
    const files = f.files();
    expect(files.filter((name) => name.endsWith('.apk'))).toEqual([join(sha.slice(0, 2), `${sha}.apk`)]);
    expect(files.filter((name) => name.startsWith('tmp'))).toEqual([]);
    expect(files.filter((name) => name.endsWith('.png'))).toHaveLength(1);
    expect(statSync(f.store.path(sha, '.apk')).mode & 0o777).toBe(0o600);
    expect(statSync(join(f.dir, 'blobs', sha.slice(0, 2))).mode & 0o777).toBe(0o700);
    expect((await f.events()).length).toBe(1);
    expect(await f.apps.icon(alice, first.app.id)).toEqual(readFileSync(join(f.dir, 'blobs', files.find((n) => n.endsWith('.png'))!)));

    // Another uploader: a new app (201) on the same blob, still parsed once.
    const bob = await f.user('bob');
    const theirs = await f.apps.upload(bob, upload(APKS.settings), {}, 'req_3');
    expect(theirs.status).toBe(201);
    expect(theirs.app.id).not.toBe(first.app.id);
    expect(theirs.app.fileName).toBeNull();
    expect(f.inspected).toHaveLength(1);
    expect(await f.counts()).toEqual({ apps: 2, blobs: 1 });
  });

  it('rejects an invalid APK with its reason, records nothing and leaves no file', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const truncated = readFileSync(APKS.unlock).subarray(0, 10_000);
    const bad = [
      { bytes: Buffer.from('definitely not a zip'), reason: /not a zip archive/ },
      { bytes: truncated, reason: /truncated/ },
      { bytes: buildZip([{ name: 'classes.dex', data: Buffer.from('x') }]), reason: /no AndroidManifest/ },
      { bytes: buildZip([{ name: 'AndroidManifest.xml' }, { name: '../evil' }]), reason: /escapes/ },
      {
        bytes: buildZip([{ name: 'AndroidManifest.xml' }, { name: 'bomb', data: Buffer.alloc(1 << 20), deflate: true, declaredSize: 0xfffffff0 }]),
        reason: /declares 4294967280 bytes/,
      },
    ];
    for (const { bytes, reason } of bad) {
      const error = await apiError(f.apps.upload(alice, Readable.from([bytes]), {}, 'req_bad'));
      expect(error.code).toBe('invalid_apk');
      expect(error.status).toBe(422);
      expect(error.message).toMatch(reason);
    }
    expect(await f.counts()).toEqual({ apps: 0, blobs: 0 });
    expect(await f.events()).toEqual([]);
    expect(f.files()).toEqual([]);
  });

  it('stops past the size limit with payload_too_large and removes the temporary file', async () => {
    const f = await fixture({ maxAppBytes: 100_000 });
    const alice = await f.user('alice');
    const error = await apiError(f.apps.upload(alice, upload(APKS.uiautomator2Test), {}, null));
    expect(error.code).toBe('payload_too_large');
    expect(error.status).toBe(413);
    expect(f.files()).toEqual([]);
    expect(await f.counts()).toEqual({ apps: 0, blobs: 0 });
    expect(f.inspected).toEqual([]);
    // Right at the limit is fine.
    const small = await f.apps.upload(alice, upload(APKS.unlock), {}, null);
    expect(small.status).toBe(201);
  });

  it('concurrent uploads of the same new bytes parse once and make one app per uploader', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const results = await Promise.all([1, 2, 3].map(() => f.apps.upload(alice, upload(APKS.unlock), {}, null)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 201]);
    expect(new Set(results.map((r) => r.app.id)).size).toBe(1);
    expect(f.inspected).toHaveLength(1);
    expect(f.files().filter((name) => name.startsWith('tmp'))).toEqual([]);
  });

  /** A parser that never finishes on its own: it only ends when its signal aborts. */
  const stuck = (_path: string, _limits: ApkLimits, signal: AbortSignal) =>
    new Promise<ApkInspection>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

  it('refuses an APK whose inspection passes the deadline as invalid_apk and removes its file', async () => {
    const f = await fixture({ inspect: stuck, inspectTimeoutMs: 200 });
    const alice = await f.user('alice');
    const started = Date.now();
    const error = await apiError(f.apps.upload(alice, upload(APKS.unlock), {}, null));
    expect(error.code).toBe('invalid_apk');
    expect(error.message).toMatch(/could not be inspected within 0\.2 s/);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(f.inspected).toHaveLength(1);
    expect(f.files()).toEqual([]);
    expect(await f.counts()).toEqual({ apps: 0, blobs: 0 });
  });

  it('close() cuts an inspection in progress with service_unavailable, removes its file, and refuses new uploads', async () => {
    const f = await fixture({ inspect: stuck });
    const alice = await f.user('alice');
    const uploading = apiError(f.apps.upload(alice, upload(APKS.unlock), {}, null));
    await vi.waitFor(() => expect(f.inspected).toHaveLength(1));
    await f.apps.close();
    const error = await uploading;
    expect(error.code).toBe('service_unavailable');
    expect(error.status).toBe(503);
    expect(f.files()).toEqual([]);
    const body = upload(APKS.unlock);
    expect((await apiError(f.apps.upload(alice, body, {}, null))).code).toBe('service_unavailable');
    expect(body.destroyed).toBe(true);
    expect(await f.counts()).toEqual({ apps: 0, blobs: 0 });
  });

  /** An upload whose body sends its first bytes and then waits; resolves once they are in a temporary file. */
  async function stalledUpload(f: Awaited<ReturnType<typeof fixture>>) {
    const body = new Readable({ read() {} });
    body.push(readFileSync(APKS.unlock).subarray(0, 1000));
    const uploading = apiError(f.apps.upload(await f.user('alice'), body, {}, null));
    await vi.waitFor(() => expect(f.files()).toHaveLength(1));
    return { body, uploading };
  }

  it('close() cuts a body still arriving and removes its temporary file', async () => {
    const f = await fixture();
    const { uploading } = await stalledUpload(f);
    await f.apps.close();
    expect((await uploading).code).toBe('service_unavailable');
    expect(f.files()).toEqual([]);
    expect(f.inspected).toEqual([]);
  });

  it('a body that fails before its end (a client gone) is validation_failed, with no file left', async () => {
    const f = await fixture();
    const { body, uploading } = await stalledUpload(f);
    body.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    expect((await uploading).code).toBe('validation_failed');
    expect(f.files()).toEqual([]);
  });
});

describe('AppService fromHash', () => {
  it('names stored bytes the caller can see without a transfer, 404 app_blob_not_found otherwise', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const admin = await f.user('root', 'admin');
    const sha = sha256Of(APKS.unlock);
    expect((await apiError(f.apps.fromHash(bob, { sha256: sha }, null))).code).toBe('app_blob_not_found');
    const alices = await f.apps.upload(alice, upload(APKS.unlock), {}, null);
    // Knowing the hash of alice's private APK is not having it: bob must send the bytes; an admin need not.
    expect((await apiError(f.apps.fromHash(bob, { sha256: sha }, null))).code).toBe('app_blob_not_found');
    expect((await f.apps.fromHash(admin, { sha256: sha }, null)).status).toBe(201);
    await f.apps.update(alice, alices.app.id, { shared: true }, null);
    const created = await f.apps.fromHash(bob, { sha256: sha, fileName: 'unlock.apk', shared: true }, 'req_h');
    expect(created.status).toBe(201);
    expect(created.app).toMatchObject({ uploaderId: 'usr_bob', fileName: 'unlock.apk', shared: true, sha256: sha });
    expect((await f.apps.fromHash(bob, { sha256: sha }, null)).status).toBe(200);
    expect(f.inspected).toHaveLength(1);
  });
});

describe('AppService visibility', () => {
  it('private apps are their uploader’s (and admins’); shared apps everyone’s', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const viewer = await f.user('vera', 'viewer');
    const admin = await f.user('root', 'admin');
    const priv = (await f.apps.upload(alice, upload(APKS.unlock), {}, null)).app;
    const shared = (await f.apps.upload(alice, upload(APKS.uiautomator2Test), { shared: true }, null)).app;
    const bobs = (await f.apps.upload(bob, upload(APKS.unlock), {}, null)).app;

    const ids = async (p: Principal, query = {}) => (await f.apps.list(p, { limit: 50, ...query })).data.map((a) => a.id);
    expect(await ids(alice)).toEqual([priv.id, shared.id]);
    expect(await ids(bob)).toEqual([shared.id, bobs.id]);
    expect(await ids(viewer)).toEqual([shared.id]);
    expect(await ids(admin)).toEqual([priv.id, shared.id, bobs.id]);
    expect(await ids(admin, { kind: 'test' })).toEqual([shared.id]);
    expect(await ids(admin, { kind: 'app' })).toEqual([priv.id, bobs.id]);
    expect(await ids(admin, { packageName: 'io.appium.unlock' })).toEqual([priv.id, bobs.id]);
    expect(await ids(admin, { uploaderId: 'usr_bob' })).toEqual([bobs.id]);
    expect(shared.kind).toBe('test');
    expect(shared.iconUrl).toBeNull();

    const page1 = await f.apps.list(admin, { limit: 2 });
    expect(page1.data).toHaveLength(2);
    const page2 = await f.apps.list(admin, { limit: 2, cursor: page1.nextCursor! });
    expect(page2.data.map((a) => a.id)).toEqual([bobs.id]);
    expect(page2.nextCursor).toBeNull();

    expect((await apiError(f.apps.get(bob, priv.id))).code).toBe('app_not_found');
    expect((await apiError(f.apps.download(bob, priv.id))).code).toBe('app_not_found');
    expect((await apiError(f.apps.icon(bob, priv.id))).code).toBe('app_not_found');
    expect((await apiError(f.apps.getForInstall(bob, priv.id))).code).toBe('app_not_found');
    expect((await f.apps.get(admin, priv.id)).id).toBe(priv.id);
    expect((await f.apps.get(viewer, shared.id)).id).toBe(shared.id);
    expect((await apiError(f.apps.icon(alice, shared.id))).code).toBe('icon_not_found');

    // Only the uploader or an admin changes or deletes an app.
    expect((await apiError(f.apps.update(bob, shared.id, { shared: false }, null))).code).toBe('insufficient_role');
    expect((await apiError(f.apps.delete(bob, shared.id, null))).code).toBe('insufficient_role');
    expect((await apiError(f.apps.update(bob, priv.id, { shared: true }, null))).code).toBe('app_not_found');
    expect((await f.apps.update(alice, priv.id, { shared: true }, 'req_share')).shared).toBe(true);
    expect(await ids(bob)).toEqual([priv.id, shared.id, bobs.id]);
    expect((await f.apps.update(admin, priv.id, { shared: false }, null)).shared).toBe(false);
    // A change is recorded once; asking for the state the app is already in records nothing.
    expect((await f.apps.update(admin, priv.id, { shared: false }, null)).shared).toBe(false);
    const updates = (await f.events()).filter((e) => e.type === 'app.updated');
    expect(updates).toHaveLength(2);
    expect(updates[0]).toMatchObject({
      subjectId: priv.id,
      requestId: 'req_share',
      data: { app: { id: priv.id }, changes: ['shared'] },
    });

    const forInstall = await f.apps.getForInstall(alice, priv.id);
    expect(forInstall).toMatchObject({ sha256: priv.sha256, size: priv.size, metadata: { packageName: 'io.appium.unlock' } });
    expect(await collect(f.apps.openBlob(priv.sha256))).toEqual(readFileSync(APKS.unlock));
  });
});

describe('AppService delete', () => {
  it('removes the blob and icon files when the last app referring to them goes', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const bob = await f.user('bob');
    const admin = await f.user('root', 'admin');
    const a = (await f.apps.upload(alice, upload(APKS.settings), {}, null)).app;
    const b = (await f.apps.upload(bob, upload(APKS.settings), {}, null)).app;
    const before = f.files();
    expect(before).toHaveLength(2); // apk + png

    await f.apps.delete(alice, a.id, 'req_d1');
    expect(f.files()).toEqual(before);
    expect(await f.counts()).toEqual({ apps: 1, blobs: 1 });
    expect((await apiError(f.apps.get(alice, a.id))).code).toBe('app_not_found');

    await f.apps.delete(admin, b.id, 'req_d2');
    expect(f.files()).toEqual([]);
    expect(await f.counts()).toEqual({ apps: 0, blobs: 0 });
    const deleted = (await f.events()).filter((e) => e.type === 'app.deleted');
    expect(deleted.map((e) => [e.subjectId, e.requestId])).toEqual([
      [a.id, 'req_d1'],
      [b.id, 'req_d2'],
    ]);
    expect((await apiError(f.apps.delete(admin, b.id, null))).code).toBe('app_not_found');

    // Uploading the bytes again parses them again and restores the files.
    expect((await f.apps.upload(alice, upload(APKS.settings), {}, null)).status).toBe(201);
    expect(f.inspected).toHaveLength(2);
    expect(f.files()).toHaveLength(2);
  });
});

describe('AppService download', () => {
  it('streams the whole APK or a byte range; 416 past the end', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const bytes = readFileSync(APKS.unlock);
    const total = bytes.length;
    const { app } = await f.apps.upload(alice, upload(APKS.unlock), { fileName: 'unlock.apk' }, null);

    const whole = await f.apps.download(alice, app.id);
    expect(whole).toMatchObject({ size: total, start: 0, end: total - 1, total, partial: false, fileName: 'unlock.apk' });
    expect(await collect(whole.stream)).toEqual(bytes);

    const cases: [string, number, number][] = [
      ['bytes=0-99', 0, 99],
      ['bytes=100-', 100, total - 1],
      ['bytes=-10', total - 10, total - 1],
      ['bytes=10-999999999', 10, total - 1],
      ['bytes=-999999999', 0, total - 1],
      ['bytes=5-6', 5, 6],
      [' bytes = 7 - ', 7, total - 1],
    ];
    for (const [range, start, end] of cases) {
      const part = await f.apps.download(alice, app.id, range);
      expect(part).toMatchObject({ start, end, total, size: end - start + 1, partial: true });
      expect(await collect(part.stream)).toEqual(bytes.subarray(start, end + 1));
    }
    for (const range of [`bytes=${total}-`, 'bytes=-0', `bytes=${total}-${total + 5}`]) {
      const error = await apiError(f.apps.download(alice, app.id, range));
      expect(error.code).toBe('range_not_satisfiable');
      expect(error.status).toBe(416);
    }
    // Ranges we do not serve are ignored: the whole file.
    for (const range of ['bytes=0-1,5-6', 'items=0-1']) {
      const ignored = await f.apps.download(alice, app.id, range);
      expect(ignored.partial).toBe(false);
      expect((await collect(ignored.stream)).length).toBe(total);
    }
    expect(parseRange('bytes=9-3', 100)).toBeUndefined();
  });
});

describe('AppService start', () => {
  it('removes the temporary files of interrupted uploads and the files no row refers to', async () => {
    const f = await fixture();
    const alice = await f.user('alice');
    const { app } = await f.apps.upload(alice, upload(APKS.settings), {}, null);
    const kept = f.files();
    expect(kept).toHaveLength(2); // the APK and its icon
    const root = join(f.dir, 'blobs');
    const orphan = 'ab'.padEnd(64, '0');
    mkdirSync(join(root, 'tmp'), { recursive: true });
    writeFileSync(join(root, 'tmp', 'interrupted-upload'), 'partial');
    mkdirSync(join(root, 'ab'), { recursive: true });
    writeFileSync(join(root, 'ab', `${orphan}.apk`), 'an APK whose row was never committed');
    writeFileSync(join(root, 'ab', `${orphan}.png`), 'its icon');

    expect(await f.apps.start()).toEqual({ temporary: 1, orphans: 2 });
    expect(f.files()).toEqual(kept);
    expect((await collect(f.apps.openBlob(app.sha256))).equals(readFileSync(APKS.settings))).toBe(true);
    expect(f.warnings).toHaveLength(1);
    // A second start finds nothing to do.
    expect(await f.apps.start()).toEqual({ temporary: 0, orphans: 0 });
  });
});

describe('AppService start on a store shared by server nodes', () => {
  it('removes only its own node\'s interrupted uploads and keeps files no row refers to yet', async () => {
    const f = await fixture({ sharedAs: 'node-1' });
    const root = join(f.dir, 'blobs');
    const orphan = 'cd'.padEnd(64, '0');
    mkdirSync(join(root, 'tmp', 'node-1'), { recursive: true });
    mkdirSync(join(root, 'tmp', 'node-2'), { recursive: true });
    writeFileSync(join(root, 'tmp', 'node-1', 'interrupted-upload'), 'partial');
    writeFileSync(join(root, 'tmp', 'node-2', 'upload-in-progress'), 'partial');
    mkdirSync(join(root, 'cd'), { recursive: true });
    writeFileSync(join(root, 'cd', `${orphan}.apk`), 'another node is about to commit its row');

    expect(await f.apps.start()).toEqual({ temporary: 1, orphans: 0 });
    expect(f.files()).toEqual([join('cd', `${orphan}.apk`), join('tmp', 'node-2', 'upload-in-progress')]);
  });
});

describe('BlobStore', () => {
  it('commits atomically and idempotently, and removes what it is asked to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudphone-blobs-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = new BlobStore(dir);
    const data = Buffer.from('hello blobs');
    const sha = createHash('sha256').update(data).digest('hex');
    const a = await store.ingest(Readable.from([data.subarray(0, 5), data.subarray(5)]), { limit: 100 });
    expect(a).toMatchObject({ sha256: sha, size: data.length });
    expect(statSync(a.tempPath).mode & 0o777).toBe(0o600);
    await store.commit(a.tempPath, sha, '.bin');
    const b = await store.ingest(Readable.from([data]), { limit: 100 });
    await store.commit(b.tempPath, sha, '.bin');
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(readFileSync(store.path(sha, '.bin'))).toEqual(data);
    expect(await collect(store.open(sha, '.bin', { range: { start: 6, end: 10 } }))).toEqual(Buffer.from('blobs'));
    expect(await store.put(data, '.bin')).toBe(sha);
    await store.remove(sha, '.bin');
    await store.remove(sha, '.bin');
    expect(await store.has(sha, '.bin')).toBe(false);
    const error = await apiError(store.ingest(Readable.from([data, data]), { limit: 15 }));
    expect(error.code).toBe('payload_too_large');
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    expect(() => store.path('../etc/passwd')).toThrow();
  });
});
