import { normalizePath } from '../file-system.js';
import type { CommandHandler } from './command.js';
import { parseOptions, reportFileError } from './toybox.js';

interface Mount {
  device: string;
  path: string;
  blocks: number;
  used: number;
}

const KiB = 1024;
/** The read-only system partition: its size never changes. */
const SYSTEM_KIB = 2_940_928;

/** `df [-h] [path…]`: `/` (read-only), and `/data` and `/storage/emulated` with the device's storage and use. */
const df: CommandHandler = async (args, io, userland) => {
  const options = await parseOptions('df', args, { flags: 'hk' }, io);
  if (options === undefined) return 1;
  const files = userland.files;
  const data = { blocks: Math.ceil(files.capacity / KiB), used: Math.ceil(files.used / KiB) };
  const mounts: Mount[] = [
    { device: '/dev/block/dm-0', path: '/', blocks: SYSTEM_KIB, used: SYSTEM_KIB },
    { device: '/dev/block/dm-5', path: '/data', ...data },
    { device: '/dev/fuse', path: '/storage/emulated', ...data },
  ];
  let status = 0;
  let shown = mounts;
  if (options.operands.length > 0) {
    shown = [];
    for (const operand of options.operands) {
      const path = normalizePath(operand).replace(/^\/sdcard(?=\/|$)/, '/storage/emulated');
      try {
        files.stat(operand);
      } catch (error) {
        status = await reportFileError('df', operand, error, io);
        continue;
      }
      const mount = [...mounts].reverse().find((candidate) => path === candidate.path || path.startsWith(`${candidate.path === '/' ? '' : candidate.path}/`));
      if (mount !== undefined) shown.push(mount);
    }
  }
  const size = (kib: number) => (options.flags.has('h') ? human(kib) : String(kib));
  const rows = [
    ['Filesystem', options.flags.has('h') ? 'Size' : '1K-blocks', 'Used', options.flags.has('h') ? 'Avail' : 'Available', 'Use%', 'Mounted on'],
    ...shown.map(({ device, path, blocks, used }) => [
      device,
      size(blocks),
      size(used),
      size(blocks - used),
      `${blocks === 0 ? 0 : Math.ceil((used * 100) / blocks)}%`,
      path,
    ]),
  ];
  const widths = [0, 1, 2, 3, 4].map((column) => Math.max(...rows.map((row) => (row[column] as string).length)));
  const line = (row: string[]) =>
    `${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[0]!) : column === 5 ? cell : cell.padStart(widths[column]!))).join(' ')}\n`;
  await io.stdout(rows.map(line).join(''));
  return status;
};

/** Sizes as `df -h` prints them: 1K-blocks as 512K, 64M, 2.8G. */
function human(kib: number): string {
  if (kib === 0) return '0';
  const units = ['K', 'M', 'G', 'T'];
  let value = kib;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value)}${units[unit]}`;
}

export const STORAGE_COMMANDS: Record<string, CommandHandler> = { df };
