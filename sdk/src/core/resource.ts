import type { CloudPhone } from '../client.js';

/** The base of the generated resource classes (`cp.users`, `cp.tokens`, …): they call back into their client. */
export abstract class APIResource {
  protected readonly client: CloudPhone;

  constructor(client: CloudPhone) {
    this.client = client;
  }
}
