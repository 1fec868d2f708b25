import type { DeviceProfile } from '../profile.js';
import type { CommandHandler, CommandInput, CommandIo } from '../userland.js';
import { ApkParseError, parseApk, type ApkInfo } from './apk.js';
import { am } from './activity.js';

/** The largest APK an install holds in memory; a bigger one fails with INSTALL_FAILED_INSUFFICIENT_STORAGE. */
const MAX_APK_SIZE = 256 * 1024 * 1024;
/** Android 14 (SDK 34) refuses apps that target an SDK below this. */
const MIN_INSTALLABLE_TARGET_SDK = 23;
const DEPRECATED_SDK_BLOCK_FROM = 34;

export interface InstalledPackage {
  name: string;
  versionCode: number;
  versionName: string;
  /** Where the APK lives on a phone: `/data/app/<name>-1/base.apk` for an installed app. */
  path: string;
  /** Milliseconds since the epoch. */
  firstInstallTime: number;
  lastUpdateTime: number;
  /** Installed by the user, as opposed to part of the system image. */
  thirdParty: boolean;
  /** The parsed APK of an installed app; undefined for the system packages. */
  apk: ApkInfo | undefined;
}

export interface InstallOptions {
  /** `-r`: replace an existing package. */
  replace: boolean;
  /** `-d`: allow a lower versionCode. */
  downgrade: boolean;
}

/** Packages every device has, with their paths on a real system image. */
const SYSTEM_PACKAGES: [string, string][] = [
  ['android', '/system/framework/framework-res.apk'],
  ['com.android.providers.settings', '/system/priv-app/SettingsProvider/SettingsProvider.apk'],
  ['com.android.settings', '/system/priv-app/Settings/Settings.apk'],
  ['com.android.shell', '/system/priv-app/Shell/Shell.apk'],
  ['com.android.systemui', '/system_ext/priv-app/SystemUI/SystemUI.apk'],
];

/** The packages of one device, with Android's install rules; the APK bytes themselves are not kept. */
export class PackageStore {
  readonly #packages = new Map<string, InstalledPackage>();
  /** Packages with a running process, as `am start` leaves them and `am force-stop` ends them. */
  readonly running = new Set<string>();
  #nextSession = 1_000_000;

  constructor(
    readonly profile: DeviceProfile,
    private readonly now: () => number = Date.now,
  ) {
    const bootTime = now();
    for (const [name, path] of SYSTEM_PACKAGES) {
      this.#packages.set(name, {
        name,
        versionCode: profile.sdk,
        versionName: profile.release,
        path,
        firstInstallTime: bootTime,
        lastUpdateTime: bootTime,
        thirdParty: false,
        apk: undefined,
      });
    }
  }

  get(name: string): InstalledPackage | undefined {
    return this.#packages.get(name);
  }

  /** All packages, sorted by name. */
  list(): InstalledPackage[] {
    return [...this.#packages.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Installs an APK, whole or in chunks; resolves `Success` or the `Failure [CODE: message]` line Android prints. */
  async install(data: Buffer | readonly Buffer[], options: InstallOptions): Promise<string> {
    const stagedPath = `/data/app/vmdl${this.#nextSession++}.tmp/base.apk`;
    let apk: ApkInfo;
    try {
      apk = await parseApk(data);
    } catch (error) {
      if (!(error instanceof ApkParseError)) throw error;
      return (
        `Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse ${stagedPath}: ` +
        `Failed to load asset path ${stagedPath}]`
      );
    }
    const { sdk, abis } = this.profile;
    if (apk.minSdk > sdk) {
      return (
        `Failure [INSTALL_FAILED_OLDER_SDK: Failed parse during installPackageLI: ${stagedPath}: ` +
        `Requires newer sdk version #${apk.minSdk} (current version is #${sdk})]`
      );
    }
    if (sdk >= DEPRECATED_SDK_BLOCK_FROM && apk.targetSdk < MIN_INSTALLABLE_TARGET_SDK) {
      return (
        `Failure [INSTALL_FAILED_DEPRECATED_SDK_VERSION: App package must target at least SDK version ` +
        `${MIN_INSTALLABLE_TARGET_SDK}, but found ${apk.targetSdk}]`
      );
    }
    if (apk.nativeAbis.length > 0 && !apk.nativeAbis.some((abi) => abis.includes(abi))) {
      return 'Failure [INSTALL_FAILED_NO_MATCHING_ABIS: Failed to extract native libraries, res=-113]';
    }
    const existing = this.#packages.get(apk.packageName);
    if (existing !== undefined && !options.replace) {
      return (
        `Failure [INSTALL_FAILED_ALREADY_EXISTS: Attempt to re-install ${apk.packageName} without first ` +
        'uninstalling.]'
      );
    }
    if (existing !== undefined && apk.versionCode < existing.versionCode && !options.downgrade) {
      return (
        `Failure [INSTALL_FAILED_VERSION_DOWNGRADE: Downgrade detected: Update version code ${apk.versionCode} ` +
        `is older than current ${existing.versionCode}]`
      );
    }
    const time = this.now();
    this.running.delete(apk.packageName);
    this.#packages.set(apk.packageName, {
      name: apk.packageName,
      versionCode: apk.versionCode,
      versionName: apk.versionName,
      path: existing?.path ?? `/data/app/${apk.packageName}-1/base.apk`,
      firstInstallTime: existing?.firstInstallTime ?? time,
      lastUpdateTime: time,
      thirdParty: existing?.thirdParty ?? true,
      apk,
    });
    return 'Success';
  }

  /** Removes an installed app; system packages and unknown names stay and the call answers false. */
  uninstall(name: string): boolean {
    const installed = this.#packages.get(name);
    if (installed === undefined || !installed.thirdParty) return false;
    this.#packages.delete(name);
    this.running.delete(name);
    return true;
  }
}

/** `pm <command> …`, also reached as `cmd package <command> …` and `abb_exec:package\0…`. */
const pm: CommandHandler = async (args, io, userland) => {
  const [command, ...rest] = args;
  const store = userland.packages;
  switch (command) {
    case 'install':
      return install(rest, io, store, (path) => userland.files.read(path));
    case 'uninstall':
      return uninstall(rest, io, store);
    case 'list':
      if (rest[0] === 'packages') return listPackages(rest.slice(1), io, store);
      break;
    case 'path': {
      const installed = rest[0] === undefined ? undefined : store.get(rest[0]);
      if (installed === undefined) return 1;
      await io.stdout(`package:${installed.path}\n`);
      return 0;
    }
    case 'clear': {
      const installed = rest[0] === undefined ? undefined : store.get(rest[0]);
      if (installed === undefined) {
        await io.stdout('Failed\n');
        return 1;
      }
      store.running.delete(installed.name);
      await io.stdout('Success\n');
      return 0;
    }
  }
  await io.stderr(`Unknown command: ${command ?? ''}\n`);
  return 1;
};

/** `cmd <service> …`: the services the virtual device has. */
export const cmd: CommandHandler = async (args, io, userland) => {
  const [service, ...rest] = args;
  if (service === 'package') return pm(rest, io, userland);
  if (service === 'activity') return am(rest, io, userland);
  await io.stderr(`cmd: Can't find service: ${service ?? ''}\n`);
  return 20;
};

export const PACKAGE_COMMANDS: Record<string, CommandHandler> = { pm, cmd, am };

async function install(
  args: string[],
  io: CommandIo,
  store: PackageStore,
  readFile: (path: string) => Buffer,
): Promise<number> {
  const options: InstallOptions = { replace: false, downgrade: false };
  let size: number | undefined;
  const paths: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    switch (arg) {
      case '-r':
        options.replace = true;
        break;
      case '-d':
        options.downgrade = true;
        break;
      case '-g':
      case '-t':
      case '-f':
      case '-l':
        break;
      case '-i':
      case '--user':
        index++;
        break;
      case '-S': {
        const value = args[++index];
        size = value !== undefined && /^\d+$/.test(value) ? Number(value) : Number.NaN;
        if (Number.isNaN(size)) {
          await io.stderr(`Error: Invalid size: ${value ?? ''}\n`);
          return 1;
        }
        break;
      }
      default:
        if (arg.startsWith('-')) {
          await io.stderr(`Error: Unknown option: ${arg}\n`);
          return 1;
        }
        paths.push(arg);
    }
  }
  let data: Buffer | Buffer[];
  if (size !== undefined) {
    if (size > MAX_APK_SIZE) {
      await io.stdout('Failure [INSTALL_FAILED_INSUFFICIENT_STORAGE]\n');
      return 1;
    }
    data = await readChunks(io.stdin, size);
  } else if (paths[0] !== undefined) {
    try {
      data = readFile(paths[0]);
    } catch {
      await io.stderr(`Error: Can't open file: ${paths[0]}\n`);
      return 1;
    }
  } else {
    await io.stderr('Error: must either specify a package size or an APK file\n');
    return 1;
  }
  const result = await store.install(data, options);
  await io.stdout(`${result}\n`);
  return result === 'Success' ? 0 : 1;
}

/** Exactly `size` bytes of the input as the chunks they arrived in; none if the input ends first. */
async function readChunks(input: CommandInput, size: number): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for (let received = 0; received < size; ) {
    const more = await input.readChunks(size - received);
    if (more === undefined) return [];
    for (const chunk of more) {
      chunks.push(chunk);
      received += chunk.length;
    }
  }
  return chunks;
}

/**
 * `dumpsys package [packages | <name>]`: the `Packages:` section of Android's package dump, one block per package
 * (or the named one) with the lines tools read from it: code path, version code, SDK levels and version name.
 */
export async function dumpsysPackage(args: string[], io: CommandIo, store: PackageStore): Promise<number> {
  const name = args[0] === undefined || args[0] === 'packages' ? undefined : args[0];
  const packages = store.list().filter((installed) => name === undefined || installed.name === name);
  if (name !== undefined && packages.length === 0) {
    await io.stdout(`Unable to find package: ${name}\n`);
    return 0;
  }
  const { sdk } = store.profile;
  const date = (millis: number) => new Date(millis).toISOString().replace('T', ' ').slice(0, 19);
  const blocks = packages.map((installed) =>
    [
      `  Package [${installed.name}] (${hashOf(installed.name)}):`,
      `    codePath=${installed.path.slice(0, installed.path.lastIndexOf('/'))}`,
      `    versionCode=${installed.versionCode} minSdk=${installed.apk?.minSdk ?? sdk} targetSdk=${installed.apk?.targetSdk ?? sdk}`,
      `    versionName=${installed.versionName}`,
      `    firstInstallTime=${date(installed.firstInstallTime)}`,
      `    lastUpdateTime=${date(installed.lastUpdateTime)}`,
    ].join('\n'),
  );
  await io.stdout(`Packages:\n${blocks.join('\n')}\n`);
  return 0;
}

/** The identity hash Android prints after a package's name: stable per name here. */
function hashOf(name: string): string {
  let hash = 0;
  for (const char of name) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) >>> 0;
  return hash.toString(16).padStart(7, '0').slice(-7);
}

async function uninstall(args: string[], io: CommandIo, store: PackageStore): Promise<number> {
  const name = args.find((arg, index) => !arg.startsWith('-') && args[index - 1] !== '--user');
  if (name === undefined) {
    await io.stderr('Error: package name not specified\n');
    return 1;
  }
  if (!store.uninstall(name)) {
    await io.stdout('Failure [DELETE_FAILED_INTERNAL_ERROR]\n');
    return 1;
  }
  await io.stdout('Success\n');
  return 0;
}

/** `list packages [-3] [-s] [-f] [filter]`. */
async function listPackages(args: string[], io: CommandIo, store: PackageStore): Promise<number> {
  const flags = new Set<string>();
  let filter = '';
  let showVersionCode = false;
  for (const arg of args) {
    if (arg === '--show-versioncode') {
      showVersionCode = true;
      continue;
    }
    if (!arg.startsWith('-')) {
      filter = arg;
      continue;
    }
    for (const letter of arg.slice(1)) {
      if (!'3sf'.includes(letter)) {
        await io.stderr(`Error: Unknown option: -${letter}\n`);
        return 1;
      }
      flags.add(letter);
    }
  }
  const lines = store
    .list()
    .filter((installed) => !flags.has('3') || installed.thirdParty)
    .filter((installed) => !flags.has('s') || !installed.thirdParty)
    .filter((installed) => installed.name.includes(filter))
    .map(
      (installed) =>
        `package:${flags.has('f') ? `${installed.path}=` : ''}${installed.name}` +
        `${showVersionCode ? ` versionCode:${installed.versionCode}` : ''}\n`,
    );
  await io.stdout(lines.join(''));
  return 0;
}
