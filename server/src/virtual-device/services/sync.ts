import type { Device } from '../device.js';
import { FileSystemError, isWritable, modeOf, normalizePath, sizeOf, type FileNode } from '../file-system.js';
import type { AdbStream } from '../../adb-protocol/index.js';

/** The largest DATA chunk either side may send. */
const SYNC_DATA_MAX = 64 * 1024;
/** How much of a file RECV frames per write. */
const SEND_BATCH = 16 * SYNC_DATA_MAX;
const PATH_MAX = 1024;
const SHELL_UID = 2000;

/**
 * `sync:` — the file transfer protocol behind `adb push`, `pull` and `ls`. Each request is a 4-byte id, a u32 LE
 * length and a path; the stream closes after QUIT, after a failed transfer or when the host goes away.
 */
export async function runSync(stream: AdbStream, device: Device): Promise<void> {
  while (await handleRequest(stream, device));
  await stream.close();
}

async function handleRequest(stream: AdbStream, device: Device): Promise<boolean> {
  const header = await stream.input.read(8);
  if (header === undefined) return false;
  const id = header.toString('latin1', 0, 4);
  const length = header.readUInt32LE(4);
  if (id === 'QUIT') return false;
  if (length > PATH_MAX) {
    await sendFail(stream, 'path too long');
    return false;
  }
  const argument = await stream.input.read(length);
  if (argument === undefined) return false;
  const path = argument.toString('utf8');
  switch (id) {
    case 'STAT':
      await stream.write(encodeStatV1(lookup(device, path)));
      return true;
    case 'STA2':
    case 'LST2':
      await stream.write(encodeStatV2(id, lookup(device, path), normalizePath(path)));
      return true;
    case 'LIST':
    case 'LIS2':
      await sendListing(stream, device, path, id === 'LIS2');
      return true;
    case 'SEND':
      return receiveFile(stream, device, path);
    case 'RECV':
      return sendFile(stream, device, path);
    default:
      await sendFail(stream, `unknown command ${header.readUInt32LE(0).toString(16).padStart(8, '0')}`);
      return false;
  }
}

function lookup(device: Device, path: string): FileNode | FileSystemError {
  try {
    return device.files.stat(path);
  } catch (error) {
    if (error instanceof FileSystemError) return error;
    throw error;
  }
}

/** STAT: mode, size and mtime as u32; all zero when the path does not exist. */
function encodeStatV1(result: FileNode | FileSystemError): Buffer {
  const out = Buffer.alloc(16);
  out.write('STAT', 0, 'latin1');
  if (!(result instanceof FileSystemError)) {
    out.writeUInt32LE(modeOf(result), 4);
    out.writeUInt32LE(sizeOf(result), 8);
    out.writeUInt32LE(result.mtime, 12);
  }
  return out;
}

const STAT_V2_SIZE = 72;

/**
 * The 72-byte stat_v2 record (id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime). With a name it
 * becomes a DNT2 entry: the record, a u32 name length and the name.
 */
function encodeStatV2(id: string, result: FileNode | FileSystemError | undefined, path: string, name?: string): Buffer {
  const nameBytes = name === undefined ? undefined : Buffer.from(name, 'utf8');
  const out = Buffer.alloc(STAT_V2_SIZE + (nameBytes === undefined ? 0 : 4 + nameBytes.length));
  out.write(id, 0, 'latin1');
  if (result instanceof FileSystemError) {
    out.writeUInt32LE(result.errno, 4);
  } else if (result !== undefined) {
    const owner = isWritable(path) ? SHELL_UID : 0;
    out.writeBigUInt64LE(1n, 8);
    out.writeBigUInt64LE(BigInt(result.inode), 16);
    out.writeUInt32LE(modeOf(result), 24);
    out.writeUInt32LE(result.kind === 'directory' ? 2 : 1, 28);
    out.writeUInt32LE(owner, 32);
    out.writeUInt32LE(owner, 36);
    out.writeBigUInt64LE(BigInt(sizeOf(result)), 40);
    for (const offset of [48, 56, 64]) out.writeBigInt64LE(BigInt(result.mtime), offset);
  }
  if (nameBytes !== undefined) {
    out.writeUInt32LE(nameBytes.length, STAT_V2_SIZE);
    nameBytes.copy(out, STAT_V2_SIZE + 4);
  }
  return out;
}

/** A DENT entry (mode, size, mtime, name length, name); DONE is the same record, zeroed, with no name. */
function encodeDentV1(id: string, node: FileNode | undefined, name: string): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const out = Buffer.alloc(20 + nameBytes.length);
  out.write(id, 0, 'latin1');
  if (node !== undefined) {
    out.writeUInt32LE(modeOf(node), 4);
    out.writeUInt32LE(sizeOf(node), 8);
    out.writeUInt32LE(node.mtime, 12);
  }
  out.writeUInt32LE(nameBytes.length, 16);
  nameBytes.copy(out, 20);
  return out;
}

/** One entry per name, `.` and `..` included as readdir gives them, then DONE; a missing directory is just DONE. */
async function sendListing(stream: AdbStream, device: Device, path: string, v2: boolean): Promise<void> {
  const directory = normalizePath(path);
  let entries: [string, FileNode][] = [];
  try {
    const self = device.files.stat(directory);
    entries = [['.', self], ['..', device.files.stat(`${directory}/..`)], ...device.files.list(directory)];
  } catch (error) {
    if (!(error instanceof FileSystemError)) throw error;
  }
  const records = entries.map(([name, node]) => {
    const entryPath = normalizePath(`${directory}/${name}`);
    return v2 ? encodeStatV2('DNT2', node, entryPath, name) : encodeDentV1('DENT', node, name);
  });
  records.push(v2 ? encodeStatV2('DONE', undefined, directory, '') : encodeDentV1('DONE', undefined, ''));
  await stream.write(Buffer.concat(records));
}

/**
 * SEND `path,mode`, then DATA chunks and DONE with the mtime; answers OKAY, or FAIL and ends the session. Like adbd,
 * a file that outgrows the device's free space fails with `write failed: No space left on device` and is gone
 * afterwards; the rest of its data is read and dropped. What a transfer has received holds its share of the free
 * space until it ends, so transfers at once never hold more than the device's storage.
 */
async function receiveFile(stream: AdbStream, device: Device, spec: string): Promise<boolean> {
  const comma = spec.lastIndexOf(',');
  if (comma === -1) {
    await sendFail(stream, 'missing , in ID_SEND');
    return false;
  }
  const path = spec.slice(0, comma);
  const permissions = Number.parseInt(spec.slice(comma + 1), 10) & 0o777;
  let failure: string | undefined;
  try {
    device.files.prepareWrite(path, { makeParents: true });
  } catch (error) {
    if (!(error instanceof FileSystemError)) throw error;
    failure = `couldn't create file: ${error.message}`;
    await sendFail(stream, failure);
  }
  const chunks: Buffer[] = [];
  let held = 0;
  try {
    for (;;) {
      const header = await stream.input.read(8);
      if (header === undefined) return false;
      const id = header.toString('latin1', 0, 4);
      const length = header.readUInt32LE(4);
      if (id === 'DONE') {
        if (failure !== undefined) return false;
        device.files.release(held);
        held = 0;
        return await finishReceive(stream, device, path, Buffer.concat(chunks), { permissions, mtime: length });
      }
      if (id !== 'DATA' || length > SYNC_DATA_MAX) {
        if (failure === undefined) {
          await sendFail(stream, id === 'DATA' ? 'oversize data message' : 'invalid data message');
        }
        return false;
      }
      const data = await stream.input.read(length);
      if (data === undefined) return false;
      if (failure !== undefined) continue;
      if (!device.files.reserve(path, data.length)) {
        chunks.length = 0;
        device.files.release(held);
        held = 0;
        removeFile(device, path);
        failure = `write failed: ${new FileSystemError('ENOSPC').message}`;
        await sendFail(stream, failure);
        continue;
      }
      held += data.length;
      chunks.push(data);
    }
  } finally {
    device.files.release(held);
  }
}

/** Removes the file at `path` if there is one. */
function removeFile(device: Device, path: string): void {
  try {
    device.files.remove(path, { recursive: false });
  } catch (error) {
    if (!(error instanceof FileSystemError)) throw error;
  }
}

async function finishReceive(
  stream: AdbStream,
  device: Device,
  path: string,
  data: Buffer,
  options: { permissions: number; mtime: number },
): Promise<boolean> {
  try {
    device.files.write(path, data, { ...options, makeParents: true });
  } catch (error) {
    if (!(error instanceof FileSystemError)) throw error;
    await sendFail(stream, `${error.code === 'ENOSPC' ? 'write failed' : "couldn't create file"}: ${error.message}`);
    return false;
  }
  await stream.write(syncHeader('OKAY', 0));
  return true;
}

/** RECV: the file in DATA chunks, then DONE; FAIL and the end of the session when it cannot be read. */
async function sendFile(stream: AdbStream, device: Device, path: string): Promise<boolean> {
  let data: Buffer;
  try {
    data = device.files.read(path);
  } catch (error) {
    if (!(error instanceof FileSystemError)) throw error;
    await sendFail(stream, `open failed: ${error.message}`);
    return false;
  }
  // Records go out in batches that the stream sends as full WRTEs: fewer host round trips than one per record.
  for (let start = 0; start < data.length; start += SEND_BATCH) {
    const records: Buffer[] = [];
    for (let offset = start; offset < Math.min(start + SEND_BATCH, data.length); offset += SYNC_DATA_MAX) {
      const chunk = data.subarray(offset, offset + SYNC_DATA_MAX);
      records.push(syncHeader('DATA', chunk.length), chunk);
    }
    await stream.write(Buffer.concat(records));
  }
  await stream.write(syncHeader('DONE', 0));
  return true;
}

function syncHeader(id: string, value: number): Buffer {
  const out = Buffer.alloc(8);
  out.write(id, 0, 'latin1');
  out.writeUInt32LE(value, 4);
  return out;
}

async function sendFail(stream: AdbStream, message: string): Promise<void> {
  const text = Buffer.from(message, 'utf8');
  await stream.write(Buffer.concat([syncHeader('FAIL', text.length), text]));
}
