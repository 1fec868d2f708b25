import type { DeviceSystem } from '../device-system.js';
import type { FileSystem } from '../file-system.js';
import type { PackageStore } from '../package-store.js';

/** Bytes the host sends to a command, in order; a command that ignores them leaves them unread. */
export interface CommandInput {
  /** Exactly `count` bytes, waiting for them; undefined if the input ends first. */
  read(count: number): Promise<Buffer | undefined>;
  /** Whatever has arrived, waiting for at least one byte; undefined at the end. */
  readSome(): Promise<Buffer | undefined>;
  /** Up to `count` bytes as the chunks they arrived in, waiting for at least one byte; undefined at the end. */
  readChunks(count: number): Promise<Buffer[] | undefined>;
}

/** Where a command reads and writes; each write resolves once the host has taken the bytes. */
export interface CommandIo {
  stdin: CommandInput;
  stdout(data: Buffer | string): Promise<void>;
  stderr(data: Buffer | string): Promise<void>;
  /** Aborted when the stream that runs the command goes away. */
  signal: AbortSignal;
}

/** One command of the userland: its arguments (without its name), where it reads and writes, the device it runs on. */
export type CommandHandler = (args: string[], io: CommandIo, userland: Userland) => Promise<number>;

/** The simulated Android userland as the shell and its commands see it: the device's state and its commands. */
export interface Userland {
  readonly properties: ReadonlyMap<string, string>;
  readonly files: FileSystem;
  /** Restarts the device, for `reboot`. */
  readonly reboot: () => void;
  readonly system: DeviceSystem;
  readonly packages: PackageStore;
  /** The pid of the shell that ran the last command line, which `ps` shows. */
  shellPid: number;
  /**
   * Runs a command line as `sh -c` would, in a new shell, and resolves the exit status of the last pipeline run (or
   * the code `exit` gave).
   */
  run(commandLine: string, io: CommandIo): Promise<number>;
  /** The command the shell runs for `name`, if the device has it. */
  command(name: string): CommandHandler | undefined;
  /** A new process id, as the kernel hands them out: each higher than the last. */
  nextPid(): number;
}
