import type { Kysely } from 'kysely';

/**
 * Which server node runs a piece of background work, so that when several share the database the work of a node
 * that stopped is taken over rather than left hanging: an install job's runner, and a device's reset.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('install_jobs').addColumn('node', 'text').execute();
  await db.schema.alterTable('devices').addColumn('resetting_node', 'text').execute();
}
