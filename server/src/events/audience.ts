import type { Kysely } from 'kysely';
import type { DB } from '../db/schema.js';
import { holderOf } from '../leases/repository.js';
import type { EventType, NewEvent } from './types.js';

type Data = Record<string, unknown>;

function field(data: Data, ...path: string[]): string | null {
  let value: unknown = data;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return null;
    value = (value as Data)[key];
  }
  return typeof value === 'string' ? value : null;
}

/**
 * The user an event concerns besides its actor and subject, who may therefore see it (in the log, on the live
 * stream, through their webhooks): a lease's holder, an app's uploader, an install job's user, a device's holder at
 * the time, a user-scope budget's user, an invoice's or a token's user, a webhook endpoint's owner. Null when the
 * event concerns no one but admins (hosts, plans, project budgets).
 */
export async function audienceOf<T extends EventType>(db: Kysely<DB>, event: NewEvent<T>): Promise<string | null> {
  const data = event.data as Data;
  const type: string = event.type;
  if (type.startsWith('lease.')) return field(data, 'lease', 'userId');
  if (type.startsWith('app.install.')) {
    const jobId = field(data, 'jobId');
    if (jobId === null) return null;
    const job = await db.selectFrom('install_jobs').select('user_id').where('id', '=', jobId).executeTakeFirst();
    return job?.user_id ?? null;
  }
  if (type.startsWith('app.')) return field(data, 'app', 'uploaderId');
  if (type === 'device.reset') {
    const leaseId = field(data, 'leaseId');
    if (leaseId === null) return null;
    const lease = await db.selectFrom('leases').select('user_id').where('id', '=', leaseId).executeTakeFirst();
    return lease?.user_id ?? null;
  }
  if (type.startsWith('device.')) {
    const deviceId = field(data, 'device', 'id');
    return deviceId === null ? null : ((await holderOf(db, deviceId))?.userId ?? null);
  }
  if (type.startsWith('budget.') || type === 'usage.threshold_reached') return field(data, 'budget', 'userId');
  if (type.startsWith('invoice.')) return field(data, 'invoice', 'userId');
  if (type.startsWith('token.')) return field(data, 'token', 'userId');
  if (type === 'webhook.test') {
    const endpointId = field(data, 'endpointId');
    if (endpointId === null) return null;
    const endpoint = await db.selectFrom('webhook_endpoints').select('user_id').where('id', '=', endpointId).executeTakeFirst();
    return endpoint?.user_id ?? null;
  }
  if (type.startsWith('webhook.')) return field(data, 'endpoint', 'userId');
  return field(data, 'userId');
}
