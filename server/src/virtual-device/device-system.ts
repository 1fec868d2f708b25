import { DEFAULT_BATTERY, DEFAULT_SCREEN, type BatteryState, type DeviceProfile, type Screen } from './profile.js';
import { LogBuffer, type LogEntry, type LogPriority, type LogWriter } from './userland/logs.js';
import { screenPixels } from './userland/screen.js';

/** One event injected with `input`, in the order they came. */
export type InputEvent =
  | { type: 'tap'; x: number; y: number }
  | { type: 'swipe'; x1: number; y1: number; x2: number; y2: number; durationMs: number }
  | { type: 'text'; text: string }
  | { type: 'keyevent'; keyCode: number };

export type SettingsNamespace = 'system' | 'secure' | 'global';

/** The state behind the system commands: screen, battery, settings, injected input and the log. */
export class DeviceSystem {
  readonly screen: Screen;
  readonly battery: BatteryState;
  readonly logs = new LogBuffer();
  readonly inputs: InputEvent[] = [];
  readonly settings: Record<SettingsNamespace, Map<string, string>>;
  #pixels: Buffer | undefined;

  constructor(readonly profile: DeviceProfile) {
    this.screen = profile.screen ?? DEFAULT_SCREEN;
    this.battery = profile.battery ?? DEFAULT_BATTERY;
    this.settings = {
      system: new Map([
        ['screen_brightness', '128'],
        ['screen_off_timeout', '60000'],
      ]),
      secure: new Map([['android_id', androidId(profile.serial)]]),
      global: new Map([
        ['adb_enabled', '1'],
        ['development_settings_enabled', '1'],
        ['airplane_mode_on', '0'],
      ]),
    };
    this.log('I', 'init', 'starting service \'adbd\'...', { pid: 1, tid: 1, uid: 0 });
    this.log('I', 'SystemServer', `Entered the Android system server! (SDK ${profile.sdk})`);
    this.log('I', 'ActivityManager', 'System now ready');
    this.log('I', 'BootReceiver', 'Boot completed');
  }

  /** Appends to the device's log, as system_server unless another writer is given. */
  log(priority: LogPriority, tag: string, message: string, writer?: LogWriter): LogEntry {
    return this.logs.append(priority, tag, message, writer);
  }

  /** The screen's pixels, RGBA, computed once. */
  get pixels(): Buffer {
    this.#pixels ??= screenPixels(this.screen);
    return this.#pixels;
  }
}

function androidId(serial: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(serial)) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash.toString(16).padStart(16, '0');
}
