import fs from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { crc32, inflateRaw } from 'node:zlib';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------------------------------------------------------
// The parts of yauzl and @devicefarmer/adbkit-apkreader (CommonJS, without types) this module uses.

interface ZipEntry {
  fileName: string;
  uncompressedSize: number;
  compressedSize: number;
  compressionMethod: number;
  generalPurposeBitFlag: number;
  crc32: number;
  relativeOffsetOfLocalHeader: number;
}
interface ZipFile {
  entryCount: number;
  readEntry(): void;
  close(): void;
  on(event: 'entry', listener: (entry: ZipEntry) => void): this;
  on(event: 'end', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}
interface ZipOptions {
  lazyEntries: boolean;
  autoClose: boolean;
  strictFileNames: boolean;
  validateEntrySizes: boolean;
}
interface RandomAccessReader {
  read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (error?: Error | null) => void,
  ): void;
  close(callback: (error?: Error | null) => void): void;
}
interface Yauzl {
  RandomAccessReader: new () => RandomAccessReader;
  fromRandomAccessReader(
    reader: RandomAccessReader,
    totalSize: number,
    options: ZipOptions,
    callback: (error: Error | null, zip?: ZipFile) => void,
  ): void;
}
interface IntentFilter {
  actions?: { name: string }[];
  categories?: { name: string }[];
}
interface Component {
  name: string;
  intentFilters?: IntentFilter[];
}
interface Manifest {
  package?: string;
  versionCode?: number | null;
  versionName?: string | null;
  usesSdk?: { minSdkVersion?: number; targetSdkVersion?: number } | null;
  usesPermissions?: { name?: string }[];
  instrumentation?: { name: string; targetPackage: string } | null;
  application?: {
    label?: string | number;
    icon?: string;
    debuggable?: boolean;
    activities?: Component[];
    activityAliases?: Component[];
  } | null;
}
/** adbkit-apkreader's manifest parser, the one its `readManifest()` runs on the entry's bytes. */
interface ManifestParserConstructor {
  new (buffer: Buffer): { parse(): Manifest };
}

const yauzl = require('yauzl') as Yauzl;
const ManifestParser = require('@devicefarmer/adbkit-apkreader/lib/apkreader/parser/manifest') as ManifestParserConstructor;

// ---------------------------------------------------------------------------------------------------------------

/** What an APK says about itself (the contract's `ApkMetadata`). */
export interface ApkMetadata {
  packageName: string;
  versionCode: number | null;
  versionName: string | null;
  minSdk: number | null;
  targetSdk: number | null;
  label: string | null;
  permissions: string[];
  /** Full class name of the MAIN + LAUNCHER activity. */
  launchableActivity: string | null;
  instrumentation: { runner: string; targetPackage: string } | null;
  /** ABIs with native code (`lib/<abi>/` entries); empty: runs on any. */
  abis: string[];
  debuggable: boolean;
}

export interface ApkInspection extends ApkMetadata {
  /** The launcher icon when it is a PNG in the archive. */
  icon: Buffer | null;
}

export interface ApkLimits {
  /** Largest declared uncompressed size of one entry. */
  maxEntryBytes: number;
  /** Largest declared uncompressed size of all entries together. */
  maxTotalBytes: number;
  maxEntries: number;
}

export const DEFAULT_APK_LIMITS: ApkLimits = {
  maxEntryBytes: 1024 ** 3,
  maxTotalBytes: 4 * 1024 ** 3,
  maxEntries: 100_000,
};

/** Resources read whole to resolve the label and icon are capped: a bigger table is skipped, not an error. */
const MAX_RESOURCE_TABLE_BYTES = 64 * 1024 * 1024;
const MAX_ICON_BYTES = 4 * 1024 * 1024;
/** The manifest is parsed in memory; real ones are kilobytes. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

/** The file is not an APK we accept; `message` says why, for the `invalid_apk` problem. */
export class InvalidApkError extends Error {
  override readonly name = 'InvalidApkError';
}

const MANIFEST = 'AndroidManifest.xml';
const RESOURCES = 'resources.arsc';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Validates the zip structure of the APK at `path` (before anything reads its contents), then reads its manifest
 * and, when the resource table resolves them, its label and launcher icon. When `signal` aborts, the archive is
 * closed at once and the promise rejects with the signal's reason.
 */
export async function inspectApk(
  path: string,
  limits: ApkLimits = DEFAULT_APK_LIMITS,
  signal?: AbortSignal,
): Promise<ApkInspection> {
  signal?.throwIfAborted();
  const { zip, reader } = await openZip(path);
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      zip.close();
      reject(signal!.reason);
    };
  });
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted) onAbort();
    return await Promise.race([inspectZip(zip, reader, limits), aborted]);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    zip.close();
  }
}

async function inspectZip(zip: ZipFile, reader: CachedReader, limits: ApkLimits): Promise<ApkInspection> {
  const entries = await validateEntries(zip, limits);
  const manifest = await readManifest(reader, entries);
  const packageName = manifest.package;
  if (typeof packageName !== 'string' || packageName === '') {
    throw new InvalidApkError('AndroidManifest.xml has no package name.');
  }
  const application = manifest.application ?? {};
  const label = typeof application.label === 'string' ? application.label : null;
  const icon = typeof application.icon === 'string' ? application.icon : null;
  const resolved = await resolveLabelAndIcon(reader, entries, label, icon);
  const minSdk = manifest.usesSdk?.minSdkVersion ?? null;
  return keepable({
    packageName,
    versionCode: manifest.versionCode ?? null,
    versionName: manifest.versionName ?? null,
    minSdk,
    targetSdk: manifest.usesSdk?.targetSdkVersion ?? null,
    label: resolved.label,
    permissions: [
      ...new Set((manifest.usesPermissions ?? []).flatMap((p) => (typeof p.name === 'string' ? [p.name] : []))),
    ],
    launchableActivity: launchableActivity(packageName, application),
    instrumentation:
      manifest.instrumentation == null
        ? null
        : {
            runner: resolveClassName(packageName, manifest.instrumentation.name),
            targetPackage: manifest.instrumentation.targetPackage,
          },
    abis: abisOf(entries),
    debuggable: application.debuggable === true,
    icon: resolved.icon,
  });
}

/** The inspection, unless a text of it holds U+0000: PostgreSQL's text cannot hold one, so either engine refuses it. */
function keepable(inspection: ApkInspection): ApkInspection {
  let holdsNul = false;
  JSON.stringify({ ...inspection, icon: null }, (_key, value: unknown) => {
    if (typeof value === 'string' && value.includes('\u0000')) holdsNul = true;
    return value;
  });
  if (holdsNul) {
    throw new InvalidApkError('The manifest or the application label holds U+0000, which no text the server keeps may hold.');
  }
  return inspection;
}

async function openZip(path: string): Promise<{ zip: ZipFile; reader: CachedReader }> {
  const reader = await CachedReader.open(path);
  try {
    const zip = await new Promise<ZipFile>((resolve, reject) => {
      yauzl.fromRandomAccessReader(
        reader,
        reader.size,
        { lazyEntries: true, autoClose: false, strictFileNames: true, validateEntrySizes: true },
        (error, zip) => (error || zip === undefined ? reject(error ?? new Error('no zip')) : resolve(zip)),
      );
    });
    return { zip, reader };
  } catch (error) {
    reader.close(() => undefined);
    const message = errorMessage(error);
    if (/end of central directory record signature not found/.test(message)) {
      throw new InvalidApkError(
        (await startsWithLocalHeader(path))
          ? 'The zip archive is truncated (no end of central directory).'
          : 'The file is not a zip archive.',
      );
    }
    throw new InvalidApkError(`The zip archive is invalid: ${message}.`);
  }
}

/** The end of the file read at once: the central directory is almost always in it. */
const TAIL_BYTES = 1024 * 1024;
const MAX_CACHED_DIRECTORY = 64 * 1024 * 1024;

/**
 * A yauzl reader that serves the central directory from memory. yauzl reads each directory entry with two small
 * reads, which for the 3,841 entries of an 18 MB APK cost ~130 ms through streams; from memory it is a few ms.
 * Once closed it refuses to read (its descriptor's number may already name another file).
 */
class CachedReader extends yauzl.RandomAccessReader {
  readonly fd: number;
  readonly size: number;
  #cacheStart: number;
  #cache: Buffer;
  #closed = false;

  private constructor(fd: number, size: number, cacheStart: number, cache: Buffer) {
    super();
    this.fd = fd;
    this.size = size;
    this.#cacheStart = cacheStart;
    this.#cache = cache;
  }

  static async open(path: string): Promise<CachedReader> {
    const fd = await new Promise<number>((resolve, reject) =>
      fs.open(path, 'r', (error, fd) => (error ? reject(error) : resolve(fd))),
    );
    try {
      const size = (await fstat(fd)).size;
      let start = Math.max(0, size - TAIL_BYTES);
      let cache = await readAt(fd, start, size - start);
      // The end of central directory record (no comment is the usual case) says where the directory starts.
      const eocd = cache.lastIndexOf(EOCD_SIGNATURE);
      if (eocd >= 0 && eocd + 22 <= cache.length) {
        const directoryStart = cache.readUInt32LE(eocd + 16);
        if (directoryStart < start && directoryStart !== 0xffffffff && size - directoryStart <= MAX_CACHED_DIRECTORY) {
          cache = Buffer.concat([await readAt(fd, directoryStart, start - directoryStart), cache]);
          start = directoryStart;
        }
      }
      return new CachedReader(fd, size, start, cache);
    } catch (error) {
      fs.close(fd, () => undefined);
      throw error;
    }
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.#closed) {
      process.nextTick(callback, new Error('the archive is closed'));
      return;
    }
    if (position >= this.#cacheStart && position + length <= this.#cacheStart + this.#cache.length) {
      this.#cache.copy(buffer, offset, position - this.#cacheStart, position - this.#cacheStart + length);
      process.nextTick(callback);
      return;
    }
    fs.read(this.fd, buffer, offset, length, position, (error, bytesRead) =>
      callback(error ?? (bytesRead < length ? new Error('unexpected EOF') : null)),
    );
  }

  /** `length` bytes at `position`; fewer only at the end of the file. */
  async readRange(position: number, length: number): Promise<Buffer> {
    if (this.#closed) throw new Error('the archive is closed');
    if (position >= this.#cacheStart && position + length <= this.#cacheStart + this.#cache.length) {
      return Buffer.from(this.#cache.subarray(position - this.#cacheStart, position - this.#cacheStart + length));
    }
    return readAt(this.fd, position, length);
  }

  override close(callback: (error?: Error | null) => void): void {
    this.#closed = true;
    this.#cache = Buffer.alloc(0);
    this.#cacheStart = 0;
    fs.close(this.fd, callback);
  }
}

const EOCD_SIGNATURE = Buffer.from([0x50, 0x4b, 0x05, 0x06]);

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))));
}

function readAt(fd: number, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  return new Promise((resolve, reject) =>
    fs.read(fd, buffer, 0, length, position, (error, bytesRead) =>
      error ? reject(error) : resolve(buffer.subarray(0, bytesRead)),
    ),
  );
}

async function startsWithLocalHeader(path: string): Promise<boolean> {
  const file = await openFile(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(4), 0, 4, 0);
    return bytesRead === 4 && buffer.readUInt32LE(0) === 0x04034b50;
  } finally {
    await file.close();
  }
}

/** Reads the central directory, checking every entry's name and declared size; returns the entries by name. */
async function validateEntries(zip: ZipFile, limits: ApkLimits): Promise<Map<string, ZipEntry>> {
  if (zip.entryCount > limits.maxEntries) {
    throw new InvalidApkError(
      `The archive has ${zip.entryCount} entries, more than the limit of ${limits.maxEntries}.`,
    );
  }
  const entries = new Map<string, ZipEntry>();
  let total = 0;
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry) => {
      const name = entry.fileName;
      if (entries.has(name)) return reject(new InvalidApkError(`The archive has two entries named '${name}'.`));
      if (entry.uncompressedSize > limits.maxEntryBytes) {
        return reject(
          new InvalidApkError(
            `Entry '${name}' declares ${entry.uncompressedSize} bytes uncompressed, ` +
              `more than the limit of ${limits.maxEntryBytes}.`,
          ),
        );
      }
      total += entry.uncompressedSize;
      if (total > limits.maxTotalBytes) {
        return reject(
          new InvalidApkError(
            `The entries declare more than ${limits.maxTotalBytes} bytes uncompressed in total (a zip bomb?).`,
          ),
        );
      }
      entries.set(name, entry);
      zip.readEntry();
    });
    zip.on('end', resolve);
    zip.on('error', (error) => {
      const message = errorMessage(error);
      const name = /^(?:absolute path|invalid relative path|invalid characters in fileName): (.*)$/.exec(message);
      reject(
        new InvalidApkError(
          name ? `Entry '${name[1]}' escapes the archive's folder.` : `The zip archive is invalid: ${message}.`,
        ),
      );
    });
    zip.readEntry();
  });
  const manifest = entries.get(MANIFEST);
  if (manifest === undefined) throw new InvalidApkError('The archive has no AndroidManifest.xml.');
  if (manifest.uncompressedSize > MAX_MANIFEST_BYTES) {
    throw new InvalidApkError(
      `AndroidManifest.xml declares ${manifest.uncompressedSize} bytes, more than ${MAX_MANIFEST_BYTES}.`,
    );
  }
  return entries;
}

/** Parses AndroidManifest.xml from the zip already validated (not by opening the file again). */
async function readManifest(reader: CachedReader, entries: Map<string, ZipEntry>): Promise<Manifest> {
  const bytes = await readEntry(reader, entries.get(MANIFEST)!);
  try {
    return new ManifestParser(bytes).parse();
  } catch (error) {
    throw new InvalidApkError(`AndroidManifest.xml cannot be parsed: ${errorMessage(error)}.`);
  }
}

function launchableActivity(packageName: string, application: NonNullable<Manifest['application']>): string | null {
  const components = [...(application.activities ?? []), ...(application.activityAliases ?? [])];
  const launcher = components.find((component) =>
    (component.intentFilters ?? []).some(
      (filter) =>
        (filter.actions ?? []).some((action) => action.name === 'android.intent.action.MAIN') &&
        (filter.categories ?? []).some((category) => category.name === 'android.intent.category.LAUNCHER'),
    ),
  );
  return launcher === undefined ? null : resolveClassName(packageName, launcher.name);
}

/** `.Main` and `Main` name classes of the package itself, as aapt resolves them. */
export function resolveClassName(packageName: string, name: string): string {
  if (name.startsWith('.')) return `${packageName}${name}`;
  return name.includes('.') ? name : `${packageName}.${name}`;
}

function abisOf(entries: Map<string, ZipEntry>): string[] {
  const abis = new Set<string>();
  for (const name of entries.keys()) {
    const match = /^lib\/([^/]+)\/[^/]+$/.exec(name);
    if (match?.[1] !== undefined) abis.add(match[1]);
  }
  return [...abis].sort();
}

// ---------------------------------------------------------------------------------------------------------------
// Label and icon

const RESOURCE_REFERENCE = /^resourceId:0x([0-9a-f]{8})$/i;

async function resolveLabelAndIcon(
  reader: CachedReader,
  entries: Map<string, ZipEntry>,
  label: string | null,
  icon: string | null,
): Promise<{ label: string | null; icon: Buffer | null }> {
  const labelRef = label === null ? undefined : RESOURCE_REFERENCE.exec(label)?.[1];
  const iconRef = icon === null ? undefined : RESOURCE_REFERENCE.exec(icon)?.[1];
  let resolvedLabel: string | null = labelRef === undefined ? label : null;
  let iconPaths: string[] = iconRef === undefined && icon !== null ? [icon] : [];
  if (labelRef !== undefined || iconRef !== undefined) {
    const entry = entries.get(RESOURCES);
    if (entry !== undefined && entry.uncompressedSize <= MAX_RESOURCE_TABLE_BYTES) {
      const bytes = await readEntry(reader, entry);
      try {
        const table = new ResourceTable(bytes);
        if (labelRef !== undefined) resolvedLabel = table.label(Number.parseInt(labelRef, 16));
        if (iconRef !== undefined) iconPaths = table.iconPaths(Number.parseInt(iconRef, 16));
      } catch {
        // an unreadable resource table (truncated, or with offsets past its end) only costs the label and icon
      }
    }
  }
  let iconBytes: Buffer | null = null;
  for (const path of iconPaths) {
    const entry = entries.get(path);
    if (entry === undefined || !path.endsWith('.png') || entry.uncompressedSize > MAX_ICON_BYTES) continue;
    const bytes = await readEntry(reader, entry);
    if (bytes.subarray(0, 8).equals(PNG_SIGNATURE)) {
      iconBytes = bytes;
      break;
    }
  }
  return { label: resolvedLabel === '' ? null : resolvedLabel, icon: iconBytes };
}

const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const LOCAL_HEADER_BYTES = 30;
const STORED = 0;
const DEFLATED = 8;

/**
 * An entry's bytes, read and inflated here rather than through yauzl's read streams: on a size mismatch those
 * streams report the error to a `destroy` that yauzl replaces with its own, so they neither end nor fail and the
 * upload waits forever. Every way the data can disagree with the central directory (no local header, data past the
 * end of the file, corrupt deflate data, a size or CRC-32 other than declared) is an `InvalidApkError`.
 */
async function readEntry(reader: CachedReader, entry: ZipEntry): Promise<Buffer> {
  const name = entry.fileName;
  if ((entry.generalPurposeBitFlag & 0x1) !== 0) throw new InvalidApkError(`Entry '${name}' is encrypted.`);
  if (entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATED) {
    throw new InvalidApkError(`Entry '${name}' uses compression method ${entry.compressionMethod}, not stored or deflate.`);
  }
  // Deflate never grows data by more than 5 bytes per 16 KiB block (plus a little): more is not deflate data.
  if (entry.compressedSize > entry.uncompressedSize + Math.ceil(entry.uncompressedSize / 16384) * 5 + 64) {
    throw new InvalidApkError(
      `Entry '${name}' has ${entry.compressedSize} compressed bytes for ${entry.uncompressedSize} uncompressed.`,
    );
  }
  const offset = entry.relativeOffsetOfLocalHeader;
  const header = await reader.readRange(offset, LOCAL_HEADER_BYTES);
  if (header.length < LOCAL_HEADER_BYTES || header.readUInt32LE(0) !== LOCAL_HEADER_SIGNATURE) {
    throw new InvalidApkError(`Entry '${name}' has no local header at offset ${offset}.`);
  }
  const start = offset + LOCAL_HEADER_BYTES + header.readUInt16LE(26) + header.readUInt16LE(28);
  const raw = await reader.readRange(start, entry.compressedSize);
  if (raw.length < entry.compressedSize) throw new InvalidApkError(`Entry '${name}' runs past the end of the archive.`);
  const data = entry.compressionMethod === STORED ? raw : await inflate(name, raw, entry.uncompressedSize);
  if (crc32(data) !== entry.crc32) throw new InvalidApkError(`Entry '${name}' fails its CRC-32 check.`);
  return data;
}

/** Inflates `raw`, which must give exactly `declared` bytes; never produces more than that. */
async function inflate(name: string, raw: Buffer, declared: number): Promise<Buffer> {
  const data = await new Promise<Buffer>((resolve, reject) =>
    inflateRaw(raw, { maxOutputLength: Math.max(1, declared) }, (error, result) => {
      if (error === null) return resolve(result);
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return reject(new InvalidApkError(`Entry '${name}' inflates to more than the ${declared} bytes it declares.`));
      }
      reject(new InvalidApkError(`Entry '${name}' has corrupt compressed data: ${error.message}.`));
    }),
  );
  if (data.length > declared) {
    throw new InvalidApkError(`Entry '${name}' inflates to more than the ${declared} bytes it declares.`);
  }
  if (data.length < declared) {
    throw new InvalidApkError(`Entry '${name}' inflates to ${data.length} bytes, not the ${declared} it declares.`);
  }
  return data;
}

const RES_STRING_POOL = 0x0001;
const RES_TABLE = 0x0002;
const RES_TABLE_PACKAGE = 0x0200;
const RES_TABLE_TYPE = 0x0201;
const TYPE_REFERENCE = 0x01;
const TYPE_STRING = 0x03;
const NO_ENTRY = 0xffffffff;
const FLAG_COMPLEX = 0x0001;
const FLAG_COMPACT = 0x0008;
const TYPE_FLAG_SPARSE = 0x01;
const TYPE_FLAG_OFFSET16 = 0x02;

interface ResourceValue {
  /** Language of the configuration ('' = default). */
  language: string;
  density: number;
  dataType: number;
  data: number;
}

/**
 * The small part of resources.arsc needed to resolve an application's label and icon: the global string pool and
 * the simple (non-bag) entries of each type chunk, per configuration.
 */
class ResourceTable {
  readonly #data: Buffer;
  readonly #strings: StringPool;
  /** package id → type id → type chunk offsets. */
  readonly #types = new Map<number, Map<number, number[]>>();

  constructor(data: Buffer) {
    this.#data = data;
    if (data.readUInt16LE(0) !== RES_TABLE) throw new Error('not a resource table');
    if (data.readUInt32LE(4) > data.length) throw new Error('truncated resource table');
    let offset = data.readUInt16LE(2);
    let strings: StringPool | undefined;
    while (offset + 8 <= data.length) {
      const type = data.readUInt16LE(offset);
      const size = data.readUInt32LE(offset + 4);
      if (size < 8) break;
      if (type === RES_STRING_POOL && strings === undefined) strings = new StringPool(data, offset);
      else if (type === RES_TABLE_PACKAGE) this.#indexPackage(offset, size);
      offset += size;
    }
    if (strings === undefined) throw new Error('no global string pool');
    this.#strings = strings;
  }

  #indexPackage(start: number, size: number): void {
    const data = this.#data;
    const packageId = data.readUInt32LE(start + 8);
    const types = new Map<number, number[]>();
    this.#types.set(packageId, types);
    let offset = start + data.readUInt16LE(start + 2);
    const end = start + size;
    while (offset + 8 <= end) {
      const type = data.readUInt16LE(offset);
      const chunkSize = data.readUInt32LE(offset + 4);
      if (chunkSize < 8) break;
      if (type === RES_TABLE_TYPE) {
        const typeId = data.readUInt8(offset + 8);
        const list = types.get(typeId) ?? [];
        list.push(offset);
        types.set(typeId, list);
      }
      offset += chunkSize;
    }
  }

  /** The values of resource `id` in every configuration that has one. */
  values(id: number): ResourceValue[] {
    const chunks = this.#types.get(id >>> 24)?.get((id >>> 16) & 0xff) ?? [];
    const index = id & 0xffff;
    const values: ResourceValue[] = [];
    for (const chunk of chunks) {
      const value = this.#valueIn(chunk, index);
      if (value !== undefined) values.push(value);
    }
    return values;
  }

  #valueIn(chunk: number, index: number): ResourceValue | undefined {
    const data = this.#data;
    const headerSize = data.readUInt16LE(chunk + 2);
    const flags = data.readUInt8(chunk + 9);
    const entryCount = data.readUInt32LE(chunk + 12);
    const entriesStart = chunk + data.readUInt32LE(chunk + 16);
    const config = chunk + 20;
    const language = data.readUInt16LE(config + 8) === 0 ? '' : data.toString('latin1', config + 8, config + 10);
    const density = data.readUInt16LE(config + 14);
    const offsets = chunk + headerSize;
    let entryOffset: number | undefined;
    if (flags & TYPE_FLAG_SPARSE) {
      for (let i = 0; i < entryCount; i++) {
        if (data.readUInt16LE(offsets + i * 4) === index) entryOffset = data.readUInt16LE(offsets + i * 4 + 2) * 4;
      }
    } else if (index < entryCount) {
      if (flags & TYPE_FLAG_OFFSET16) {
        const raw = data.readUInt16LE(offsets + index * 2);
        entryOffset = raw === 0xffff ? undefined : raw * 4;
      } else {
        const raw = data.readUInt32LE(offsets + index * 4);
        entryOffset = raw === NO_ENTRY ? undefined : raw;
      }
    }
    if (entryOffset === undefined) return undefined;
    const entry = entriesStart + entryOffset;
    const entryFlags = data.readUInt16LE(entry + 2);
    if (entryFlags & FLAG_COMPACT) {
      return { language, density, dataType: entryFlags >>> 8, data: data.readUInt32LE(entry + 4) };
    }
    if (entryFlags & FLAG_COMPLEX) return undefined;
    const value = entry + data.readUInt16LE(entry);
    return { language, density, dataType: data.readUInt8(value + 3), data: data.readUInt32LE(value + 4) };
  }

  /** The default-language string of resource `id`, following references; null when it has none. */
  label(id: number, depth = 0): string | null {
    const values = this.values(id);
    const value = values.find((v) => v.language === '') ?? values[0];
    if (value === undefined) return null;
    if (value.dataType === TYPE_STRING) return this.#strings.get(value.data) ?? null;
    if (value.dataType === TYPE_REFERENCE && depth < 8) return this.label(value.data, depth + 1);
    return null;
  }

  /** The file paths of drawable `id`, best density first (the highest up to xxhdpi, then the rest). */
  iconPaths(id: number, depth = 0): string[] {
    const ranked = this.values(id)
      .map((value) => ({ value, rank: value.density > 0 && value.density <= 480 ? value.density : -1 }))
      .sort((a, b) => b.rank - a.rank);
    const paths: string[] = [];
    for (const { value } of ranked) {
      if (value.dataType === TYPE_STRING) {
        const path = this.#strings.get(value.data);
        if (path !== undefined) paths.push(path);
      } else if (value.dataType === TYPE_REFERENCE && depth < 8) {
        paths.push(...this.iconPaths(value.data, depth + 1));
      }
    }
    return paths;
  }
}

class StringPool {
  readonly #data: Buffer;
  readonly #count: number;
  readonly #utf8: boolean;
  readonly #offsets: number;
  readonly #strings: number;

  constructor(data: Buffer, start: number) {
    this.#data = data;
    this.#count = data.readUInt32LE(start + 8);
    this.#utf8 = (data.readUInt32LE(start + 16) & 0x100) !== 0;
    this.#offsets = start + data.readUInt16LE(start + 2);
    this.#strings = start + data.readUInt32LE(start + 20);
  }

  get(index: number): string | undefined {
    if (index >= this.#count) return undefined;
    const data = this.#data;
    let at = this.#strings + data.readUInt32LE(this.#offsets + index * 4);
    if (this.#utf8) {
      at += (data.readUInt8(at) & 0x80) !== 0 ? 2 : 1; // length in UTF-16 units
      let length = data.readUInt8(at);
      if ((length & 0x80) !== 0) {
        length = ((length & 0x7f) << 8) | data.readUInt8(at + 1);
        at += 2;
      } else {
        at += 1;
      }
      return data.toString('utf8', at, at + length);
    }
    let length = data.readUInt16LE(at);
    if ((length & 0x8000) !== 0) {
      length = ((length & 0x7fff) << 16) | data.readUInt16LE(at + 2);
      at += 4;
    } else {
      at += 2;
    }
    return data.toString('utf16le', at, at + length * 2);
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
