import { ByteQueue } from '../adb-protocol/index.js';
import { FileSystemError, normalizePath } from './file-system.js';
import { parseCommandLine, ShellSyntaxError, type Redirection, type SimpleCommand, type Word } from './shell-words.js';
import type { CommandInput, CommandIo, Userland } from './userland/command.js';

export const SHELL = '/system/bin/sh';

/** A write to a pipe whose reader has finished: the writer ends as a SIGPIPE would end it. */
class BrokenPipeError extends Error {
  override readonly name = 'BrokenPipeError';
}

/** A write to a redirected file failed (e.g. No space left on device). */
class OutputError extends Error {
  override readonly name = 'OutputError';
}

/** A redirection could not be set up; the command does not run. */
class RedirectionError extends Error {
  override readonly name = 'RedirectionError';
}

/** The exit status of a command killed by SIGPIPE. */
const SIGPIPE_STATUS = 128 + 13;
/** How much a pipe holds before its writer waits for the reader. */
const PIPE_CAPACITY = 64 * 1024;

/**
 * One `sh` process of the virtual device: its variables, `$?` and positional parameters, kept across the lines it
 * runs. It runs lists of pipelines with redirections into the device's files, and the builtins `exit`, `export`,
 * `unset`, `exec` and `sh` itself; everything else is a command of the userland.
 */
export class Sh {
  readonly variables = new Map<string, string>();
  /** `$?`: the status of the last pipeline. */
  status = 0;
  /** The code given to `exit`, once it ran. */
  exited: number | undefined;
  readonly pid: number;

  constructor(
    readonly userland: Userland,
    /** `$0`, `$1`, … */
    private positional: string[] = ['sh'],
  ) {
    this.pid = userland.nextPid();
  }

  /** Runs one command line (several with line breaks); resolves the last status, or the code `exit` gave. */
  async run(line: string, io: CommandIo): Promise<number> {
    this.userland.shellPid = this.pid;
    let pipelines;
    try {
      pipelines = parseCommandLine(line);
    } catch (error) {
      if (!(error instanceof ShellSyntaxError)) throw error;
      await io.stderr(`${SHELL}: ${error.message}\n`);
      this.status = 1;
      return this.status;
    }
    for (const { after, commands } of pipelines) {
      if ((after === '&&' && this.status !== 0) || (after === '||' && this.status === 0)) continue;
      this.status = await this.#pipeline(commands, io);
      if (this.exited !== undefined) return this.exited;
    }
    return this.status;
  }

  /** Runs the lines of `input` as they arrive (`sh` reading a script from its standard input). */
  async runInput(input: LineInput, io: CommandIo): Promise<number> {
    for (let line = await input.nextLine(); line !== undefined; line = await input.nextLine()) {
      await this.run(line, { ...io, stdin: input });
      if (this.exited !== undefined) return this.exited;
    }
    return this.status;
  }

  async #pipeline(commands: SimpleCommand[], io: CommandIo): Promise<number> {
    if (commands.length === 1) return this.#command(commands[0] as SimpleCommand, io, false);
    const pipes = commands.slice(1).map(() => new Pipe());
    const statuses = await Promise.all(
      commands.map(async (command, index) => {
        const input = index === 0 ? io.stdin : (pipes[index - 1] as Pipe);
        const output = pipes[index];
        try {
          const stdout = output === undefined ? io.stdout : (data: Buffer | string) => output.write(toBuffer(data));
          return await this.#command(command, { ...io, stdin: input, stdout }, true);
        } finally {
          output?.end();
          if (index > 0) (pipes[index - 1] as Pipe).break();
        }
      }),
    );
    return statuses[statuses.length - 1] as number;
  }

  /** One simple command; in a pipeline (`subshell`), `exit` and assignments do not reach this shell. */
  async #command(command: SimpleCommand, io: CommandIo, subshell: boolean): Promise<number> {
    const words = this.#expand(command.words);
    let redirected: CommandIo;
    try {
      redirected = this.#redirect(command.redirections, io);
    } catch (error) {
      if (!(error instanceof RedirectionError)) throw error;
      await io.stderr(`${SHELL}: ${error.message}\n`);
      return 1;
    }
    if (words.length === 0) {
      if (!subshell) {
        for (const { name, value } of command.assignments) this.variables.set(name, this.#expandOne(value));
      }
      return 0;
    }
    const [name, ...args] = words as [string, ...string[]];
    try {
      return await this.#invoke(name, args, redirected, subshell);
    } catch (error) {
      if (error instanceof BrokenPipeError) return SIGPIPE_STATUS;
      if (error instanceof OutputError) {
        await io.stderr(`${name}: write error: ${error.message}\n`);
        return 1;
      }
      throw error;
    }
  }

  async #invoke(name: string, args: string[], io: CommandIo, subshell: boolean): Promise<number> {
    switch (name) {
      case 'exit': {
        const code = exitStatus(args, this.status);
        if (code === undefined) await io.stderr(`${SHELL}: exit: ${args[0]}: bad number\n`);
        if (!subshell) this.exited = code ?? 1;
        return code ?? 1;
      }
      case 'export':
        for (const arg of args) {
          const equals = arg.indexOf('=');
          if (equals > 0 && !subshell) this.variables.set(arg.slice(0, equals), arg.slice(equals + 1));
        }
        return 0;
      case 'unset':
        if (!subshell) for (const arg of args) this.variables.delete(arg);
        return 0;
      case 'exec': {
        if (args.length === 0) return 0;
        const [command, ...rest] = args as [string, ...string[]];
        const status = await this.#invoke(command, rest, io, subshell);
        if (!subshell) this.exited = status;
        return status;
      }
      case 'sh':
        return this.#sh(args, io);
      default: {
        const handler = this.userland.command(name);
        if (handler === undefined) {
          await io.stderr(`${SHELL}: ${name}: inaccessible or not found\n`);
          return 127;
        }
        return handler(args, io, this.userland);
      }
    }
  }

  /** `sh -c <script> [$0 [args…]]`, `sh <file> [args…]`, or `sh` reading its script from standard input. */
  async #sh(args: string[], io: CommandIo): Promise<number> {
    const [first, ...rest] = args;
    if (first === '-c') {
      const [script, zero, ...positional] = rest;
      if (script === undefined) {
        await io.stderr(`${SHELL}: -c: option requires an argument\n`);
        return 2;
      }
      return new Sh(this.userland, [zero ?? 'sh', ...positional]).run(script, io);
    }
    if (first !== undefined) {
      let script: string;
      try {
        script = this.userland.files.read(first).toString('utf8');
      } catch (error) {
        if (!(error instanceof FileSystemError)) throw error;
        await io.stderr(`${SHELL}: ${first}: ${error.message}\n`);
        return 127;
      }
      return new Sh(this.userland, [first, ...rest]).run(script, io);
    }
    return new Sh(this.userland).runInput(new LineInput(io.stdin), io);
  }

  #parameter(name: string): string {
    if (name === '?') return String(this.status);
    if (name === '$') return String(this.pid);
    if (name === '#') return String(this.positional.length - 1);
    if (/^\d$/.test(name)) return this.positional[Number(name)] ?? '';
    return this.variables.get(name) ?? '';
  }

  /** Words after parameter expansion and field splitting (of unquoted expansions, at blanks); no globbing. */
  #expand(words: Word[]): string[] {
    const fields: string[] = [];
    for (const word of words) {
      let current = '';
      let started = false;
      for (const part of word) {
        if ('text' in part) {
          current += part.text;
          started = true;
          continue;
        }
        const value = this.#parameter(part.parameter);
        if (part.quoted) {
          current += value;
          started = true;
          continue;
        }
        for (const [index, piece] of value.split(/[ \t\n]+/).entries()) {
          if (index > 0 && started) {
            fields.push(current);
            current = '';
            started = false;
          }
          if (piece !== '') {
            current += piece;
            started = true;
          }
        }
      }
      if (started) fields.push(current);
    }
    return fields;
  }

  /** A word expanded without field splitting (assignments, redirection targets). */
  #expandOne(word: Word): string {
    return word.map((part) => ('text' in part ? part.text : this.#parameter(part.parameter))).join('');
  }

  /** The command's standard input, output and error after its redirections, in the order written. */
  #redirect(redirections: Redirection[], io: CommandIo): CommandIo {
    const result: CommandIo = { ...io };
    const files = this.userland.files;
    for (const { fd, op, target: word } of redirections) {
      const target = this.#expandOne(word);
      if (fd > 2) throw new RedirectionError(`${fd}: bad file descriptor`);
      if (op === '<') {
        if (fd !== 0) throw new RedirectionError(`${fd}: bad file descriptor`);
        const input = new ByteQueue();
        if (target !== '/dev/null') {
          try {
            input.push(files.read(target));
          } catch (error) {
            if (!(error instanceof FileSystemError)) throw error;
            throw new RedirectionError(`can't open ${target}: ${error.message}`);
          }
        }
        input.end();
        result.stdin = input;
        continue;
      }
      let writer: CommandIo['stdout'];
      if (op === '>&') {
        if (target !== '1' && target !== '2') throw new RedirectionError(`${target}: bad file descriptor`);
        writer = target === '1' ? result.stdout : result.stderr;
      } else if (target === '/dev/null') {
        writer = async () => undefined;
      } else {
        const path = normalizePath(target);
        try {
          if (op === '>') files.write(path, Buffer.alloc(0), { permissions: 0o644 });
          else files.append(path, Buffer.alloc(0));
        } catch (error) {
          if (!(error instanceof FileSystemError)) throw error;
          throw new RedirectionError(`can't create ${target}: ${error.message}`);
        }
        writer = async (data) => {
          try {
            files.append(path, toBuffer(data));
          } catch (error) {
            if (!(error instanceof FileSystemError)) throw error;
            throw new OutputError(error.message);
          }
        };
      }
      if (fd === 0) throw new RedirectionError('0: bad file descriptor');
      if (fd === 1) result.stdout = writer;
      else result.stderr = writer;
    }
    return result;
  }
}

/** `exit [n]`: n modulo 256, the last status without one, undefined when n is not a number. */
function exitStatus(args: string[], last: number): number | undefined {
  const [value] = args;
  if (value === undefined) return last;
  return /^-?\d+$/.test(value) ? ((Number(value) % 256) + 256) % 256 : undefined;
}

export function toBuffer(data: Buffer | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

/** The pipe between two commands of a pipeline: bounded, and broken for the writer once the reader has finished. */
class Pipe implements CommandInput {
  readonly #queue = new ByteQueue();
  #buffered = 0;
  #broken = false;
  #waiting: (() => void)[] = [];

  async write(data: Buffer): Promise<void> {
    if (this.#broken) throw new BrokenPipeError('broken pipe');
    if (data.length === 0) return;
    this.#queue.push(data);
    this.#buffered += data.length;
    while (this.#buffered > PIPE_CAPACITY && !this.#broken) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
  }

  /** The writer is done: the reader sees the end. */
  end(): void {
    this.#queue.end();
  }

  /** The reader is done: the writer's next write fails. */
  break(): void {
    this.#broken = true;
    this.#release();
  }

  async read(count: number): Promise<Buffer | undefined> {
    const data = await this.#queue.read(count);
    this.#took(data?.length ?? 0);
    return data;
  }

  async readSome(): Promise<Buffer | undefined> {
    const data = await this.#queue.readSome();
    this.#took(data?.length ?? 0);
    return data;
  }

  async readChunks(count: number): Promise<Buffer[] | undefined> {
    const chunks = await this.#queue.readChunks(count);
    this.#took(chunks?.reduce((sum, chunk) => sum + chunk.length, 0) ?? 0);
    return chunks;
  }

  #took(count: number): void {
    this.#buffered -= count;
    if (this.#buffered <= PIPE_CAPACITY) this.#release();
  }

  #release(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

/** An input read line by line by a shell, and as bytes by the commands it runs (which then take what is left). */
export class LineInput implements CommandInput {
  #pending = Buffer.alloc(0);
  #ended = false;

  constructor(private readonly source: CommandInput) {}

  /** The next line without its line break; the last one even without a line break; undefined at the end. */
  async nextLine(): Promise<string | undefined> {
    for (;;) {
      const newline = this.#pending.indexOf(0x0a);
      if (newline !== -1) {
        const line = this.#pending.subarray(0, newline).toString('utf8');
        this.#pending = this.#pending.subarray(newline + 1);
        return line;
      }
      const more = this.#ended ? undefined : await this.source.readSome();
      if (more === undefined) {
        this.#ended = true;
        if (this.#pending.length === 0) return undefined;
        const line = this.#pending.toString('utf8');
        this.#pending = Buffer.alloc(0);
        return line;
      }
      this.#pending = Buffer.concat([this.#pending, more]);
    }
  }

  async read(count: number): Promise<Buffer | undefined> {
    while (this.#pending.length < count) {
      const more = this.#ended ? undefined : await this.source.readSome();
      if (more === undefined) {
        this.#ended = true;
        return undefined;
      }
      this.#pending = Buffer.concat([this.#pending, more]);
    }
    const data = this.#pending.subarray(0, count);
    this.#pending = this.#pending.subarray(count);
    return data;
  }

  async readSome(): Promise<Buffer | undefined> {
    if (this.#pending.length > 0) {
      const data = this.#pending;
      this.#pending = Buffer.alloc(0);
      return data;
    }
    if (this.#ended) return undefined;
    const more = await this.source.readSome();
    if (more === undefined) this.#ended = true;
    return more;
  }

  async readChunks(count: number): Promise<Buffer[] | undefined> {
    const data = await this.readSome();
    if (data === undefined) return undefined;
    if (data.length > count) this.#pending = Buffer.concat([data.subarray(count), this.#pending]);
    return [data.subarray(0, count)];
  }
}
