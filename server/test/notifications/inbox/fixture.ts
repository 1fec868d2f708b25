import { expect } from 'vitest';
import { ulid } from '../../../src/db/ids.js';
import type { AppendedEvent } from '../../../src/events/types.js';
import type { EventType } from '../../../src/events/types.js';
import { ApiError } from '../../../src/http/errors.js';

let sequence = 0;

/** An event as `appendEvent` hands it to the outboxes, at 2026-11-21T14:10:00Z. */
export function appended(type: EventType, data: unknown, audienceId: string | null = null): AppendedEvent {
  sequence += 1;
  return {
    id: `evt_${ulid(Date.parse('2026-11-21T14:10:00.000Z') + sequence)}`,
    type,
    occurredAt: '2026-11-21T14:10:00.000Z',
    actorId: null,
    subjectType: null,
    subjectId: null,
    audienceId,
    data,
    requestId: null,
  };
}

export async function rejection(action: () => Promise<unknown>): Promise<ApiError> {
  const error = await action().then(
    () => new Error('expected an ApiError'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}
