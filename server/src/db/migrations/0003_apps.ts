import { sql, type Kysely } from 'kysely';
import { bigintType } from '../dialect.js';

/** Content-addressed APK blobs with their parsed metadata, the apps that name them, and install jobs. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('app_blobs')
    .addColumn('sha256', 'text', (c) => c.primaryKey())
    .addColumn('size', bigintType(db), (c) => c.notNull())
    .addColumn('package_name', 'text', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('icon_sha256', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('apps')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('sha256', 'text', (c) => c.notNull().references('app_blobs.sha256'))
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('file_name', 'text')
    .addColumn('shared', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('apps_owner_sha256', ['owner_id', 'sha256'])
    .execute();
  await db.schema.createIndex('apps_sha256').on('apps').column('sha256').execute();

  await db.schema
    .createTable('install_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('pending', 'running', 'succeeded', 'failed')`),
    )
    .addColumn('options', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .execute();

  await db.schema
    .createTable('install_job_devices')
    .addColumn('job_id', 'text', (c) => c.notNull().references('install_jobs.id').onDelete('cascade'))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('serial', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('pending', 'installing', 'installed', 'failed')`),
    )
    .addColumn('reason', 'text')
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addPrimaryKeyConstraint('install_job_devices_pk', ['job_id', 'device_id'])
    .execute();
}
