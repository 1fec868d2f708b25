/**
 * A minimal resources.arsc writer (the layout of frameworks/base/libs/androidfw/include/androidfw/ResourceTypes.h)
 * for building resource tables the tests control: one package, 0x7f, with simple values only.
 */

/** A string from the global pool, or a reference to another resource. */
export type ArscValue = { string: string } | { reference: number };

export interface ArscTypeChunk {
  /** The type's name, one of the table's `typeNames`. */
  type: string;
  /** Two-letter language; none: the default configuration. */
  language?: string;
  /** Screen density in dpi; none: any density. */
  density?: number;
  /** How entries are found: u32 offsets, u16 offsets / 4 (FLAG_OFFSET16) or (index, offset / 4) pairs (FLAG_SPARSE). */
  encoding?: 'dense' | 'offset16' | 'sparse';
  /** Write every entry in the 8-byte compact form (FLAG_COMPACT) rather than as ResTable_entry + Res_value. */
  compact?: boolean;
  /** Entry index → value; the missing indexes have no entry. */
  entries: Record<number, ArscValue>;
}

export interface ArscTable {
  /** UTF-8 rather than UTF-16 global string pool. */
  utf8?: boolean;
  /** Type names by type id - 1. */
  typeNames: string[];
  chunks: ArscTypeChunk[];
}

const RES_STRING_POOL = 0x0001;
const RES_TABLE = 0x0002;
const RES_TABLE_PACKAGE = 0x0200;
const RES_TABLE_TYPE = 0x0201;
const RES_TABLE_TYPE_SPEC = 0x0202;
const UTF8_FLAG = 0x100;
const TYPE_REFERENCE = 0x01;
const TYPE_STRING = 0x03;
const FLAG_SPARSE = 0x01;
const FLAG_OFFSET16 = 0x02;
const FLAG_COMPACT = 0x0008;
const CONFIG_SIZE = 64;

export function buildArsc(table: ArscTable): Buffer {
  const strings: string[] = [];
  const stringIndex = (s: string) => (strings.includes(s) ? strings.indexOf(s) : strings.push(s) - 1);
  const typeId = (name: string) => {
    const index = table.typeNames.indexOf(name);
    if (index < 0) throw new Error(`unknown type ${name}`);
    return index + 1;
  };
  const keys = [...new Set(table.chunks.flatMap((chunk) => Object.keys(chunk.entries).map((i) => `entry${i}`)))];

  const entryCounts = new Map<number, number>();
  for (const chunk of table.chunks) {
    const id = typeId(chunk.type);
    entryCounts.set(id, Math.max(entryCounts.get(id) ?? 0, ...Object.keys(chunk.entries).map((i) => Number(i) + 1)));
  }
  const body: Buffer[] = [];
  for (const [id, count] of [...entryCounts].sort(([a], [b]) => a - b)) {
    body.push(chunk(RES_TABLE_TYPE_SPEC, typeSpecHeader(id, count), Buffer.alloc(count * 4)));
    for (const type of table.chunks.filter((c) => typeId(c.type) === id)) {
      body.push(typeChunk(id, count, type, keys, stringIndex));
    }
  }

  // ResTable_package after its chunk header: id, name[128] (UTF-16), typeStrings, lastPublicType, keyStrings,
  // lastPublicKey, typeIdOffset; the two pools follow the 288-byte header.
  const packageHeader = Buffer.alloc(288 - 8);
  packageHeader.writeUInt32LE(0x7f, 0);
  packageHeader.write('com.example', 4, 'utf16le');
  const typeStrings = stringPool(table.typeNames, false);
  const keyStrings = stringPool(keys, true);
  packageHeader.writeUInt32LE(288, 260);
  packageHeader.writeUInt32LE(table.typeNames.length, 264);
  packageHeader.writeUInt32LE(288 + typeStrings.length, 268);
  packageHeader.writeUInt32LE(keys.length, 272);
  const pkg = chunk(RES_TABLE_PACKAGE, packageHeader, Buffer.concat([typeStrings, keyStrings, ...body]));

  const tableHeader = Buffer.alloc(4);
  tableHeader.writeUInt32LE(1, 0);
  return chunk(RES_TABLE, tableHeader, Buffer.concat([stringPool(strings, table.utf8 ?? false), pkg]));
}

/** A chunk: ResChunk_header (type, header size, total size), the rest of the header, then the body. */
function chunk(type: number, header: Buffer, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt16LE(type, 0);
  head.writeUInt16LE(8 + header.length, 2);
  head.writeUInt32LE(8 + header.length + body.length, 4);
  return Buffer.concat([head, header, body]);
}

function typeSpecHeader(id: number, entryCount: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt8(id, 0);
  header.writeUInt32LE(entryCount, 4);
  return header;
}

function typeChunk(
  id: number,
  entryCount: number,
  type: ArscTypeChunk,
  keys: string[],
  stringIndex: (s: string) => number,
): Buffer {
  const encoding = type.encoding ?? 'dense';
  const indexes = Object.keys(type.entries)
    .map(Number)
    .sort((a, b) => a - b);
  const entries: Buffer[] = [];
  const offsets = new Map<number, number>();
  let size = 0;
  for (const index of indexes) {
    const value = type.entries[index]!;
    const [dataType, data] =
      'string' in value ? [TYPE_STRING, stringIndex(value.string)] : [TYPE_REFERENCE, value.reference];
    const key = keys.indexOf(`entry${index}`);
    const entry = Buffer.alloc(type.compact ? 8 : 16);
    if (type.compact) {
      entry.writeUInt16LE(key, 0);
      entry.writeUInt16LE((dataType << 8) | FLAG_COMPACT, 2);
      entry.writeUInt32LE(data, 4);
    } else {
      entry.writeUInt16LE(8, 0);
      entry.writeUInt32LE(key, 4);
      entry.writeUInt16LE(8, 8);
      entry.writeUInt8(dataType, 11);
      entry.writeUInt32LE(data, 12);
    }
    offsets.set(index, size);
    entries.push(entry);
    size += entry.length;
  }

  let table: Buffer;
  if (encoding === 'sparse') {
    table = Buffer.alloc(indexes.length * 4);
    indexes.forEach((index, i) => {
      table.writeUInt16LE(index, i * 4);
      table.writeUInt16LE(offsets.get(index)! / 4, i * 4 + 2);
    });
  } else if (encoding === 'offset16') {
    table = Buffer.alloc(Math.ceil(entryCount / 2) * 4, 0xff);
    for (const [index, offset] of offsets) table.writeUInt16LE(offset / 4, index * 2);
  } else {
    table = Buffer.alloc(entryCount * 4, 0xff);
    for (const [index, offset] of offsets) table.writeUInt32LE(offset, index * 4);
  }

  const header = Buffer.alloc(12 + CONFIG_SIZE);
  header.writeUInt8(id, 0);
  header.writeUInt8(encoding === 'sparse' ? FLAG_SPARSE : encoding === 'offset16' ? FLAG_OFFSET16 : 0, 1);
  header.writeUInt32LE(encoding === 'sparse' ? indexes.length : entryCount, 4);
  header.writeUInt32LE(8 + header.length + table.length, 8);
  const config = header.subarray(12);
  config.writeUInt32LE(CONFIG_SIZE, 0);
  if (type.language !== undefined) config.write(type.language, 8, 2, 'latin1');
  config.writeUInt16LE(type.density ?? 0, 14);
  return chunk(RES_TABLE_TYPE, header, Buffer.concat([table, ...entries]));
}

/** A ResStringPool_header chunk: u32 offsets, then each string as its length(s), its code units and a terminator. */
function stringPool(strings: string[], utf8: boolean): Buffer {
  const encoded = strings.map((s) => {
    if (utf8) {
      const bytes = Buffer.from(s, 'utf8');
      return Buffer.concat([utf8Length(s.length), utf8Length(bytes.length), bytes, Buffer.alloc(1)]);
    }
    return Buffer.concat([utf16Length(s.length), Buffer.from(s, 'utf16le'), Buffer.alloc(2)]);
  });
  const offsets = Buffer.alloc(strings.length * 4);
  let at = 0;
  encoded.forEach((data, i) => {
    offsets.writeUInt32LE(at, i * 4);
    at += data.length;
  });
  const data = Buffer.concat(encoded);
  const padded = Buffer.concat([data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
  const header = Buffer.alloc(20);
  header.writeUInt32LE(strings.length, 0);
  header.writeUInt32LE(utf8 ? UTF8_FLAG : 0, 8);
  header.writeUInt32LE(28 + offsets.length, 12);
  return chunk(RES_STRING_POOL, header, Buffer.concat([offsets, padded]));
}

/** One byte below 0x80, else two with the high bit set on the first (at most 0x7fff). */
function utf8Length(length: number): Buffer {
  if (length > 0x7fff) throw new Error('too long for a UTF-8 pool');
  return length < 0x80 ? Buffer.from([length]) : Buffer.from([0x80 | (length >> 8), length & 0xff]);
}

/** One unit below 0x8000, else two with the high bit set on the first. */
function utf16Length(length: number): Buffer {
  const units = length < 0x8000 ? [length] : [0x8000 | (length >>> 16), length & 0xffff];
  const buffer = Buffer.alloc(units.length * 2);
  units.forEach((unit, i) => buffer.writeUInt16LE(unit, i * 2));
  return buffer;
}
