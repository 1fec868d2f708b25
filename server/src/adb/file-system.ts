import { posix } from 'node:path';

/** errno values as Android reports them (sync STA2 carries the number, shells print the message). */
const Errno = {
  ENOENT: 2,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  ENOTEMPTY: 39,
} as const;
type ErrnoCode = keyof typeof Errno;

const MESSAGES: Record<ErrnoCode, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EEXIST: 'File exists',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  ENOTEMPTY: 'Directory not empty',
};

export class FileSystemError extends Error {
  override readonly name = 'FileSystemError';
  readonly errno: number;

  constructor(readonly code: ErrnoCode) {
    super(MESSAGES[code]);
    this.errno = Errno[code];
  }
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

interface NodeBase {
  inode: number;
  /** Permission bits only; the file type comes from `kind`. */
  permissions: number;
  /** Seconds since the epoch. */
  mtime: number;
}
export interface DirectoryNode extends NodeBase {
  kind: 'directory';
  children: Map<string, FileNode>;
}
export interface RegularFileNode extends NodeBase {
  kind: 'file';
  data: Buffer;
}
export type FileNode = DirectoryNode | RegularFileNode;

export function modeOf(node: FileNode): number {
  return (node.kind === 'directory' ? S_IFDIR : S_IFREG) | node.permissions;
}

export function sizeOf(node: FileNode): number {
  return node.kind === 'directory' ? 4096 : node.data.length;
}

/** Absolute, without `.`, `..`, repeated or trailing slashes; relative paths start at `/`, the shell's directory. */
export function normalizePath(path: string): string {
  return posix.resolve('/', path);
}

const WRITABLE_ROOTS = ['/sdcard', '/data/local/tmp'];
const INITIAL_DIRECTORIES = ['/data/local/tmp', '/sdcard/Download', '/system/bin'];

/**
 * A device's files, in memory. Everything under `/sdcard` and `/data/local/tmp` is writable by the shell user;
 * elsewhere changes fail with EACCES, as on a phone without root.
 */
export class FileSystem {
  readonly #root: DirectoryNode;
  #nextInode = 1;

  constructor(private readonly now: () => number = () => Math.floor(Date.now() / 1000)) {
    this.#root = this.#directory(0o755);
    for (const path of INITIAL_DIRECTORIES) this.#makeDirectories(path);
  }

  /** The node at `path`; throws ENOENT or ENOTDIR. */
  stat(path: string): FileNode {
    let node: FileNode = this.#root;
    for (const name of segments(path)) {
      if (node.kind !== 'directory') throw new FileSystemError('ENOTDIR');
      const child = node.children.get(name);
      if (child === undefined) throw new FileSystemError('ENOENT');
      node = child;
    }
    return node;
  }

  /** Entries of a directory, sorted by name. */
  list(path: string): [string, FileNode][] {
    const node = this.stat(path);
    if (node.kind !== 'directory') throw new FileSystemError('ENOTDIR');
    return [...node.children].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  read(path: string): Buffer {
    const node = this.stat(path);
    if (node.kind === 'directory') throw new FileSystemError('EISDIR');
    return node.data;
  }

  /** Checks that a file can be created or replaced at `path`, creating missing parent directories when asked. */
  prepareWrite(path: string, options: { makeParents: boolean }): void {
    const normalized = normalizePath(path);
    if (!isWritable(normalized)) throw new FileSystemError('EACCES');
    const parent = posix.dirname(normalized);
    if (options.makeParents) this.mkdir(parent, { parents: true });
    const parentNode = this.stat(parent);
    if (parentNode.kind !== 'directory') throw new FileSystemError('ENOTDIR');
    if (parentNode.children.get(posix.basename(normalized))?.kind === 'directory') {
      throw new FileSystemError('EISDIR');
    }
  }

  write(path: string, data: Buffer, options: { permissions: number; mtime?: number; makeParents?: boolean }): void {
    const normalized = normalizePath(path);
    this.prepareWrite(normalized, { makeParents: options.makeParents ?? false });
    const parent = this.stat(posix.dirname(normalized)) as DirectoryNode;
    parent.children.set(posix.basename(normalized), {
      kind: 'file',
      inode: this.#nextInode++,
      permissions: options.permissions & 0o777,
      mtime: options.mtime ?? this.now(),
      data,
    });
  }

  mkdir(path: string, options: { parents: boolean }): void {
    const normalized = normalizePath(path);
    let node: DirectoryNode = this.#root;
    const names = segments(normalized);
    for (const [index, name] of names.entries()) {
      const last = index === names.length - 1;
      const child = node.children.get(name);
      if (child !== undefined) {
        if (child.kind !== 'directory') throw new FileSystemError(last ? 'EEXIST' : 'ENOTDIR');
        if (last && !options.parents) throw new FileSystemError('EEXIST');
        node = child;
        continue;
      }
      if (!last && !options.parents) throw new FileSystemError('ENOENT');
      if (!isWritable(`/${names.slice(0, index + 1).join('/')}`)) throw new FileSystemError('EACCES');
      const created = this.#directory(0o771);
      node.children.set(name, created);
      node = created;
    }
  }

  remove(path: string, options: { recursive: boolean }): void {
    const normalized = normalizePath(path);
    const node = this.stat(normalized);
    if (!isWritable(normalized)) throw new FileSystemError('EACCES');
    if (node.kind === 'directory' && !options.recursive) throw new FileSystemError('EISDIR');
    (this.stat(posix.dirname(normalized)) as DirectoryNode).children.delete(posix.basename(normalized));
  }

  #makeDirectories(path: string): void {
    let node = this.#root;
    for (const name of segments(path)) {
      let child = node.children.get(name);
      if (child === undefined) {
        child = this.#directory(0o771);
        node.children.set(name, child);
      }
      node = child as DirectoryNode;
    }
  }

  #directory(permissions: number): DirectoryNode {
    return { kind: 'directory', inode: this.#nextInode++, permissions, mtime: this.now(), children: new Map() };
  }
}

function segments(path: string): string[] {
  return normalizePath(path).split('/').filter((name) => name !== '');
}

/** Strictly inside one of the writable roots: the roots themselves cannot be replaced or removed. */
export function isWritable(normalized: string): boolean {
  return WRITABLE_ROOTS.some((root) => normalized.startsWith(`${root}/`));
}
