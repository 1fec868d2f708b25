import { createRequire } from 'node:module';

/** The part of @devicefarmer/adbkit-apkreader (CommonJS, without types) this module uses. */
interface ApkReaderModule {
  open(apk: Buffer): Promise<{ readManifest(): Promise<Manifest> }>;
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

const ApkReader = createRequire(import.meta.url)('@devicefarmer/adbkit-apkreader') as ApkReaderModule;

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
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** Reads an APK held in memory; throws ApkParseError when it is not a zip with a binary AndroidManifest.xml. */
export async function parseApk(data: Buffer): Promise<ApkInfo> {
  const entries = zipEntryNames(data);
  let manifest: Manifest;
  try {
    manifest = await (await ApkReader.open(data)).readManifest();
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
  for (const name of entries) {
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

/** The entry names of the zip's central directory. */
function zipEntryNames(data: Buffer): string[] {
  const end = findEndOfCentralDirectory(data);
  const count = data.readUInt16LE(end + 10);
  let offset = data.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let index = 0; index < count; index++) {
    if (offset + 46 > data.length || data.readUInt32LE(offset) !== CENTRAL_ENTRY_SIGNATURE) {
      throw new ApkParseError('invalid central directory');
    }
    const nameLength = data.readUInt16LE(offset + 28);
    const extraLength = data.readUInt16LE(offset + 30);
    const commentLength = data.readUInt16LE(offset + 32);
    names.push(data.toString('utf8', offset + 46, offset + 46 + nameLength));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

function findEndOfCentralDirectory(data: Buffer): number {
  const lowest = Math.max(0, data.length - EOCD_SIZE - MAX_COMMENT);
  for (let offset = data.length - EOCD_SIZE; offset >= lowest; offset--) {
    if (data.readUInt32LE(offset) === EOCD_SIGNATURE) return offset;
  }
  throw new ApkParseError('not a zip archive');
}
