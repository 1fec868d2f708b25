import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { logFormat } from '../../src/index.js';
import { createLogger, humanLogStream } from '../../src/logger.js';
import { LogCapture } from './fixtures.js';

describe('createLogger', () => {
  it('redacts credentials wherever they appear', () => {
    const logs = new LogCapture();
    const log = createLogger({ level: 'info', node: 'node-a', stream: logs });
    log.info(
      {
        password: 'p1',
        body: { currentPassword: 'p2', refreshToken: 'cpr_x', nested: { accessToken: 'cpa_x', secret: 'cpt_x' } },
        token: 'cpt_y',
        req: { headers: { authorization: 'Bearer cpa_z', cookie: 'session=1', accept: 'application/json' } },
      },
      'sample',
    );
    const [entry] = logs.entries;
    expect(entry).toMatchObject({
      password: '[redacted]',
      body: {
        currentPassword: '[redacted]',
        refreshToken: '[redacted]',
        nested: { accessToken: '[redacted]', secret: '[redacted]' },
      },
      token: '[redacted]',
      req: { headers: { authorization: '[redacted]', cookie: '[redacted]', accept: 'application/json' } },
    });
    expect(logs.text).not.toMatch(/p1|p2|cp[art]_/);
  });

  it('names the node on every line, its children\'s too', () => {
    const logs = new LogCapture();
    const log = createLogger({ level: 'info', node: 'cp-1.rack-2', stream: logs });
    log.info('from the root');
    log.child({ requestId: 'req_1' }).warn('from a child');
    expect(logs.entries).toEqual([
      expect.objectContaining({ node: 'cp-1.rack-2', msg: 'from the root' }),
      expect.objectContaining({ node: 'cp-1.rack-2', requestId: 'req_1', msg: 'from a child' }),
    ]);
  });

  it('honours the level', () => {
    const logs = new LogCapture();
    const log = createLogger({ level: 'warn', node: 'node-a', stream: logs });
    log.info('hidden');
    log.warn('shown');
    expect(logs.entries.map((e) => e.msg)).toEqual(['shown']);
  });
});

describe('the pretty format', () => {
  it('writes readable lines naming the node, credentials redacted as in JSON', () => {
    const logs = new LogCapture();
    const log = createLogger({ level: 'info', node: 'node-a', format: 'pretty', stream: logs });
    log.info({ password: 'p1', body: { refreshToken: 'cpr_x' }, userId: 'usr_1' }, 'sample');
    log.warn('careful');
    expect(logs.lines).toEqual([
      expect.stringMatching(
        /^\d\d:\d\d:\d\d\.\d{3} node-a INFO  sample password=\[redacted\] body=\{"refreshToken":"\[redacted\]"\} userId=usr_1\n$/,
      ),
      expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3} node-a WARN  careful\n$/),
    ]);
    expect(logs.text).not.toMatch(/p1|cpr_/);
  });

  it.each([
    ['auto', true, 'pretty'],
    ['auto', false, 'json'],
    ['json', true, 'json'],
    ['pretty', false, 'pretty'],
  ] as const)('%s with a terminal %s is %s', (setting, terminal, format) => {
    expect(logFormat(setting, terminal)).toBe(format);
  });
});

describe('humanLogStream', () => {
  function render(line: Record<string, unknown>): string {
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    humanLogStream(out).write(`${JSON.stringify(line)}\n`);
    return text;
  }

  it('writes time, level, message and fields on one line', () => {
    const text = render({
      level: 30,
      time: '2026-11-20T09:30:00.123Z',
      pid: 1,
      hostname: 'h',
      requestId: 'req_1',
      method: 'GET',
      path: '/v1/me',
      status: 200,
      msg: 'request completed',
    });
    expect(text).toBe('09:30:00.123 INFO  request completed requestId=req_1 method=GET path=/v1/me status=200\n');
  });

  it('quotes values with spaces and keeps an error stack', () => {
    const text = render({
      level: 50,
      time: '2026-11-20T09:30:00.000Z',
      msg: 'request failed',
      note: 'two words',
      err: { message: 'boom', stack: 'Error: boom\n    at x' },
    });
    expect(text).toBe('09:30:00.000 ERROR request failed note="two words"\nError: boom\n    at x\n');
  });
});
