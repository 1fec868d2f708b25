import { callerOf } from '../caller.js';
import type { Handlers } from '../http/handler.js';
import { DEFAULT_PAGE_SIZE } from '../pagination.js';
import type { EventService } from './service.js';

export type EventHandlers = Pick<Handlers, 'listEvents' | 'getEvent'>;

export function eventHandlers(events: EventService): EventHandlers {
  return {
    listEvents: async ({ query, ctx }) => {
      const page = await events.list(callerOf(ctx), {
        types: query.type,
        since: query.since,
        until: query.until,
        subjectId: query.subjectId,
        order: query.order,
        cursor: query.cursor,
        limit: query.limit ?? DEFAULT_PAGE_SIZE,
      });
      return { status: 200, body: { data: page.data, nextCursor: page.nextCursor } };
    },
    getEvent: async ({ params, ctx }) => ({
      status: 200,
      body: await events.get(callerOf(ctx), params.eventId),
    }),
  };
}
