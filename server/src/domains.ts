import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import { TokenAuthenticator } from './auth/authenticator.js';
import { authHandlers } from './auth/handlers.js';
import { AuthService } from './auth/service.js';
import { revokeUserSessions } from './auth/sessions.js';
import type { ServerConfig } from './config.js';
import type { DB } from './db/schema.js';
import { eventHandlers } from './events/handlers.js';
import { EventService } from './events/service.js';
import type { Authenticator } from './http/auth.js';
import type { Handlers } from './http/handler.js';
import { meHandlers } from './me/handlers.js';
import { MeService } from './me/service.js';
import { apiTokenHandlers } from './tokens/handlers.js';
import { ApiTokenService } from './tokens/service.js';
import { userHandlers } from './users/handlers.js';
import { UserService } from './users/service.js';

export interface DomainDeps {
  db: Kysely<DB>;
  clock: () => Date;
  config: ServerConfig;
  log: FastifyBaseLogger;
}

export interface Domains {
  /** Exactly one per operation of the contract. */
  handlers: Handlers;
  /** Resolves a bearer token to a principal, or throws an `ApiError` with a 401 code. */
  authenticator: Authenticator;
  /** Creates the first admin on an empty database; returns its one-time password, or null if users exist. */
  bootstrap(): Promise<{ username: string; password: string } | null>;
}

/** Wires the domains (users, auth, API tokens, me, events) over one database. */
export function createDomains({ db, clock, config, log }: DomainDeps): Domains {
  const users = new UserService({ db, clock, sessions: { revokeUserSessions } });
  const auth = new AuthService({ db, clock, config });
  const tokens = new ApiTokenService({ db, clock });
  const me = new MeService({ users });
  const events = new EventService(db);
  return {
    handlers: {
      ...authHandlers(auth),
      ...meHandlers(me),
      ...userHandlers(users),
      ...apiTokenHandlers(tokens),
      ...eventHandlers(events),
    },
    authenticator: new TokenAuthenticator({ db, clock }),
    async bootstrap() {
      const created = await users.bootstrap(config.adminPassword);
      if (created !== null) log.info({ username: created.username }, 'created the first admin');
      return created;
    },
  };
}
