import { sql, type Insertable, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { jsonText } from '../db/dialect.js';
import type { AppBlobsTable, AppsTable, DB } from '../db/schema.js';

export type AppRow = Selectable<AppsTable>;
export type AppBlobRow = Selectable<AppBlobsTable>;

/** An app with its blob's size, metadata and icon, and its uploader's name. */
export interface AppViewRow extends AppRow {
  size: number;
  package_name: string;
  metadata: string;
  icon_sha256: string | null;
  uploader_name: string;
}

export interface AppQuery {
  packageName: string | undefined;
  kind: 'app' | 'test' | undefined;
  uploaderId: string | undefined;
  /** Only the apps this user owns or that are shared; `undefined` for every app (admins). */
  visibleTo: string | undefined;
  afterId: string | undefined;
  limit: number;
}

function appViews(db: Kysely<DB>) {
  return db
    .selectFrom('apps')
    .innerJoin('app_blobs', 'app_blobs.sha256', 'apps.sha256')
    .innerJoin('users', 'users.id', 'apps.owner_id')
    .selectAll('apps')
    .select([
      'app_blobs.size as size',
      'app_blobs.package_name as package_name',
      'app_blobs.metadata as metadata',
      'app_blobs.icon_sha256 as icon_sha256',
      'users.username as uploader_name',
    ]);
}

export async function findAppView(db: Kysely<DB>, id: string): Promise<AppViewRow | undefined> {
  return appViews(db).where('apps.id', '=', id).executeTakeFirst();
}

export async function findAppViewByOwner(
  db: Kysely<DB>,
  ownerId: string,
  sha256: string,
): Promise<AppViewRow | undefined> {
  return appViews(db).where('apps.owner_id', '=', ownerId).where('apps.sha256', '=', sha256).executeTakeFirst();
}

/** Apps matching every filter, in id order. */
export async function queryAppViews(db: Kysely<DB>, query: AppQuery): Promise<AppViewRow[]> {
  let select = appViews(db);
  if (query.packageName !== undefined) select = select.where('app_blobs.package_name', '=', query.packageName);
  if (query.kind !== undefined) {
    const instrumented = sql<SqlBool>`${jsonText(db, 'app_blobs.metadata', 'instrumentation')} is not null`;
    select = select.where(query.kind === 'test' ? instrumented : sql<SqlBool>`not (${instrumented})`);
  }
  if (query.uploaderId !== undefined) select = select.where('apps.owner_id', '=', query.uploaderId);
  const { visibleTo } = query;
  if (visibleTo !== undefined) {
    select = select.where((eb) => eb.or([eb('apps.owner_id', '=', visibleTo), eb('apps.shared', '=', 1)]));
  }
  if (query.afterId !== undefined) select = select.where('apps.id', '>', query.afterId);
  return select.orderBy('apps.id').limit(query.limit).execute();
}

export async function findBlob(db: Kysely<DB>, sha256: string): Promise<AppBlobRow | undefined> {
  return db.selectFrom('app_blobs').selectAll().where('sha256', '=', sha256).executeTakeFirst();
}

/** Inserts a blob's row unless it exists (two uploads of the same new bytes may race). */
export async function insertBlob(db: Kysely<DB>, row: Insertable<AppBlobsTable>): Promise<void> {
  await db
    .insertInto('app_blobs')
    .values(row)
    .onConflict((oc) => oc.column('sha256').doNothing())
    .execute();
}

export async function insertApp(db: Kysely<DB>, row: Insertable<AppsTable>): Promise<void> {
  await db.insertInto('apps').values(row).execute();
}

export async function setAppShared(db: Kysely<DB>, id: string, shared: boolean): Promise<void> {
  await db
    .updateTable('apps')
    .set({ shared: shared ? 1 : 0 })
    .where('id', '=', id)
    .execute();
}

export async function deleteApp(db: Kysely<DB>, id: string): Promise<void> {
  await db.deleteFrom('apps').where('id', '=', id).execute();
}

/** Whether `userId` can see an app of these bytes: one of their own, or a shared one. */
export async function blobVisibleTo(db: Kysely<DB>, sha256: string, userId: string): Promise<boolean> {
  const row = await db
    .selectFrom('apps')
    .select('id')
    .where('sha256', '=', sha256)
    .where((eb) => eb.or([eb('owner_id', '=', userId), eb('shared', '=', 1)]))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

export async function countAppsOfBlob(db: Kysely<DB>, sha256: string): Promise<number> {
  const row = await db
    .selectFrom('apps')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('sha256', '=', sha256)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function deleteBlob(db: Kysely<DB>, sha256: string): Promise<void> {
  await db.deleteFrom('app_blobs').where('sha256', '=', sha256).execute();
}

export async function countBlobsWithIcon(db: Kysely<DB>, iconSha256: string): Promise<number> {
  const row = await db
    .selectFrom('app_blobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('icon_sha256', '=', iconSha256)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
