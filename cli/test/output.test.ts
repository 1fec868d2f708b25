import { describe, expect, it } from 'vitest';
import { columnHeaders, formatCell, formatJson, renderKeyValue, renderTable, useColor, valueAt } from '../src/lib/output.js';

const events = [
  { id: 'evt_1', type: 'user.created', actor: { username: 'admin' }, subject: { type: 'user', id: 'usr_1' } },
  { id: 'evt_22', type: 'auth.login_failed', actor: { username: null }, subject: null },
];

describe('tables', () => {
  it('renders dotted-path columns with aligned cells and upper-case headers', () => {
    const table = renderTable(events, ['id', 'type', 'actor.username', 'subject.id'], { color: false });
    expect(table).toBe(
      [
        'ID      TYPE               USERNAME  SUBJECT ID',
        'evt_1   user.created       admin     usr_1',
        'evt_22  auth.login_failed  -         -',
        '',
      ].join('\n'),
    );
  });

  it('shortens long arrays in cells, and only in tables', () => {
    const row = { tags: Array.from({ length: 15 }, (_, i) => `t${i}`), few: ['a', 'b', 'c'], objects: [{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }] };
    expect(renderTable([row], ['tags', 'few', 'objects'], { color: false })).toBe(
      ['TAGS                 FEW      OBJECTS', 't0, t1, t2, … (+12)  a, b, c  [{"a":1}, {"a":2}, {"a":3}, … (+1)]', ''].join('\n'),
    );
    expect(renderKeyValue(row, ['tags'], { color: false })).toContain(row.tags.join(', '));
  });

  it('makes only the header bold, and only with colour', () => {
    const table = renderTable([{ a: 1 }], ['a'], { color: true });
    expect(table).toBe('\u001B[1mA\u001B[22m\n1\n');
  });
});

describe('cells', () => {
  it('renders nulls, booleans, arrays and objects readably', () => {
    expect(formatCell(null)).toBe('-');
    expect(formatCell(undefined)).toBe('-');
    expect(formatCell(false)).toBe('false');
    expect(formatCell(42)).toBe('42');
    expect(formatCell(['read', 'write'])).toBe('read, write');
    expect(formatCell([])).toBe('-');
    expect(formatCell([{ a: 1 }])).toBe('[{"a":1}]');
    expect(formatCell({ pool: 'ci', rack: 2 })).toBe('pool=ci, rack=2');
    expect(formatCell({})).toBe('-');
    expect(formatCell({ a: { b: 1 } })).toBe('{"a":{"b":1}}');
    expect(formatCell('two\n  lines')).toBe('two lines');
  });

  it('reads dotted paths, stopping at null', () => {
    expect(valueAt(events[0], 'subject.id')).toBe('usr_1');
    expect(valueAt(events[1], 'subject.id')).toBeUndefined();
    expect(valueAt(events[0], 'missing.deeper')).toBeUndefined();
  });

  it('names the field in headers, keeping the path only where two fields share a name', () => {
    expect(columnHeaders(['displayName', 'actor.username', 'properties.model'])).toEqual(['DISPLAY NAME', 'USERNAME', 'MODEL']);
    expect(columnHeaders(['id', 'type', 'subject.type', 'subject.id', 'lease.username'])).toEqual([
      'ID',
      'TYPE',
      'SUBJECT TYPE',
      'SUBJECT ID',
      'USERNAME',
    ]);
  });
});

describe('key/value blocks', () => {
  it('shows the preferred columns first, then every other field, nested ones dotted', () => {
    const me = {
      id: 'usr_1',
      username: 'alice',
      role: 'member',
      displayName: 'Alice',
      authentication: { method: 'api_token', scopes: ['read', 'write'] },
      data: {},
    };
    expect(renderKeyValue(me, ['username', 'id'], { color: false })).toBe(
      [
        'username               alice',
        'id                     usr_1',
        'role                   member',
        'displayName            Alice',
        'authentication.method  api_token',
        'authentication.scopes  read, write',
        'data                   -',
        '',
      ].join('\n'),
    );
  });
});

describe('key/value blocks with an object column', () => {
  it('shows a preferred object column whole, once, without its dotted fields', () => {
    const device = { id: 'dev_1', labels: { pool: 'ci', rack: 'a' }, properties: { sdk: 34 } };
    expect(renderKeyValue(device, ['id', 'labels'], { color: false })).toBe(
      ['id              dev_1', 'labels          pool=ci, rack=a', 'properties.sdk  34', ''].join('\n'),
    );
  });
});

describe('JSON and colour', () => {
  it('prints JSON as-is, indented, with a final newline', () => {
    expect(formatJson([{ a: null }])).toBe('[\n  {\n    "a": null\n  }\n]\n');
  });

  it('uses colour only on a terminal without NO_COLOR', () => {
    expect(useColor({ isTTY: true }, {})).toBe(true);
    expect(useColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(useColor({ isTTY: false }, {})).toBe(false);
    expect(useColor({}, {})).toBe(false);
  });
});
