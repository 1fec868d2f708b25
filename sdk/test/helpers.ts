import { MockAgent } from 'undici';
import { CloudPhone, type ClientOptions, type User } from '../src/index.js';

export const ORIGIN = 'http://api.test';
export const JSON_HEADERS = { 'content-type': 'application/json' };
export const PROBLEM_HEADERS = { 'content-type': 'application/problem+json', 'x-request-id': 'req_header' };

export const user: User = {
  id: 'usr_01JDX3N2Q8B7W6M4K9T5R1C0ZA',
  username: 'alice',
  displayName: 'Alice Martin',
  role: 'member',
  disabled: false,
  createdAt: '2026-11-20T09:30:00Z',
  updatedAt: '2026-11-20T09:30:00Z',
};

export const me = { ...user, authentication: { method: 'session' as const, scopes: ['read' as const, 'write' as const] } };

export function problem(status: number, code: string, detail = `detail of ${code}`) {
  return {
    type: `https://cloudphone.dev/problems/${code}`,
    title: code,
    status,
    code,
    detail,
    requestId: `req_${code}`,
  };
}

/**
 * A client talking to a MockAgent for `ORIGIN`, with no waiting between attempts: `delays` records what the
 * client asked to sleep, and jitter is 0 so backoff delays are exact.
 */
export function mockClient(options: ClientOptions = {}) {
  const agent = new MockAgent({ enableCallHistory: true });
  agent.disableNetConnect();
  const pool = agent.get(ORIGIN);
  const delays: number[] = [];
  const client = new CloudPhone({
    baseUrl: ORIGIN,
    token: 'cpa_initial',
    dispatcher: agent,
    sleep: async (ms) => {
      delays.push(ms);
    },
    jitter: () => 0,
    ...options,
  });
  const calls = () => agent.getCallHistory()?.calls() ?? [];
  /** The value of one request header on every request made so far. */
  const header = (name: string) => calls().map((call) => (call.headers as Record<string, string> | null)?.[name]);
  return { agent, pool, client, delays, calls, header };
}
