import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ServerSentEventParser, type ServerSentEvent } from '../src/core/sse.js';

/** Every event of `stream`, read in one piece and ended. */
function parse(stream: string | Uint8Array, parser = new ServerSentEventParser()): ServerSentEvent[] {
  return [...parser.feed(stream), ...parser.end()];
}

const utf8 = (text: string) => new TextEncoder().encode(text);

describe('ServerSentEventParser', () => {
  it('reads an event with an id, a type and data', () => {
    const parser = new ServerSentEventParser();
    expect(parser.feed('id: evt_1\nevent: lease.granted\ndata: {"a":1}\n\n')).toEqual([
      { type: 'lease.granted', data: '{"a":1}', lastEventId: 'evt_1' },
    ]);
    expect(parser.lastEventId).toBe('evt_1');
  });

  it('joins data lines with LF and drops the last line end', () => {
    expect(parse('data: one\ndata: two\ndata:\ndata: three\n\n')).toEqual([{ type: 'message', data: 'one\ntwo\n\nthree', lastEventId: '' }]);
  });

  it('removes one space after the colon, no more, and takes a line without a colon as a field with an empty value', () => {
    expect(parse('data:x\n\ndata:  x\n\ndata\n\ndata:\n\n').map((event) => event.data)).toEqual(['x', ' x', '', '']);
  });

  it('keeps colons in the value', () => {
    expect(parse('data: a:b: c\n\n')[0]?.data).toBe('a:b: c');
  });

  it('ignores comments, unknown fields and field names that only resemble known ones', () => {
    expect(parse(': keepalive\n\n:\nfoo: bar\nData: no\n data: no\ndata : no\ndata: yes\n\n')).toEqual([
      { type: 'message', data: 'yes', lastEventId: '' },
    ]);
  });

  it('does not dispatch a block without data, and its event type does not carry over', () => {
    const parser = new ServerSentEventParser();
    expect(parser.feed('event: ping\n\n: keepalive\n\n\n\n')).toEqual([]);
    expect(parser.feed('data: after\n\n')).toEqual([{ type: 'message', data: 'after', lastEventId: '' }]);
  });

  it('takes an empty event field as the default type', () => {
    expect(parse('event:\ndata: x\n\n')[0]?.type).toBe('message');
  });

  it('accepts CRLF, CR and LF line ends, mixed', () => {
    const events = parse('id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\rid: 3\ndata: c\n\nid: 4\r\ndata: d\r\r\n');
    expect(events.map((event) => [event.lastEventId, event.data])).toEqual([
      ['1', 'a'],
      ['2', 'b'],
      ['3', 'c'],
      ['4', 'd'],
    ]);
  });

  it('reads a CRLF split between chunks as one line end, and dispatches on a lone CR without waiting', () => {
    const parser = new ServerSentEventParser();
    expect(parser.feed('data: a\r')).toEqual([]);
    expect(parser.feed('\n\r')).toEqual([{ type: 'message', data: 'a', lastEventId: '' }]);
    // The LF after that CR ends the same (blank) line: it is not a second blank line, nor part of the next one.
    expect(parser.feed('\ndata: b\r\n')).toEqual([]);
    expect(parser.feed('\r\n')).toEqual([{ type: 'message', data: 'b', lastEventId: '' }]);
  });

  it('strips one BOM at the start of the stream, whole or split, and no other', () => {
    const bom = [0xef, 0xbb, 0xbf];
    expect(parse(new Uint8Array([...bom, ...utf8('data: x\n\n')]))).toEqual([{ type: 'message', data: 'x', lastEventId: '' }]);

    const split = new ServerSentEventParser();
    expect(split.feed(new Uint8Array(bom.slice(0, 1)))).toEqual([]);
    expect(split.feed(new Uint8Array(bom.slice(1)))).toEqual([]);
    expect(split.feed('data: x\n\n')).toEqual([{ type: 'message', data: 'x', lastEventId: '' }]);

    // A second BOM is part of the first line, whose field name is then unknown.
    expect(parse('\uFEFF\uFEFFdata: x\n\ndata: y\n\n').map((event) => event.data)).toEqual(['y']);
    expect(parse('data: a\n\n\uFEFFdata: b\n\n').map((event) => event.data)).toEqual(['a']);
  });

  it('decodes UTF-8 sequences cut between chunks', () => {
    const bytes = utf8('data: é€😀\n\n');
    const parser = new ServerSentEventParser();
    const events = [...bytes].flatMap((byte) => parser.feed(new Uint8Array([byte])));
    expect(events).toEqual([{ type: 'message', data: 'é€😀', lastEventId: '' }]);
  });

  it('keeps the last event id across events, resets it with an empty id, and ignores an id containing NUL', () => {
    const events = parse('id: a\ndata: 1\n\ndata: 2\n\nid: b\0c\ndata: 3\n\nid\ndata: 4\n\n');
    expect(events.map((event) => event.lastEventId)).toEqual(['a', 'a', 'a', '']);
  });

  it('sets the last event id on a block without data, which is not an event', () => {
    const parser = new ServerSentEventParser();
    expect(parser.feed('id: evt_9\n\n')).toEqual([]);
    expect(parser.lastEventId).toBe('evt_9');
  });

  it('sets the last event id only when the block is dispatched', () => {
    const parser = new ServerSentEventParser({ lastEventId: 'evt_0' });
    expect(parser.feed('id: evt_1\ndata: x\n')).toEqual([]);
    expect(parser.lastEventId).toBe('evt_0');
    expect(parser.end()).toEqual([]);
    expect(parser.lastEventId).toBe('evt_0');
    // The unfinished block's id and data are forgotten with it.
    expect(parser.feed('data: y\n\n')).toEqual([{ type: 'message', data: 'y', lastEventId: 'evt_0' }]);
  });

  it('takes retry only when it is all ASCII digits', () => {
    const parser = new ServerSentEventParser();
    expect(parser.retry).toBeUndefined();
    parser.feed('retry: 2000\n\n');
    expect(parser.retry).toBe(2000);
    for (const bad of ['retry: 10a', 'retry: -5', 'retry: 1.5', 'retry:', 'retry: ٣']) {
      parser.feed(`${bad}\n\n`);
      expect(parser.retry, bad).toBe(2000);
    }
    parser.feed('retry:0\n');
    expect(parser.retry).toBe(0);
  });

  it('drops an event the stream ended in the middle of', () => {
    expect(parse('data: whole\n\ndata: cut')).toEqual([{ type: 'message', data: 'whole', lastEventId: '' }]);
    expect(parse('data: cut\n')).toEqual([]);
  });

  it('reads a new stream after end, with a BOM again allowed and the last event id kept', () => {
    const parser = new ServerSentEventParser();
    parser.feed('id: 7\ndata: x\n\ndata: half');
    parser.end();
    expect(parser.feed('\uFEFFdata: y\n\n')).toEqual([{ type: 'message', data: 'y', lastEventId: '7' }]);
  });

  it('reads a long line that arrives in many chunks', () => {
    const payload = 'x'.repeat(100_000);
    const parser = new ServerSentEventParser();
    const events = [];
    const stream = `data: ${payload}\n\n`;
    for (let i = 0; i < stream.length; i += 7) events.push(...parser.feed(stream.slice(i, i + 7)));
    expect(events).toEqual([{ type: 'message', data: payload, lastEventId: '' }]);
  });

  it('gives the same events however the bytes are cut', () => {
    const stream = utf8(
      '\uFEFFretry: 1500\r\n: hi\r\nid: évt_1\r\nevent: a.b\r\ndata: {"x":"€"}\r\ndata: 2\r\n\r\n' +
        'id: evt_2\revent: c\rdata: ok\r\r: keepalive\n\nid: evt_3\ndata\n\nid: evt_4\ndata: tail',
    );
    const whole = parse(stream);
    expect(whole.map((event) => event.lastEventId)).toEqual(['évt_1', 'evt_2', 'evt_3']);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 30 }), (cuts) => {
        const parser = new ServerSentEventParser();
        const bounds = [0, ...cuts.sort((a, b) => a - b), stream.length];
        const events = bounds.slice(1).flatMap((end, i) => parser.feed(stream.subarray(bounds[i], end)));
        expect([...events, ...parser.end()]).toEqual(whole);
        expect(parser.retry).toBe(1500);
        expect(parser.lastEventId).toBe('evt_3');
      }),
    );
  });
});
