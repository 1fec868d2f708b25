import { setTimeout as sleepFor } from 'node:timers/promises';
import type { DeviceSystem } from './device-system.js';
import {
  FileSystemError,
  isWritable,
  modeOf,
  normalizePath,
  sizeOf,
  type FileNode,
  type FileSystem,
} from './file-system.js';
import type { PackageStore } from './package-store.js';
import { SHELL, Sh } from './sh.js';
import type { CommandHandler, CommandIo, Userland } from './userland/command.js';
import { PACKAGE_COMMANDS } from './userland/packages.js';
import { PROCESS_COMMANDS } from './userland/processes.js';
import { STORAGE_COMMANDS } from './userland/storage.js';
import { SYSTEM_COMMANDS } from './userland/system.js';
import { TEXT_COMMANDS } from './userland/text.js';
import { parseOptions, reportFileError } from './userland/toybox.js';

/**
 * The simulated Android userland behind `shell:` and `exec:`: a few toybox commands over the device's state. It
 * dispatches a command name to the command modules (userland/*), which see it only as the `Userland` interface.
 */
export class DeviceUserland implements Userland {
  #lastPid = 4000;
  shellPid = 0;

  constructor(
    readonly properties: ReadonlyMap<string, string>,
    readonly files: FileSystem,
    readonly reboot: () => void,
    readonly system: DeviceSystem,
    readonly packages: PackageStore,
  ) {}

  run(commandLine: string, io: CommandIo): Promise<number> {
    return new Sh(this, [SHELL]).run(commandLine, io);
  }

  command(name: string): CommandHandler | undefined {
    return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  }

  nextPid(): number {
    this.#lastPid += 1;
    return this.#lastPid;
  }
}

const COMMANDS: Record<string, CommandHandler> = {
  ...SYSTEM_COMMANDS,
  ...PACKAGE_COMMANDS,
  ...TEXT_COMMANDS,
  ...PROCESS_COMMANDS,
  ...STORAGE_COMMANDS,
  true: async () => 0,

  /** The connection drops at once, as when a phone goes down; the device comes back after its reboot delay. */
  async reboot(_args, _io, userland) {
    userland.reboot();
    return 0;
  },
  false: async () => 1,

  async echo(args, io) {
    const newline = args[0] !== '-n';
    await io.stdout(`${(newline ? args : args.slice(1)).join(' ')}${newline ? '\n' : ''}`);
    return 0;
  },

  async getprop(args, io, userland) {
    const [key] = args;
    if (key !== undefined) {
      await io.stdout(`${userland.properties.get(key) ?? ''}\n`);
      return 0;
    }
    const lines = [...userland.properties].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `[${k}]: [${v}]\n`);
    await io.stdout(lines.join(''));
    return 0;
  },

  async sleep(args, io) {
    const parsed = await parseOptions('sleep', args, { flags: '', operands: 1 }, io);
    if (parsed === undefined) return 1;
    const seconds = Number(parsed.operands[0]);
    if (!Number.isFinite(seconds) || seconds < 0) {
      await io.stderr(`sleep: Not a number '${parsed.operands[0]}'\n`);
      return 1;
    }
    try {
      await sleepFor(seconds * 1000, undefined, { signal: io.signal });
    } catch {
      return 130;
    }
    return 0;
  },

  async cat(args, io, userland) {
    const parsed = await parseOptions('cat', args, { flags: '' }, io);
    if (parsed === undefined) return 1;
    if (parsed.operands.length === 0) {
      for (let data = await io.stdin.readSome(); data !== undefined; data = await io.stdin.readSome()) {
        await io.stdout(data);
      }
      return 0;
    }
    let status = 0;
    for (const path of parsed.operands) {
      try {
        await io.stdout(userland.files.read(path));
      } catch (error) {
        status = await reportFileError('cat', path, error, io);
      }
    }
    return status;
  },

  async ls(args, io, userland) {
    const parsed = await parseOptions('ls', args, { flags: 'la' }, io);
    if (parsed === undefined) return 1;
    const long = parsed.flags.has('l');
    const all = parsed.flags.has('a');
    const operands = parsed.operands.length > 0 ? parsed.operands : ['.'];
    let status = 0;
    for (const [index, path] of operands.entries()) {
      let node: FileNode;
      try {
        node = userland.files.stat(path);
      } catch (error) {
        status = await reportFileError('ls', path, error, io);
        continue;
      }
      if (node.kind === 'file') {
        await io.stdout(long ? `${longListing(path, node, normalizePath(path))}\n` : `${path}\n`);
        continue;
      }
      const directory = normalizePath(path);
      let entries: [string, FileNode][];
      try {
        entries = userland.files.list(directory);
      } catch (error) {
        status = await reportFileError('ls', path, error, io);
        continue;
      }
      if (all) entries.unshift(['.', node], ['..', userland.files.stat(`${directory}/..`)]);
      const heading = operands.length > 1 ? `${index > 0 ? '\n' : ''}${path}:\n` : '';
      const lines = entries.map(([name, entry]) =>
        long ? longListing(name, entry, normalizePath(`${directory}/${name}`)) : name,
      );
      const blocks = entries.reduce((sum, [, entry]) => sum + Math.ceil(sizeOf(entry) / 1024), 0);
      const total = long ? `total ${blocks}\n` : '';
      await io.stdout(heading + total + lines.map((line) => `${line}\n`).join(''));
    }
    return status;
  },

  async mkdir(args, io, userland) {
    const parsed = await parseOptions('mkdir', args, { flags: 'p', operands: 1 }, io);
    if (parsed === undefined) return 1;
    let status = 0;
    for (const path of parsed.operands) {
      try {
        userland.files.mkdir(path, { parents: parsed.flags.has('p') });
      } catch (error) {
        if (!(error instanceof FileSystemError)) throw error;
        await io.stderr(`mkdir: '${path}': ${error.message}\n`);
        status = 1;
      }
    }
    return status;
  },

  async rm(args, io, userland) {
    const parsed = await parseOptions('rm', args, { flags: 'rRf' }, io);
    if (parsed === undefined) return 1;
    const force = parsed.flags.has('f');
    if (parsed.operands.length === 0 && !force) {
      await io.stderr('rm: Need 1 argument\n');
      return 1;
    }
    let status = 0;
    for (const path of parsed.operands) {
      try {
        userland.files.remove(path, { recursive: parsed.flags.has('r') || parsed.flags.has('R') });
      } catch (error) {
        if (force && error instanceof FileSystemError && error.code === 'ENOENT') continue;
        status = await reportFileError('rm', path, error, io);
      }
    }
    return status;
  },
};

/** One `ls -l` line: `-rw-rw-rw- 1 shell shell 5 2026-11-25 00:50 name`. */
function longListing(name: string, node: FileNode, absolutePath: string): string {
  const owner = isWritable(absolutePath) ? 'shell' : 'root';
  const time = new Date(node.mtime * 1000).toISOString();
  const links = node.kind === 'directory' ? 2 : 1;
  return [
    permissionString(node),
    String(links),
    owner,
    owner,
    String(sizeOf(node)),
    `${time.slice(0, 10)} ${time.slice(11, 16)}`,
    name,
  ].join(' ');
}

function permissionString(node: FileNode): string {
  const mode = modeOf(node);
  let text = node.kind === 'directory' ? 'd' : '-';
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (mode >> shift) & 7;
    text += `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  }
  return text;
}
