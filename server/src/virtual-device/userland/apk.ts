import { createRequire } from 'node:module';
import { inflateRawSync } from 'node:zlib';

/** The manifest parser of @devicefarmer/adbkit-apkreader (CommonJS, without types), as its `readManifest()` uses it. */
interface ManifestParserConstructor {
  new (buffer: Buffer): { parse(): Manifest };
}
interface IntentFilter {
  actions: { name: string }[];
  categories: { name: string }[];
}
interface Component {
  name: string;
  intentFilters?: IntentFilter[];
}
interface Manifest {
  package: string;
  versionCode?: number | null;
  versionName?: string | null;
  usesSdk?: { minSdkVersion?: number; targetSdkVersion?: number } | null;
  instrumentation?: { name: string; targetPackage: string } | null;
  application?: { activities?: Component[]; activityAliases?: Component[] } | null;
}

const ManifestParser = createRequire(import.meta.url)(
  '@devicefarmer/adbkit-apkreader/lib/apkreader/parser/manifest',
) as ManifestParserConstructor;

/** What the package manager needs from an APK's manifest and its zip entries. */
export interface ApkInfo {
  packageName: string;
  versionCode: number;
  versionName: string;
  minSdk: number;
  targetSdk: number;
  /** ABIs with native libraries (`lib/<abi>/…` entries); empty for an APK without native code. */
  nativeAbis: string[];
  /** Activity and alias class names, resolved against the package. */
  activities: string[];
  /** The activity with a MAIN + LAUNCHER intent filter, if any. */
  launcherActivity: string | undefined;
  /** The `<instrumentation>` element of a test APK. */
  instrumentation: { runner: string; targetPackage: string } | undefined;
}

export class ApkParseError extends Error {
  override readonly name = 'ApkParseError';
}

const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_ENTRY_SIGNATURE = 0x02014b50;
const LOCAL_HEADER_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
const CENTRAL_ENTRY_SIZE = 46;
const LOCAL_HEADER_SIZE = 30;
const MAX_COMMENT = 0xffff;
const STORED = 0;
const DEFLATED = 8;
const ENCRYPTED_FLAG = 0x1;
const MANIFEST = 'AndroidManifest.xml';
/** The manifest is inflated in memory; real ones are kilobytes. */
const MAX_MANIFEST_SIZE = 16 * 1024 * 1024;

/**
 * Reads an APK held in memory, in one buffer or in the chunks it arrived in (never joined: only the central directory
 * and the manifest are copied out); throws ApkParseError when it is not a zip with a binary AndroidManifest.xml.
 */
export async function parseApk(data: Buffer | readonly Buffer[]): Promise<ApkInfo> {
  const zip = new ChunkedBytes(Buffer.isBuffer(data) ? [data] : data);
  const { names, manifestEntry } = readCentralDirectory(zip);
  const content = readManifestEntry(zip, manifestEntry);
  let manifest: Manifest;
  try {
    manifest = new ManifestParser(content).parse();
  } catch (error) {
    throw new ApkParseError(error instanceof Error ? error.message : String(error));
  }
  const packageName = manifest.package;
  const minSdk = manifest.usesSdk?.minSdkVersion ?? 1;
  const components = [...(manifest.application?.activities ?? []), ...(manifest.application?.activityAliases ?? [])];
  const launcher = components.find((component) =>
    (component.intentFilters ?? []).some(
      (filter) =>
        filter.actions.some((action) => action.name === 'android.intent.action.MAIN') &&
        filter.categories.some((category) => category.name === 'android.intent.category.LAUNCHER'),
    ),
  );
  const abis = new Set<string>();
  for (const name of names) {
    const match = /^lib\/([^/]+)\/[^/]+\.so$/.exec(name);
    if (match !== null) abis.add(match[1] as string);
  }
  return {
    packageName,
    versionCode: manifest.versionCode ?? 0,
    versionName: manifest.versionName ?? '',
    minSdk,
    // Without targetSdkVersion Android takes the minSdkVersion.
    targetSdk: manifest.usesSdk?.targetSdkVersion ?? minSdk,
    nativeAbis: [...abis],
    activities: components.map((component) => resolveClassName(packageName, component.name)),
    launcherActivity: launcher === undefined ? undefined : resolveClassName(packageName, launcher.name),
    instrumentation:
      manifest.instrumentation == null
        ? undefined
        : {
            runner: resolveClassName(packageName, manifest.instrumentation.name),
            targetPackage: manifest.instrumentation.targetPackage,
          },
  };
}

/** `.Main` and `Main` name classes of the package itself, as aapt resolves them. */
function resolveClassName(packageName: string, name: string): string {
  if (name.startsWith('.')) return `${packageName}${name}`;
  return name.includes('.') ? name : `${packageName}.${name}`;
}

/** Bytes held as a list of chunks, read by offset without joining them. */
class ChunkedBytes {
  readonly length: number;
  readonly #chunks: readonly Buffer[];

  constructor(chunks: readonly Buffer[]) {
    this.#chunks = chunks;
    this.length = chunks.reduce((total, chunk) => total + chunk.length, 0);
  }

  /** The bytes from `start` to `end`: a view when they lie in one chunk, else a copy of just them. */
  slice(start: number, end: number): Buffer {
    if (!(start >= 0 && start <= end && end <= this.length)) throw new ApkParseError('truncated zip archive');
    let out: Buffer | undefined;
    let filled = 0;
    let chunkStart = 0;
    for (const chunk of this.#chunks) {
      const chunkEnd = chunkStart + chunk.length;
      if (chunkEnd > start) {
        const from = Math.max(start, chunkStart) - chunkStart;
        const to = Math.min(end, chunkEnd) - chunkStart;
        if (out === undefined) {
          if (end <= chunkEnd) return chunk.subarray(from, to);
          out = Buffer.allocUnsafe(end - start);
        }
        filled += chunk.copy(out, filled, from, to);
        if (filled === out.length) return out;
      }
      chunkStart = chunkEnd;
    }
    return out ?? Buffer.alloc(0);
  }
}

/** Where AndroidManifest.xml lies in the zip, as its central directory entry says. */
interface ManifestEntry {
  flags: number;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** The entry names of the zip's central directory, and the first AndroidManifest.xml entry among them. */
function readCentralDirectory(zip: ChunkedBytes): { names: string[]; manifestEntry: ManifestEntry | undefined } {
  const end = findEndOfCentralDirectory(zip);
  const record = zip.slice(end, end + EOCD_SIZE);
  const count = record.readUInt16LE(10);
  const size = record.readUInt32LE(12);
  const offset = record.readUInt32LE(16);
  if (offset + size > end || count * CENTRAL_ENTRY_SIZE > size) throw new ApkParseError('invalid central directory');
  const directory = zip.slice(offset, offset + size);
  const names: string[] = [];
  let manifestEntry: ManifestEntry | undefined;
  let at = 0;
  for (let index = 0; index < count; index++) {
    if (at + CENTRAL_ENTRY_SIZE > directory.length || directory.readUInt32LE(at) !== CENTRAL_ENTRY_SIGNATURE) {
      throw new ApkParseError('invalid central directory');
    }
    const nameEnd = at + CENTRAL_ENTRY_SIZE + directory.readUInt16LE(at + 28);
    const next = nameEnd + directory.readUInt16LE(at + 30) + directory.readUInt16LE(at + 32);
    if (next > directory.length) throw new ApkParseError('invalid central directory');
    const name = directory.toString('utf8', at + CENTRAL_ENTRY_SIZE, nameEnd);
    names.push(name);
    if (name === MANIFEST && manifestEntry === undefined) {
      manifestEntry = {
        flags: directory.readUInt16LE(at + 8),
        method: directory.readUInt16LE(at + 10),
        compressedSize: directory.readUInt32LE(at + 20),
        size: directory.readUInt32LE(at + 24),
        localHeaderOffset: directory.readUInt32LE(at + 42),
      };
    }
    at = next;
  }
  return { names, manifestEntry };
}

/** The offset of the end of central directory record, searched for in the tail (it ends with a comment). */
function findEndOfCentralDirectory(zip: ChunkedBytes): number {
  const tailStart = Math.max(0, zip.length - EOCD_SIZE - MAX_COMMENT);
  const tail = zip.slice(tailStart, zip.length);
  for (let offset = tail.length - EOCD_SIZE; offset >= 0; offset--) {
    if (tail.readUInt32LE(offset) === EOCD_SIGNATURE) return tailStart + offset;
  }
  throw new ApkParseError('not a zip archive');
}

/** The uncompressed bytes of AndroidManifest.xml: only its own compressed range is read. */
function readManifestEntry(zip: ChunkedBytes, entry: ManifestEntry | undefined): Buffer {
  if (entry === undefined) throw new ApkParseError(`APK does not contain '${MANIFEST}'`);
  if ((entry.flags & ENCRYPTED_FLAG) !== 0) throw new ApkParseError(`${MANIFEST} is encrypted`);
  if (entry.size > MAX_MANIFEST_SIZE || entry.compressedSize > MAX_MANIFEST_SIZE) {
    throw new ApkParseError(`${MANIFEST} is too large`);
  }
  const header = zip.slice(entry.localHeaderOffset, entry.localHeaderOffset + LOCAL_HEADER_SIZE);
  if (header.readUInt32LE(0) !== LOCAL_HEADER_SIGNATURE) throw new ApkParseError('invalid local file header');
  const start = entry.localHeaderOffset + LOCAL_HEADER_SIZE + header.readUInt16LE(26) + header.readUInt16LE(28);
  const compressed = zip.slice(start, start + entry.compressedSize);
  let content: Buffer;
  if (entry.method === STORED) {
    content = compressed;
  } else if (entry.method === DEFLATED) {
    try {
      content = inflateRawSync(compressed, { maxOutputLength: Math.max(1, entry.size) });
    } catch (error) {
      throw new ApkParseError(`invalid compressed data: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else {
    throw new ApkParseError(`unsupported compression method ${entry.method}`);
  }
  if (content.length !== entry.size) throw new ApkParseError(`${MANIFEST} size mismatch`);
  return content;
}
