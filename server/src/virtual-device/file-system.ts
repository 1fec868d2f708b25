import { posix } from 'node:path';

/** errno values as Android reports them (sync STA2 carries the number, shells print the message). */
const Errno = {
  ENOENT: 2,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  ENOSPC: 28,
  EROFS: 30,
  ENOTEMPTY: 39,
} as const;
type ErrnoCode = keyof typeof Errno;

const MESSAGES: Record<ErrnoCode, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EEXIST: 'File exists',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
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
/** Top-level directories of the partitions mounted read-only; `/` itself is read-only too. */
const READ_ONLY_TOPS = new Set(['system', 'vendor', 'product']);
/** The directories every device starts with, and their permissions. */
const INITIAL_DIRECTORIES: [string, number][] = [
  ['/data', 0o771],
  ['/data/local', 0o751],
  ['/data/local/tmp', 0o771],
  ['/proc', 0o555],
  ['/proc/1', 0o555],
  ['/sdcard', 0o770],
  ['/sdcard/Download', 0o770],
  ['/system', 0o755],
  ['/system/bin', 0o755],
];
/** System files every device starts with, and their permissions; they do not count against the storage size. */
const INITIAL_FILES: [string, number, string][] = [
  ['/proc/1/cmdline', 0o444, '/system/bin/init\0second_stage\0'],
  ['/proc/1/mem', 0o600, ''],
  ['/system/bin/sh', 0o755, ''],
];

/** The storage size of a device whose profile names none: 64 MiB. */
export const DEFAULT_STORAGE_BYTES = 64 * 1024 * 1024;

/**
 * A device's files, in memory. Everything under `/sdcard` and `/data/local/tmp` belongs to the shell user; elsewhere
 * changes fail as on a phone without root: EROFS on the read-only system partitions, EACCES elsewhere, and files
 * and directories there are readable only when their permissions let others read. The files the shell user writes
 * share `capacity` bytes; a write past it fails with ENOSPC.
 */
export class FileSystem {
  readonly #root: DirectoryNode;
  #nextInode = 1;
  #used = 0;
  /** Bytes that transfers still under way hold; they count against the free space. */
  #reserved = 0;
  readonly capacity: number;
  private readonly now: () => number;

  constructor(options: { capacity?: number; now?: () => number } = {}) {
    this.capacity = options.capacity ?? DEFAULT_STORAGE_BYTES;
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.#root = this.#directory(0o755);
    for (const [path, permissions] of INITIAL_DIRECTORIES) this.#makeDirectories(path).permissions = permissions;
    for (const [path, permissions, text] of INITIAL_FILES) {
      (this.stat(posix.dirname(path)) as DirectoryNode).children.set(posix.basename(path), {
        kind: 'file',
        inode: this.#nextInode++,
        permissions,
        mtime: this.now(),
        data: Buffer.from(text, 'latin1'),
      });
    }
  }

  /** Bytes the shell user's files take. */
  get used(): number {
    return this.#used;
  }

  /**
   * How many bytes a file written at `path` may have: the free space, less what transfers under way hold, plus what
   * the file it replaces takes.
   */
  spaceFor(path: string): number {
    let replaced = 0;
    try {
      const node = this.stat(path);
      if (node.kind === 'file') replaced = node.data.length;
    } catch (error) {
      if (!(error instanceof FileSystemError)) throw error;
    }
    return this.capacity - this.#used - this.#reserved + replaced;
  }

  /**
   * Holds `bytes` more of the free space for a file being received at `path`; false, holding nothing, when they do
   * not fit. Every byte held is given back with {@link release}.
   */
  reserve(path: string, bytes: number): boolean {
    if (bytes > this.spaceFor(path)) return false;
    this.#reserved += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#reserved -= bytes;
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
    if (!readable(normalizePath(path), node)) throw new FileSystemError('EACCES');
    return [...node.children].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  read(path: string): Buffer {
    const node = this.stat(path);
    if (node.kind === 'directory') throw new FileSystemError('EISDIR');
    if (!readable(normalizePath(path), node)) throw new FileSystemError('EACCES');
    return node.data;
  }

  /**
   * Checks that a file can be created or replaced at `path`, creating missing parent directories when asked. In the
   * order Linux checks: a directory there is EISDIR, then a read-only or foreign place EROFS or EACCES.
   */
  prepareWrite(path: string, options: { makeParents: boolean }): void {
    const normalized = normalizePath(path);
    let existing: FileNode | undefined;
    try {
      existing = this.stat(normalized);
    } catch (error) {
      if (!(error instanceof FileSystemError) || error.code !== 'ENOENT') throw error;
    }
    if (existing?.kind === 'directory') throw new FileSystemError('EISDIR');
    const refusal = writeRefusal(normalized);
    if (refusal !== undefined) throw new FileSystemError(refusal);
    const parent = posix.dirname(normalized);
    if (options.makeParents) this.mkdir(parent, { parents: true });
    const parentNode = this.stat(parent);
    if (parentNode.kind !== 'directory') throw new FileSystemError('ENOTDIR');
  }

  /** Creates or replaces a file; ENOSPC, with nothing changed, when it does not fit in the device's storage. */
  write(path: string, data: Buffer, options: { permissions: number; mtime?: number; makeParents?: boolean }): void {
    const normalized = normalizePath(path);
    this.prepareWrite(normalized, { makeParents: options.makeParents ?? false });
    if (data.length > this.spaceFor(normalized)) throw new FileSystemError('ENOSPC');
    const parent = this.stat(posix.dirname(normalized)) as DirectoryNode;
    const name = posix.basename(normalized);
    const replaced = parent.children.get(name);
    this.#used += data.length - (replaced === undefined ? 0 : usage(replaced));
    parent.children.set(name, {
      kind: 'file',
      inode: this.#nextInode++,
      permissions: options.permissions & 0o777,
      mtime: options.mtime ?? this.now(),
      data,
    });
  }

  /** Adds `data` at the end of the file at `path`, creating it (mode 0644) if missing; ENOSPC when it does not fit. */
  append(path: string, data: Buffer): void {
    const normalized = normalizePath(path);
    this.prepareWrite(normalized, { makeParents: false });
    const parent = this.stat(posix.dirname(normalized)) as DirectoryNode;
    const existing = parent.children.get(posix.basename(normalized));
    if (existing?.kind !== 'file') {
      this.write(normalized, data, { permissions: 0o644 });
      return;
    }
    if (data.length > this.capacity - this.#used - this.#reserved) throw new FileSystemError('ENOSPC');
    existing.data = Buffer.concat([existing.data, data]);
    existing.mtime = this.now();
    this.#used += data.length;
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
      const refusal = writeRefusal(`/${names.slice(0, index + 1).join('/')}`);
      if (refusal !== undefined) throw new FileSystemError(refusal);
      const created = this.#directory(0o771);
      node.children.set(name, created);
      node = created;
    }
  }

  remove(path: string, options: { recursive: boolean }): void {
    const normalized = normalizePath(path);
    const node = this.stat(normalized);
    const refusal = writeRefusal(normalized);
    if (refusal !== undefined) throw new FileSystemError(refusal);
    if (node.kind === 'directory' && !options.recursive) throw new FileSystemError('EISDIR');
    (this.stat(posix.dirname(normalized)) as DirectoryNode).children.delete(posix.basename(normalized));
    this.#used -= usage(node);
  }

  #makeDirectories(path: string): DirectoryNode {
    let node = this.#root;
    for (const name of segments(path)) {
      let child = node.children.get(name);
      if (child === undefined) {
        child = this.#directory(0o771);
        node.children.set(name, child);
      }
      node = child as DirectoryNode;
    }
    return node;
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

/** Why the shell user may not change `normalized`: EROFS on the read-only partitions and `/`, EACCES elsewhere. */
function writeRefusal(normalized: string): 'EROFS' | 'EACCES' | undefined {
  if (isWritable(normalized)) return undefined;
  const top = normalized.split('/')[1] ?? '';
  return READ_ONLY_TOPS.has(top) || posix.dirname(normalized) === '/' ? 'EROFS' : 'EACCES';
}

/** The shell user reads its own files, and others' when their permissions let others read. */
function readable(normalized: string, node: FileNode): boolean {
  return isWritable(normalized) || WRITABLE_ROOTS.includes(normalized) || (node.permissions & 0o004) !== 0;
}

/** Bytes a node and everything under it take. */
function usage(node: FileNode): number {
  if (node.kind === 'file') return node.data.length;
  let total = 0;
  for (const child of node.children.values()) total += usage(child);
  return total;
}
