import type { DeviceProfile } from './profile.js';
import { ApkParseError, parseApk, type ApkInfo } from './userland/apk.js';

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
