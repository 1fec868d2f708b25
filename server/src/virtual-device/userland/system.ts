import type { DeviceSystem, InputEvent, SettingsNamespace } from '../device-system.js';
import type { CommandHandler, CommandIo, Userland } from './command.js';
import { dumpsysPackage } from './packages.js';
import {
  LOG_PRIORITIES,
  encodeBinaryEntry,
  formatThreadtime,
  type LogEntry,
  type LogPriority,
  type LogWriter,
} from './logs.js';
import { encodePng, encodeRawCapture } from './screen.js';

const NAMESPACES: readonly SettingsNamespace[] = ['system', 'secure', 'global'];

/** Key codes by name (`KeyEvent.KEYCODE_*`); `input keyevent` takes a name with or without the prefix, or a number. */
const KEY_CODES: Readonly<Record<string, number>> = {
  HOME: 3, BACK: 4, CALL: 5, ENDCALL: 6, DPAD_UP: 19, DPAD_DOWN: 20, DPAD_LEFT: 21, DPAD_RIGHT: 22, DPAD_CENTER: 23,
  VOLUME_UP: 24, VOLUME_DOWN: 25, POWER: 26, CAMERA: 27, TAB: 61, SPACE: 62, ENTER: 66, DEL: 67, MENU: 82,
  SEARCH: 84, MEDIA_PLAY_PAUSE: 85, PAGE_UP: 92, PAGE_DOWN: 93, ESCAPE: 111, FORWARD_DEL: 112, VOLUME_MUTE: 164,
  APP_SWITCH: 187, SLEEP: 223, WAKEUP: 224,
  ...Object.fromEntries(Array.from({ length: 10 }, (_, digit) => [String(digit), 7 + digit])),
  ...Object.fromEntries(Array.from({ length: 26 }, (_, letter) => [String.fromCharCode(65 + letter), 29 + letter])),
};

const INPUT_WRITER: LogWriter = { pid: 1432, tid: 1521, uid: 1000 };
const SETTINGS_WRITER: LogWriter = { pid: 1432, tid: 1498, uid: 1000 };

const INPUT_USAGE =
  'Usage: input [<source>] <command> [<arg>...]\n\nThe sources are:\n' +
  '      dpad\n      keyboard\n      mouse\n      touchpad\n      gamepad\n      touchnavigation\n      joystick\n' +
  '      touchscreen\n      stylus\n      trackball\n      rotaryencoder\n\nThe commands and default sources are:\n' +
  '      text <string> (Default: touchscreen)\n      keyevent <key code number or name> ... (Default: keyboard)\n' +
  '      tap <x> <y> (Default: touchscreen)\n      swipe <x1> <y1> <x2> <y2> [duration(ms)] (Default: touchscreen)\n';

const INPUT_SOURCES = new Set([
  'keyboard', 'mouse', 'touchpad', 'gamepad', 'touchnavigation', 'joystick', 'touchscreen', 'stylus', 'trackball',
  'dpad', 'rotaryencoder',
]);

async function input(args: string[], io: CommandIo, system: DeviceSystem): Promise<number> {
  const [command, ...rest] = INPUT_SOURCES.has(args[0] ?? '') ? args.slice(1) : args;
  const numbers = rest.map(Number);
  const numeric = (count: number, optional = 0) =>
    rest.length >= count && rest.length <= count + optional && numbers.every(Number.isFinite);
  let event: InputEvent | undefined;
  if (command === 'tap' && numeric(2)) {
    event = { type: 'tap', x: numbers[0]!, y: numbers[1]! };
  } else if (command === 'swipe' && numeric(4, 1)) {
    const [x1, y1, x2, y2, duration] = numbers as [number, number, number, number, number | undefined];
    event = { type: 'swipe', x1, y1, x2, y2, durationMs: duration ?? 300 };
  } else if (command === 'text' && rest.length === 1) {
    event = { type: 'text', text: rest[0]!.replaceAll('%s', ' ') };
  } else if (command === 'keyevent' && rest.length > 0) {
    const codes = rest.map(keyCode);
    const unknown = rest.find((_, index) => codes[index] === undefined);
    if (unknown !== undefined) {
      await io.stderr(`Error: Unknown keycode: ${unknown}\n`);
      return 1;
    }
    for (const code of codes as number[]) record(system, { type: 'keyevent', keyCode: code });
    return 0;
  }
  if (event === undefined) {
    const problem = command === undefined ? '' : `Error: Invalid arguments for command: ${command}\n`;
    await io.stderr(problem + INPUT_USAGE);
    return 1;
  }
  record(system, event);
  return 0;
}

function keyCode(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  const key = name.startsWith('KEYCODE_') ? name.slice('KEYCODE_'.length) : name;
  return Object.hasOwn(KEY_CODES, key) ? KEY_CODES[key] : undefined;
}

function record(system: DeviceSystem, event: InputEvent): void {
  system.inputs.push(event);
  const { type, ...details } = event;
  system.log('D', 'InputDispatcher', `Injected ${type} ${JSON.stringify(details)}`, INPUT_WRITER);
}

async function wm(args: string[], io: CommandIo, system: DeviceSystem): Promise<number> {
  if (args.length === 1 && args[0] === 'size') {
    await io.stdout(`Physical size: ${system.screen.width}x${system.screen.height}\n`);
    return 0;
  }
  if (args.length === 1 && args[0] === 'density') {
    await io.stdout(`Physical density: ${system.screen.density}\n`);
    return 0;
  }
  await io.stderr(`wm: the virtual device answers only \`wm size\` and \`wm density\`\n`);
  return 1;
}

async function screencap(args: string[], io: CommandIo, system: DeviceSystem): Promise<number> {
  const png = args.includes('-p');
  const operands = args.filter((arg) => arg !== '-p');
  if (operands.length > 0) {
    await io.stderr('screencap: the virtual device writes captures only to standard output\n');
    return 1;
  }
  const pixels = system.pixels;
  await io.stdout(png ? encodePng(system.screen, pixels) : encodeRawCapture(system.screen, pixels, system.profile.sdk));
  return 0;
}

const BATTERY_STATUS = { unknown: 1, charging: 2, discharging: 3, 'not-charging': 4, full: 5 } as const;
const BATTERY_HEALTH_GOOD = 2;

async function dumpsys(args: string[], io: CommandIo, userland: Userland): Promise<number> {
  if (args[0] === 'package') return dumpsysPackage(args.slice(1), io, userland.packages);
  if (args.length !== 1 || args[0] !== 'battery') {
    await io.stderr(`Can't find service: ${args[0] ?? ''}\n`);
    return 1;
  }
  const { battery, profile } = userland.system;
  const lines = [
    'Current Battery Service state:',
    `  AC powered: ${battery.plugged === 'ac'}`,
    `  USB powered: ${battery.plugged === 'usb'}`,
    `  Wireless powered: ${battery.plugged === 'wireless'}`,
    ...(profile.sdk >= 33 ? ['  Dock powered: false'] : []),
    `  Max charging current: ${battery.plugged === 'none' ? 0 : 500000}`,
    `  Max charging voltage: ${battery.plugged === 'none' ? 0 : 5000000}`,
    `  Charge counter: ${battery.level * 40000}`,
    `  status: ${BATTERY_STATUS[battery.status]}`,
    `  health: ${BATTERY_HEALTH_GOOD}`,
    '  present: true',
    `  level: ${battery.level}`,
    '  scale: 100',
    `  voltage: ${battery.voltage}`,
    `  temperature: ${battery.temperature}`,
    '  technology: Li-ion',
  ];
  await io.stdout(`${lines.join('\n')}\n`);
  return 0;
}

const SETTINGS_USAGE =
  'usage:  settings [--user <USER_ID> | current] get namespace key\n' +
  '        settings [--user <USER_ID> | current] put namespace key value\n' +
  '        settings [--user <USER_ID> | current] delete namespace key\n' +
  '        settings [--user <USER_ID> | current] list namespace\n\n' +
  "'namespace' is one of {system, secure, global}, case-insensitive\n";

async function settings(args: string[], io: CommandIo, system: DeviceSystem): Promise<number> {
  const [verb, rawNamespace, key, value, ...extra] = args[0] === '--user' ? args.slice(2) : args;
  const namespace = rawNamespace?.toLowerCase() as SettingsNamespace | undefined;
  const arity = { get: 3, put: 4, delete: 3, list: 2 } as const;
  const expected = verb !== undefined && Object.hasOwn(arity, verb) ? arity[verb as keyof typeof arity] : undefined;
  const given = [verb, rawNamespace, key, value].filter((word) => word !== undefined).length;
  if (expected === undefined || given !== expected || extra.length > 0 || namespace === undefined) {
    await io.stderr(SETTINGS_USAGE);
    return 255;
  }
  if (!NAMESPACES.includes(namespace)) {
    await io.stderr(`Invalid namespace '${rawNamespace}'\n${SETTINGS_USAGE}`);
    return 255;
  }
  const table = system.settings[namespace];
  switch (verb) {
    case 'get':
      await io.stdout(`${table.get(key!) ?? 'null'}\n`);
      return 0;
    case 'put':
      table.set(key!, value!);
      system.log('I', 'SettingsProvider', `put ${namespace} ${key}=${value}`, SETTINGS_WRITER);
      return 0;
    case 'delete': {
      const deleted = table.delete(key!);
      if (deleted) system.log('I', 'SettingsProvider', `delete ${namespace} ${key}`, SETTINGS_WRITER);
      await io.stdout(`Deleted ${deleted ? 1 : 0} rows\n`);
      return 0;
    }
    default: {
      const lines = [...table].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}\n`);
      await io.stdout(lines.join(''));
      return 0;
    }
  }
}

interface LogcatRequest {
  dump: boolean;
  clear: boolean;
  binary: boolean;
  sizes: boolean;
  pid: number | undefined;
  tail: number | undefined;
  /** Minimum priority by tag, `*` for the rest; `S` silences. */
  filters: Map<string, LogPriority | 'S'>;
}

const LOGCAT_FORMATS = new Set(['threadtime']);

async function parseLogcat(args: string[], io: CommandIo): Promise<LogcatRequest | undefined> {
  const request: LogcatRequest = {
    dump: false,
    clear: false,
    binary: false,
    sizes: false,
    pid: undefined,
    tail: undefined,
    filters: new Map(),
  };
  const fail = async (message: string) => {
    await io.stderr(`logcat: ${message}\n`);
    return undefined;
  };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    const [option, inline] = arg.startsWith('--') ? (arg.split('=', 2) as [string, string?]) : [arg, undefined];
    const value = (): string | undefined => inline ?? args[++index];
    switch (option) {
      case '-d':
        request.dump = true;
        break;
      case '-c':
        request.clear = true;
        break;
      case '-B':
      case '--binary':
        request.binary = true;
        break;
      case '-g':
        request.sizes = true;
        break;
      case '-s':
        request.filters.set('*', 'S');
        break;
      case '-v':
      case '--format': {
        const format = value();
        if (format === undefined || !LOGCAT_FORMATS.has(format)) {
          return fail(`the virtual device prints only the threadtime format, not '${format ?? ''}'`);
        }
        break;
      }
      case '-b':
      case '--buffer':
        if (value() === undefined) return fail('option -b needs a buffer name');
        break;
      case '--pid':
      case '-t': {
        const number = Number(value());
        if (!Number.isInteger(number) || number < 0) return fail(`invalid ${option} value`);
        if (option === '--pid') request.pid = number;
        else {
          request.tail = number;
          request.dump = true;
        }
        break;
      }
      default: {
        const spec = /^([^:]+)(?::([VDIWEFS]))?$/.exec(arg);
        if (arg.startsWith('-') || spec === null) return fail(`invalid option -- '${arg.replace(/^-+/, '')}'`);
        request.filters.set(spec[1]!, (spec[2] ?? 'V') as LogPriority | 'S');
      }
    }
  }
  return request;
}

function matches(request: LogcatRequest, entry: LogEntry): boolean {
  if (request.pid !== undefined && entry.pid !== request.pid) return false;
  const minimum = request.filters.get(entry.tag) ?? request.filters.get('*') ?? 'V';
  return minimum !== 'S' && LOG_PRIORITIES[entry.priority] >= LOG_PRIORITIES[minimum];
}

async function logcat(args: string[], io: CommandIo, system: DeviceSystem): Promise<number> {
  const request = await parseLogcat(args, io);
  if (request === undefined) return 1;
  if (request.clear) {
    system.logs.clear();
    return 0;
  }
  if (request.sizes) {
    const used = system.logs.entries.reduce((sum, entry) => sum + 28 + entry.tag.length + entry.message.length + 3, 0);
    const kib = Math.ceil(used / 1024);
    await io.stdout(
      `main: ring buffer is 256 KiB (${kib} KiB consumed, ${kib} KiB readable), ` +
        'max entry is 5120 B, max payload is 4068 B\n',
    );
    return 0;
  }
  const encode = (entry: LogEntry): Buffer | string =>
    request.binary ? encodeBinaryEntry(entry) : formatThreadtime(entry);
  const emit = (entries: readonly LogEntry[]): Promise<void> | undefined => {
    const selected = entries.filter((entry) => matches(request, entry));
    if (selected.length === 0) return undefined;
    const encoded = selected.map(encode);
    return io.stdout(request.binary ? Buffer.concat(encoded as Buffer[]) : (encoded as string[]).join(''));
  };
  const { entries } = system.logs;
  const existing = request.tail === undefined ? entries : request.tail === 0 ? [] : entries.slice(-request.tail);
  if (request.dump) {
    await emit(existing);
    return 0;
  }
  // Follow mode: what is there, then every new entry in order, until the host closes the stream.
  const pending: LogEntry[] = [];
  let writing = Promise.resolve(emit(existing)).catch(() => undefined);
  const unsubscribe = system.logs.subscribe((entry) => {
    pending.push(entry);
    writing = writing.then(() => emit(pending.splice(0))).catch(() => undefined);
  });
  try {
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      else io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    unsubscribe();
  }
  return 0;
}

/**
 * `input`, `wm`, `screencap`, `dumpsys` (battery, package), `settings` and `logcat` over the device's
 * {@link DeviceSystem} and packages.
 */
export const SYSTEM_COMMANDS: Record<string, CommandHandler> = {
  input: (args, io, userland) => input(args, io, userland.system),
  wm: (args, io, userland) => wm(args, io, userland.system),
  screencap: (args, io, userland) => screencap(args, io, userland.system),
  dumpsys: (args, io, userland) => dumpsys(args, io, userland),
  settings: (args, io, userland) => settings(args, io, userland.system),
  logcat: (args, io, userland) => logcat(args, io, userland.system),
};
