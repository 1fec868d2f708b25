import { WebSocket, type RawData } from 'ws';
import { expect } from 'vitest';
import { expectSchema } from '../helpers/contract.js';
import type { Api } from './harness.js';

export { eventually } from '../devices/helpers.js';

export type Json = Record<string, any>;

/** Every device of the inventory (all pages). */
export async function allDevices(api: Api, token: string, query: Record<string, any> = {}): Promise<Json[]> {
  const devices: Json[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.call('listDevices', {
      token,
      query: { limit: 100, ...query, ...(cursor === undefined ? {} : { cursor }) },
    });
    expect(page.status).toBe(200);
    devices.push(...page.body.data);
    cursor = page.body.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return devices;
}

/** A granted lease on exactly `deviceId` for the caller; fails otherwise. */
export async function leaseDevice(api: Api, token: string, deviceId: string, ttlSeconds = 900): Promise<Json> {
  const created = await api.call('createLease', { token, body: { selector: { deviceIds: [deviceId] }, ttlSeconds } });
  if (created.status !== 201) throw new Error(`lease ${deviceId}: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body;
}

export async function release(api: Api, token: string, leaseId: string): Promise<Json> {
  const released = await api.call('releaseLease', { token, path: { leaseId } });
  expect(released.status).toBe(200);
  return released.body;
}

export function wsUrl(api: Api, path: string, query: Record<string, string> = {}): string {
  const search = new URLSearchParams(query).toString();
  return `${api.url.replace(/^http/, 'ws')}${path}${search === '' ? '' : `?${search}`}`;
}

export type Upgrade =
  | { upgraded: true; ws: WebSocket }
  | { upgraded: false; status: number; contentType: string | undefined; body: Json };

/** Opens a WebSocket; a refused upgrade resolves with the HTTP response (status and problem body). */
export function openWebSocket(url: string, token: string | undefined): Promise<Upgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    ws.once('open', () => resolve({ upgraded: true, ws }));
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let body: Json = {};
        try {
          body = JSON.parse(text) as Json;
        } catch {
          body = { text };
        }
        resolve({ upgraded: false, status: response.statusCode ?? 0, contentType: response.headers['content-type'], body });
        ws.terminate();
      });
    });
    ws.once('error', (error) => reject(error));
  });
}

/** Expects the upgrade to be refused with a problem of `status` and `code` (never 101). */
export async function expectRefusedUpgrade(url: string, token: string | undefined, status: number, code: string): Promise<void> {
  const result = await openWebSocket(url, token);
  if (result.upgraded) {
    result.ws.terminate();
    throw new Error(`${url}: upgraded, expected ${status} ${code}`);
  }
  expect({ status: result.status, code: result.body.code }).toEqual({ status, code });
  expect(result.contentType).toMatch(/^application\/problem\+json/);
  expectSchema('Problem', result.body);
}

export interface Recorded {
  messages: { binary: boolean; data: Buffer }[];
  closed: Promise<{ code: number; reason: string }>;
}

/** Records every message and the close of a WebSocket. */
export function record(ws: WebSocket): Recorded {
  const messages: Recorded['messages'] = [];
  ws.on('message', (data: RawData, binary: boolean) => {
    messages.push({ binary, data: Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer) });
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  return { messages, closed };
}

export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
