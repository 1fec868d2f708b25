/**
 * A CI device-farm run: upload an app and its instrumentation test APK, lease devices that can run the app (queuing
 * up to five minutes), install both on every device, run the tests on all of them at once, and release the lease,
 * also when a step fails or the job is interrupted (Ctrl-C).
 *
 *   CLOUDPHONE_API_URL=http://127.0.0.1:8080 CLOUDPHONE_TOKEN=<member token> \
 *     npx tsx examples/install-and-test.ts app-debug.apk app-debug-androidTest.apk [count]
 *
 * Prints one JSON object per step on stdout. Uploads are hash-first: an APK the server already has is not sent
 * again. `count` devices are leased (default 1). Exits 1 when an install, a test or a whole test run failed, 2 on
 * bad arguments.
 */
import { CloudPhone, LeaseNotGrantedError, type DeviceSelector } from '@cloudphone/sdk';

const [appPath, testPath, countArg = '1'] = process.argv.slice(2);
const count = Number(countArg);
if (!appPath || !testPath || !Number.isInteger(count) || count < 1) {
  process.stderr.write('usage: install-and-test.ts <app.apk> <test.apk> [count]\n');
  process.exit(2);
}

const cp = new CloudPhone();

const app = await cp.apps.upload(appPath);
const test = await cp.apps.upload(testPath);
const instrumentation = test.metadata.instrumentation;
if (!instrumentation) {
  process.stderr.write(
    `${testPath} (${test.metadata.packageName}) is not an instrumentation test APK: give the app first, then its test APK\n`,
  );
  process.exit(2);
}
if (instrumentation.targetPackage !== app.metadata.packageName) {
  process.stderr.write(
    `${testPath} tests ${instrumentation.targetPackage}, not ${app.metadata.packageName} (the app in ${appPath})\n`,
  );
  process.exit(2);
}
const { runner } = instrumentation;
const testPackage = test.metadata.packageName;
console.log(
  JSON.stringify({ step: 'upload', app: app.id, package: app.metadata.packageName, test: test.id, testPackage, runner }),
);

/** One device's test run, from the `am instrument -r` status protocol. */
interface TestRun {
  passed: number;
  failed: number;
  ignored: number;
  failures: { test: string; message: string }[];
  /** Why the run itself failed (the runner was not found, the process crashed), when it did. */
  error?: string;
}

/**
 * Reads `am instrument -r` output: blocks of `INSTRUMENTATION_STATUS: key=value` lines (a value may go on over
 * several lines), each closed by `INSTRUMENTATION_STATUS_CODE: n` (1 started, 0 passed, -2 failed, -3 ignored,
 * -4 assumption failed), then `INSTRUMENTATION_RESULT: key=value` lines and `INSTRUMENTATION_CODE` once the run ends.
 */
function parseInstrumentation(output: string): TestRun {
  const run: TestRun = { passed: 0, failed: 0, ignored: 0, failures: [] };
  let values: Record<string, string> = {};
  let key: string | undefined;
  let finished = false;
  for (const line of output.split(/\r?\n/)) {
    const field = /^INSTRUMENTATION_(?:STATUS|RESULT): ([^=]+)=(.*)$/.exec(line);
    const statusCode = /^INSTRUMENTATION_STATUS_CODE: (-?\d+)$/.exec(line);
    if (field) {
      key = field[1]!;
      values[key] = field[2]!;
    } else if (statusCode) {
      const code = Number(statusCode[1]);
      if (code === 0) run.passed++;
      if (code === -3 || code === -4) run.ignored++;
      if (code === -2) {
        run.failed++;
        run.failures.push({ test: `${values.class}#${values.test}`, message: (values.stack ?? '').split('\n')[0]! });
      }
      if (values.Error !== undefined) run.error ??= values.Error;
      values = {};
      key = undefined;
    } else if (line.startsWith('INSTRUMENTATION_CODE: ')) {
      finished = true;
      if (values.shortMsg !== undefined) run.error ??= values.shortMsg;
      key = undefined;
    } else if (line.includes('INSTRUMENTATION_FAILED')) {
      run.error ??= line.trim();
      key = undefined;
    } else if (key !== undefined) {
      values[key] += `\n${line}`;
    }
  }
  if (!finished) run.error ??= 'the run did not finish';
  return run;
}

const selector: DeviceSelector = app.metadata.minSdk === null ? {} : { sdkMin: app.metadata.minSdk };
try {
  const ok = await cp.leases.use(
    { count, selector, ttlSeconds: 600, waitSeconds: 300, note: `examples/install-and-test ${app.metadata.packageName}` },
    async (lease, { signal }) => {
      // Devices either APK did not install on are not tested: why, by device id.
      const notInstalled = new Map<string, string>();
      for (const apk of [app, test]) {
        const job = await cp.apps.install(apk.id, { lease, signal });
        await job.wait({ signal });
        const failed = job.devices.filter((device) => device.status !== 'installed');
        for (const device of failed) {
          if (!notInstalled.has(device.deviceId)) {
            notInstalled.set(device.deviceId, `${apk.metadata.packageName} did not install: ${device.reason}`);
          }
        }
        console.log(
          JSON.stringify({
            step: 'install',
            package: apk.metadata.packageName,
            job: job.id,
            installed: job.devices.length - failed.length,
            failed: failed.map((device) => ({ serial: device.serial, reason: device.reason })),
          }),
        );
      }

      const runs = await Promise.all(
        lease.devices.map(async (device): Promise<TestRun | undefined> => {
          if (notInstalled.has(device.id)) return undefined;
          const result = await device.shell(['am', 'instrument', '-w', '-r', `${testPackage}/${runner}`], {
            timeoutSeconds: 3600,
            signal,
          });
          const run = parseInstrumentation(`${result.stdout}\n${result.stderr}`);
          if (result.timedOut) run.error = 'the run timed out after an hour';
          return run;
        }),
      );

      let passed = 0;
      let failed = 0;
      for (const [index, run] of runs.entries()) {
        const device = lease.devices[index]!;
        const line = { step: 'test', serial: device.serial, device: device.id };
        if (run === undefined) {
          console.log(JSON.stringify({ ...line, skipped: notInstalled.get(device.id) }));
          continue;
        }
        console.log(JSON.stringify({ ...line, ...run }));
        passed += run.passed;
        failed += run.failed;
      }
      console.log(JSON.stringify({ step: 'summary', devices: lease.devices.length, passed, failed }));
      return failed === 0 && runs.every((run) => run !== undefined && run.error === undefined);
    },
  );
  process.exitCode = ok ? 0 : 1;
} catch (error) {
  if (error instanceof LeaseNotGrantedError) {
    process.stderr.write(`${count} device(s) did not become free in time (lease ${error.lease.id} ${error.status})\n`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
