import { Flags } from '@oclif/core';
import type { Page, PagePromise, RequestOptions } from '@cloudphone/sdk';
import { BaseCommand } from './base-command.js';
import { CancelledError, UsageError } from '../lib/errors.js';
import { renderKeyValue, renderTable } from '../lib/output.js';
import { canPrompt, confirm } from '../lib/prompt.js';
import { buildRequest, readData, type OperationSpec, type RequestParts } from '../lib/request.js';

export type { OperationSpec } from '../lib/request.js';

/** The most items one page may hold. */
const MAX_PAGE_SIZE = 200;
const DEFAULT_LIMIT = 50;

/** Flags generated commands add according to their operation. */
export const operationFlags = {
  /** The whole request body as JSON. */
  data: () =>
    Flags.string({
      summary: 'The request body as JSON, @file.json, or - for standard input; other flags override its fields.',
      helpValue: '<json|@file|->',
    }),
  idempotencyKey: () =>
    Flags.string({
      summary: 'Makes retrying this command safe: the server answers a repeat with the stored response.',
      helpValue: '<key>',
    }),
  limit: () =>
    Flags.integer({
      summary: `Show at most this many items, fetching pages as needed [default: ${DEFAULT_LIMIT}].`,
      min: 1,
      exclusive: ['all'],
    }),
  all: () =>
    Flags.boolean({
      summary: 'Fetch every page.',
      exclusive: ['limit'],
    }),
  yes: () =>
    Flags.boolean({
      char: 'y',
      summary: 'Do not ask for confirmation.',
    }),
};

/** The SDK's generic calls, for an operationId known from the command's metadata. */
interface OperationClient {
  request(operationId: string, params: RequestParts, options?: RequestOptions): Promise<unknown>;
  paginate(operationId: string, params: RequestParts, options?: RequestOptions): PagePromise<unknown>;
}

/**
 * The base of every generated command: builds the request from arguments, flags and `--data`, asks before
 * destructive operations, calls the operation through the SDK and prints the result.
 */
export abstract class OperationCommand extends BaseCommand<typeof OperationCommand> {
  /** The operation this command calls, from the contract. */
  static operation: OperationSpec;

  async run(): Promise<void> {
    const op = (this.constructor as typeof OperationCommand).operation;
    const flags = this.flags as Record<string, unknown>;
    const data = typeof flags.data === 'string' ? await readData(flags.data) : undefined;
    const request = buildRequest(op, this.args, flags, data);
    if (op.destructive && !flags.yes) await this.confirmDestructive(request);

    const client: OperationClient = await this.client({ authenticated: op.authenticated });
    const options: RequestOptions = {};
    if (typeof flags['idempotency-key'] === 'string') options.idempotencyKey = flags['idempotency-key'];

    if (op.paginated) {
      const all = flags.all === true;
      const limit = all ? Number.POSITIVE_INFINITY : ((flags.limit as number | undefined) ?? DEFAULT_LIMIT);
      const pageSize = Math.min(limit, MAX_PAGE_SIZE);
      const paged = { ...request, query: { ...request.query, limit: pageSize } };
      const { items, more } = await collect(client.paginate(op.id, paged, options), limit);
      this.outList(items, op.columns);
      if (more && !this.jsonEnabled()) this.note(`Showing the first ${items.length}. There are more: use --limit <n> or --all.`);
      return;
    }

    const result = await client.request(op.id, request, options);
    if (op.list) return this.outList(listRowsOf(result, op.list.field), op.columns);
    if (result === undefined) {
      if (!this.jsonEnabled()) this.note(`${this.commandLine(request)}: done.`);
      return;
    }
    if (this.jsonEnabled()) return this.outJson(result);
    const render = { color: this.color };
    this.out(Array.isArray(result) ? renderTable(result, op.columns, render) : renderKeyValue(result, op.columns, render));
  }

  /** Rows as a table, or with `--json` as one array. */
  private outList(rows: unknown[], columns: readonly string[]): void {
    if (this.jsonEnabled()) return this.outJson(rows);
    if (rows.length === 0) this.note('No results.');
    else this.out(renderTable(rows, columns, { color: this.color }));
  }

  /** `users delete usr_…`, for messages. */
  private commandLine(request: RequestParts): string {
    return [this.id?.replaceAll(':', ' '), ...Object.values(request.path ?? {})].filter(Boolean).join(' ');
  }

  private async confirmDestructive(request: RequestParts): Promise<void> {
    const line = this.commandLine(request);
    if (!canPrompt()) throw new UsageError(`${line} cannot be undone: pass --yes to confirm (no terminal to ask on)`);
    const summary = (this.constructor as typeof OperationCommand).summary ?? line;
    if (!(await confirm(`${summary}: ${line}. Continue?`))) throw new CancelledError();
  }
}

/** The rows of a list response: the response itself, or its `field`. */
function listRowsOf(result: unknown, field: string | undefined): unknown[] {
  const rows = field === undefined ? result : (result as Record<string, unknown> | null)?.[field];
  if (!Array.isArray(rows)) throw new Error(`The server answered no list${field ? ` in ${field}` : ''}`);
  return rows;
}

/** Items from consecutive pages until `limit`, and whether more were left. */
async function collect(first: PromiseLike<Page<unknown>>, limit: number): Promise<{ items: unknown[]; more: boolean }> {
  const items: unknown[] = [];
  let page = await first;
  for (;;) {
    const room = limit - items.length;
    items.push(...page.data.slice(0, room));
    if (page.data.length > room) return { items, more: true };
    if (!page.hasNextPage()) return { items, more: false };
    if (items.length >= limit) return { items, more: true };
    page = await page.getNextPage();
  }
}
