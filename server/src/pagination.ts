import { ApiError } from './http/errors.js';

/** The contract's default `limit`. */
export const DEFAULT_PAGE_SIZE = 50;

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/** Cursors are opaque to clients: base64url of a small JSON position. */
export function encodeCursor(position: object): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

/**
 * Decodes a cursor made by `encodeCursor`. `read` checks the decoded value and returns the position, or `undefined`
 * when it is not one this list makes; anything else about the cursor being wrong is `invalid_cursor` too.
 */
export function decodeCursor<P>(cursor: string, read: (value: unknown) => P | undefined): P {
  const position = /^[A-Za-z0-9_-]+$/.test(cursor)
    ? read(parseJson(Buffer.from(cursor, 'base64url').toString('utf8')))
    : undefined;
  if (position === undefined) throw new ApiError('invalid_cursor', 'The cursor is not one this list returned.');
  return position;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A cursor position in a list ordered by id. */
export interface IdPosition {
  id: string;
}

/** Reads an `IdPosition` whose id matches `pattern` (the id format of the listed resource). */
export function idPosition(pattern: RegExp): (value: unknown) => IdPosition | undefined {
  return (value) => {
    if (typeof value !== 'object' || value === null) return undefined;
    const { id } = value as Record<string, unknown>;
    return typeof id === 'string' && pattern.test(id) ? { id } : undefined;
  };
}

/**
 * Makes a page from rows fetched with `limit + 1`: the extra row only tells that a next page exists, whose cursor is
 * the position of the last row shown.
 */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  item: (row: Row) => Item,
  position: (row: Row) => object,
): Page<Item> {
  const shown = rows.slice(0, limit);
  const last = shown.at(-1);
  return {
    data: shown.map(item),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(position(last)) : null,
  };
}

/** Escapes `text` for a LIKE pattern written with `escape '\'`, so that it matches literally. */
export function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
