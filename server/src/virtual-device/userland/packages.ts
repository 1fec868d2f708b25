import type { InstallOptions, PackageStore } from '../package-store.js';
import type { CommandHandler, CommandInput, CommandIo } from './command.js';
import { am } from './activity.js';

/** The largest APK an install holds in memory; a bigger one fails with INSTALL_FAILED_INSUFFICIENT_STORAGE. */
const MAX_APK_SIZE = 256 * 1024 * 1024;

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
