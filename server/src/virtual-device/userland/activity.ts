import type { InstrumentationTest } from '../profile.js';
import type { CommandHandler, CommandIo, Userland } from './command.js';

/** `am <command> …`, also reached as `cmd activity …`: start, force-stop and instrument. */
export const am: CommandHandler = async (args, io, userland) => {
  const [command, ...rest] = args;
  switch (command) {
    case 'start':
      return start(rest, io, userland);
    case 'force-stop':
      if (rest[0] === undefined) {
        await io.stderr('Error: package name not specified\n');
        return 1;
      }
      userland.packages.running.delete(rest[rest.length - 1] as string);
      return 0;
    case 'instrument':
      return instrument(rest, io, userland);
  }
  await io.stderr(`Error: Unknown command: ${command ?? ''}\n`);
  return 1;
};

interface Intent {
  action?: string;
  categories: string[];
  data?: string;
  component?: { packageName: string; className: string };
}

/** Options of `am start` that take a value, and those that take a key and a value (extras); both are skipped. */
const START_VALUE_OPTIONS = new Set(['-t', '-f', '--user', '-p', '--display', '--activity-brought-to-front']);
const EXTRA_OPTIONS = new Set(['-e', '--es', '--ez', '--ei', '--el', '--ef', '--eu', '--ecn', '--eia', '--esa']);

async function start(args: string[], io: CommandIo, userland: Userland): Promise<number> {
  const intent: Intent = { categories: [] };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    const value = args[index + 1];
    if (arg === '-n' && value !== undefined) {
      const slash = value.indexOf('/');
      if (slash <= 0) {
        await io.stderr(`Error: Bad component name: ${value}\n`);
        return 1;
      }
      const packageName = value.slice(0, slash);
      const className = value.slice(slash + 1);
      intent.component = {
        packageName,
        className: className.startsWith('.') ? `${packageName}${className}` : className,
      };
      index++;
    } else if (arg === '-a' && value !== undefined) {
      intent.action = value;
      index++;
    } else if (arg === '-c' && value !== undefined) {
      intent.categories.push(value);
      index++;
    } else if (arg === '-d' && value !== undefined) {
      intent.data = value;
      index++;
    } else if (START_VALUE_OPTIONS.has(arg)) {
      index++;
    } else if (EXTRA_OPTIONS.has(arg)) {
      index += 2;
    } else if (arg.startsWith('-')) {
      continue;
    } else {
      intent.data ??= arg;
    }
  }
  await io.stdout(`Starting: ${describeIntent(intent)}\n`);
  const component = intent.component;
  if (component === undefined) {
    await io.stderr(`Error: Activity not started, unable to resolve ${describeIntent(intent, 0x10000000)}\n`);
    return 1;
  }
  const installed = userland.packages.get(component.packageName);
  if (installed?.apk === undefined || !installed.apk.activities.includes(component.className)) {
    await io.stderr(
      `Error type 3\nError: Activity class {${component.packageName}/${component.className}} does not exist.\n`,
    );
    return 1;
  }
  userland.packages.running.add(component.packageName);
  const started = describeIntent(intent, 0x10000000).slice('Intent '.length);
  userland.system.log('I', 'ActivityTaskManager', `START u0 ${started} from uid 2000`);
  return 0;
}

/** `Intent { act=… cat=[…] dat=… flg=0x… cmp=pkg/.Class }`, as Android prints an intent. */
function describeIntent(intent: Intent, flags?: number): string {
  const parts: string[] = [];
  if (intent.action !== undefined) parts.push(`act=${intent.action}`);
  if (intent.categories.length > 0) parts.push(`cat=[${intent.categories.join(',')}]`);
  if (intent.data !== undefined) parts.push(`dat=${intent.data}`);
  if (flags !== undefined) parts.push(`flg=0x${flags.toString(16)}`);
  if (intent.component !== undefined) {
    const { packageName, className } = intent.component;
    const short = className.startsWith(`${packageName}.`) ? className.slice(packageName.length) : className;
    parts.push(`cmp=${packageName}/${short}`);
  }
  return `Intent { ${parts.join(' ')} }`;
}

const RUNNER_ID = 'AndroidJUnitRunner';
/** Seconds each scripted test takes, for the reported time. */
const TEST_SECONDS = 0.005;

/** Status codes of the instrumentation protocol, as AndroidJUnitRunner reports them. */
const InstrumentationStatus = {
  START: 1,
  OK: 0,
  FAILURE: -2,
  IGNORED: -3,
  ASSUMPTION_FAILURE: -4,
} as const;

const RESULT_CODES: Record<InstrumentationTest['result'], number> = {
  pass: InstrumentationStatus.OK,
  fail: InstrumentationStatus.FAILURE,
  ignored: InstrumentationStatus.IGNORED,
  assumption_failure: InstrumentationStatus.ASSUMPTION_FAILURE,
};

/**
 * `am instrument [-r] [-w] [-e key value]… <testPackage>/<runner>`: reports the device's scripted outcomes for the
 * test package with the status protocol (`-r`) or as the runner's summary text. `-e class a.B[#method],…` selects
 * tests; other arguments are accepted and ignored.
 */
async function instrument(args: string[], io: CommandIo, userland: Userland): Promise<number> {
  let raw = false;
  let classFilter: string[] | undefined;
  let target: string | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] as string;
    if (arg === '-r') raw = true;
    else if (arg === '-e') {
      if (args[index + 1] === 'class') classFilter = (args[index + 2] ?? '').split(',');
      index += 2;
    } else if (arg === '--user' || arg === '-p' || arg === '--abi') index++;
    else if (!arg.startsWith('-')) target = arg;
  }
  const slash = target?.indexOf('/') ?? -1;
  if (target === undefined || slash <= 0) {
    await io.stderr(`Error: Bad component name: ${target ?? ''}\n`);
    return 1;
  }
  const testPackage = target.slice(0, slash);
  const runnerName = target.slice(slash + 1);
  const runner = runnerName.startsWith('.') ? `${testPackage}${runnerName}` : runnerName;
  const installed = userland.packages.get(testPackage);
  if (installed?.apk?.instrumentation?.runner !== runner) {
    await io.stdout(
      'INSTRUMENTATION_STATUS: id=ActivityManagerService\n' +
        'INSTRUMENTATION_STATUS: Error=Unable to find instrumentation info for: ' +
        `ComponentInfo{${testPackage}/${runner}}\n` +
        'INSTRUMENTATION_STATUS_CODE: -1\n',
    );
    await io.stderr(
      `android.util.AndroidException: INSTRUMENTATION_FAILED: ${testPackage}/${runner}\n` +
        '\tat com.android.commands.am.Instrument.run(Instrument.java)\n',
    );
    return 1;
  }
  const script = userland.packages.profile.instrumentation?.[testPackage] ?? [];
  const tests = script.filter(
    (test) =>
      classFilter === undefined ||
      classFilter.some((entry) => entry === test.class || entry === `${test.class}#${test.method}`),
  );
  const report = instrumentationReport(tests);
  await io.stdout(raw ? report.statusLines : report.text);
  return 0;
}

/** The `-r` status stream of a run and, for a run without `-r`, the text of its `stream` values. */
function instrumentationReport(tests: InstrumentationTest[]): { statusLines: string; text: string } {
  let lines = '';
  let text = '';
  let previousClass: string | undefined;
  const failures: InstrumentationTest[] = [];
  for (const [index, test] of tests.entries()) {
    const common = { class: test.class, current: String(index + 1), id: RUNNER_ID, numtests: String(tests.length) };
    const stream = test.class === previousClass ? '' : `\n${test.class}:`;
    previousClass = test.class;
    lines += statusBlock({ ...common, stream, test: test.method }, InstrumentationStatus.START);
    const stack = endLine(
      test.stack ?? `java.lang.AssertionError\n\tat ${test.class}.${test.method}(${simpleName(test.class)}.java)`,
    );
    let finished: Record<string, string>;
    switch (test.result) {
      case 'pass':
      case 'ignored':
        finished = { ...common, stream: '.', test: test.method };
        break;
      case 'fail':
        failures.push({ ...test, stack });
        finished = {
          ...common,
          stack,
          stream: `\nError in ${test.method}(${test.class}):\n${stack}`,
          test: test.method,
        };
        break;
      case 'assumption_failure':
        finished = { ...common, stack, stream: '', test: test.method };
        break;
    }
    lines += statusBlock(finished, RESULT_CODES[test.result]);
    text += stream + (finished.stream ?? '');
  }
  const run = tests.filter((test) => test.result !== 'ignored').length;
  let summary = `\n\nTime: ${(tests.length * TEST_SECONDS).toFixed(3)}\n`;
  if (failures.length === 0) {
    summary += `\nOK (${run} test${run === 1 ? '' : 's'})\n\n`;
  } else {
    summary += failures.length === 1 ? 'There was 1 failure:\n' : `There were ${failures.length} failures:\n`;
    summary += failures
      .map((test, index) => `${index + 1}) ${test.method}(${test.class})\n${test.stack as string}`)
      .join('');
    summary += `\nFAILURES!!!\nTests run: ${run},  Failures: ${failures.length}\n\n`;
  }
  return {
    statusLines: `${lines}INSTRUMENTATION_RESULT: stream=${summary}\nINSTRUMENTATION_CODE: -1\n`,
    text: text + summary,
  };
}

/** One status block: its keys in order, then the status code. */
function statusBlock(values: Record<string, string>, code: number): string {
  const lines = Object.entries(values).map(([key, value]) => `INSTRUMENTATION_STATUS: ${key}=${value}\n`);
  return `${lines.join('')}INSTRUMENTATION_STATUS_CODE: ${code}\n`;
}

function endLine(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

function simpleName(className: string): string {
  return className.slice(className.lastIndexOf('.') + 1);
}
