import type { CommandHandler, Userland } from './command.js';
import { parseOptions } from './toybox.js';

interface Process {
  user: string;
  pid: number;
  ppid: number;
  vsz: number;
  rss: number;
  wchan: string;
  state: 'R' | 'S';
  name: string;
}

const ZYGOTE_PID = 612;
const ADBD_PID = 733;

/** The daemons every device runs; system_server's pid is the one its log lines carry. */
const SYSTEM_PROCESSES: readonly Process[] = [
  { user: 'root', pid: 1, ppid: 0, vsz: 10_829_580, rss: 11_024, wchan: 'do_epoll_wait', state: 'S', name: 'init' },
  { user: 'root', pid: 2, ppid: 0, vsz: 0, rss: 0, wchan: 'kthreadd', state: 'S', name: '[kthreadd]' },
  { user: 'logd', pid: 301, ppid: 1, vsz: 10_948_712, rss: 5_904, wchan: 'do_sys_poll', state: 'S', name: 'logd' },
  { user: 'system', pid: 402, ppid: 1, vsz: 10_810_236, rss: 3_660, wchan: 'binder_thread_read', state: 'S', name: 'servicemanager' },
  { user: 'root', pid: ZYGOTE_PID, ppid: 1, vsz: 15_412_748, rss: 154_316, wchan: 'do_sys_poll', state: 'S', name: 'zygote64' },
  { user: 'shell', pid: ADBD_PID, ppid: 1, vsz: 10_945_372, rss: 4_212, wchan: 'do_epoll_wait', state: 'S', name: 'adbd' },
  { user: 'system', pid: 1432, ppid: ZYGOTE_PID, vsz: 19_012_564, rss: 312_880, wchan: 'do_epoll_wait', state: 'S', name: 'system_server' },
  { user: 'u0_a58', pid: 1687, ppid: ZYGOTE_PID, vsz: 17_321_044, rss: 198_532, wchan: 'do_epoll_wait', state: 'S', name: 'com.android.systemui' },
];

/** A stable pid for an app's process: the same package always gets the same one on a device. */
function appPid(packageName: string): number {
  let hash = 0;
  for (const char of packageName) hash = (hash * 31 + char.charCodeAt(0)) % 20_000;
  return 5_000 + hash;
}

/** The processes of the device: its daemons, the apps `am start` left running, the shell and `ps` itself. */
function processes(userland: Userland, self: number): Process[] {
  const apps = [...userland.packages.running].sort().map((name, index): Process => ({
    user: `u0_a${120 + index}`,
    pid: appPid(name),
    ppid: ZYGOTE_PID,
    vsz: 16_984_220,
    rss: 121_408,
    wchan: 'do_epoll_wait',
    state: 'S',
    name,
  }));
  const shell: Process[] = [
    { user: 'shell', pid: userland.shellPid, ppid: ADBD_PID, vsz: 10_776_180, rss: 3_352, wchan: 'do_wait', state: 'S', name: 'sh' },
    { user: 'shell', pid: self, ppid: userland.shellPid, vsz: 10_802_508, rss: 3_900, wchan: '0', state: 'R', name: 'ps' },
  ];
  return [...SYSTEM_PROCESSES, ...apps, ...shell].sort((a, b) => a.pid - b.pid);
}

/** One line of toybox's default `ps` columns: USER PID PPID VSZ RSS WCHAN ADDR S NAME. */
function row(columns: [string, ...(string | number)[]]): string {
  const [user, pid, ppid, vsz, rss, wchan, addr, state, name] = columns.map(String) as string[];
  return (
    `${user!.padEnd(12)} ${pid!.padStart(5)} ${ppid!.padStart(5)} ${vsz!.padStart(7)} ${rss!.padStart(6)} ` +
    `${wchan!.padEnd(16)} ${addr!.padStart(4)} ${state} ${name}\n`
  );
}

function processRow(process: Process): string {
  const { user, pid, ppid, vsz, rss, wchan, state, name } = process;
  return row([user, pid, ppid, vsz, rss, wchan, 0, state, name]);
}

const HEADER = row(['USER', 'PID', 'PPID', 'VSZ', 'RSS', 'WCHAN', 'ADDR', 'S', 'NAME']);

/**
 * `ps [-A|-e] [-p PID,…] [PID|NAME…]`: toybox's default columns. Without `-A` it shows the shell's own processes
 * (the shell and `ps`), as on a device without a terminal.
 */
const ps: CommandHandler = async (args, io, userland) => {
  const options = await parseOptions('ps', args, { flags: 'Ae', valued: 'p' }, io);
  if (options === undefined) return 1;
  const self = userland.nextPid();
  const all = processes(userland, self);
  const pids = new Set([...(options.values.get('p') ?? []), ...options.operands.filter((operand) => /^\d+$/.test(operand))]
    .flatMap((list) => list.split(','))
    .map(Number));
  const names = new Set(options.operands.filter((operand) => !/^\d+$/.test(operand)));
  let shown: Process[];
  if (pids.size > 0 || names.size > 0) shown = all.filter((process) => pids.has(process.pid) || names.has(process.name));
  else if (options.flags.has('A') || options.flags.has('e')) shown = all;
  else shown = all.filter((process) => process.pid === userland.shellPid || process.pid === self);
  await io.stdout(HEADER + shown.map(processRow).join(''));
  return shown.length > 0 || (pids.size === 0 && names.size === 0) ? 0 : 1;
};

/** `pidof NAME…`: the pids of processes by name, space-separated; exit 1 when there is none. */
const pidof: CommandHandler = async (args, io, userland) => {
  const options = await parseOptions('pidof', args, { flags: 's' }, io);
  if (options === undefined) return 1;
  const names = new Set(options.operands);
  const found = processes(userland, userland.nextPid())
    .filter((process) => names.has(process.name))
    .map((process) => process.pid)
    .sort((a, b) => b - a);
  if (found.length === 0) return 1;
  await io.stdout(`${(options.flags.has('s') ? found.slice(0, 1) : found).join(' ')}\n`);
  return 0;
};

export const PROCESS_COMMANDS: Record<string, CommandHandler> = { ps, pidof };
