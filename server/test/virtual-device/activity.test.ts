import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { Device } from '../../src/virtual-device/device.js';
import { defaultProfile, type InstrumentationTest } from '../../src/virtual-device/profile.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { runCommand as run } from './run-command.js';


const TEST_PACKAGE = 'io.appium.uiautomator2.server.test';
const RUNNER = `${TEST_PACKAGE}/androidx.test.runner.AndroidJUnitRunner`;
const SCRIPT: InstrumentationTest[] = [
  { class: 'com.example.LoginTest', method: 'signsIn', result: 'pass' },
  {
    class: 'com.example.LoginTest',
    method: 'rejectsWrongPassword',
    result: 'fail',
    stack:
      'java.lang.AssertionError: expected:<401> but was:<200>\n' +
      '\tat com.example.LoginTest.rejectsWrongPassword(LoginTest.java:42)',
  },
  { class: 'com.example.LoginTest', method: 'remembersUser', result: 'ignored' },
  {
    class: 'com.example.SyncTest',
    method: 'syncsOffline',
    result: 'assumption_failure',
    stack:
      'org.junit.AssumptionViolatedException: no network\n\tat com.example.SyncTest.syncsOffline(SyncTest.java:9)\n',
  },
];

/** What `am instrument -r -w` prints for SCRIPT: written by hand from the status protocol's description. */
const EXPECTED_RAW = `INSTRUMENTATION_STATUS: class=com.example.LoginTest
INSTRUMENTATION_STATUS: current=1
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stream=
com.example.LoginTest:
INSTRUMENTATION_STATUS: test=signsIn
INSTRUMENTATION_STATUS_CODE: 1
INSTRUMENTATION_STATUS: class=com.example.LoginTest
INSTRUMENTATION_STATUS: current=1
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stream=.
INSTRUMENTATION_STATUS: test=signsIn
INSTRUMENTATION_STATUS_CODE: 0
INSTRUMENTATION_STATUS: class=com.example.LoginTest
INSTRUMENTATION_STATUS: current=2
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stream=
INSTRUMENTATION_STATUS: test=rejectsWrongPassword
INSTRUMENTATION_STATUS_CODE: 1
INSTRUMENTATION_STATUS: class=com.example.LoginTest
INSTRUMENTATION_STATUS: current=2
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stack=java.lang.AssertionError: expected:<401> but was:<200>
\tat com.example.LoginTest.rejectsWrongPassword(LoginTest.java:42)

INSTRUMENTATION_STATUS: stream=
Error in rejectsWrongPassword(com.example.LoginTest):
java.lang.AssertionError: expected:<401> but was:<200>
\tat com.example.LoginTest.rejectsWrongPassword(LoginTest.java:42)

INSTRUMENTATION_STATUS: test=rejectsWrongPassword
INSTRUMENTATION_STATUS_CODE: -2
INSTRUMENTATION_STATUS: class=com.example.LoginTest
INSTRUMENTATION_STATUS: current=3
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stream=
INSTRUMENTATION_STATUS: test=remembersUser
INSTRUMENTATION_STATUS_CODE: 1
INSTRUMENTATION_STATUS: class=com.example.LoginTest
INSTRUMENTATION_STATUS: current=3
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stream=.
INSTRUMENTATION_STATUS: test=remembersUser
INSTRUMENTATION_STATUS_CODE: -3
INSTRUMENTATION_STATUS: class=com.example.SyncTest
INSTRUMENTATION_STATUS: current=4
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stream=
com.example.SyncTest:
INSTRUMENTATION_STATUS: test=syncsOffline
INSTRUMENTATION_STATUS_CODE: 1
INSTRUMENTATION_STATUS: class=com.example.SyncTest
INSTRUMENTATION_STATUS: current=4
INSTRUMENTATION_STATUS: id=AndroidJUnitRunner
INSTRUMENTATION_STATUS: numtests=4
INSTRUMENTATION_STATUS: stack=org.junit.AssumptionViolatedException: no network
\tat com.example.SyncTest.syncsOffline(SyncTest.java:9)

INSTRUMENTATION_STATUS: stream=
INSTRUMENTATION_STATUS: test=syncsOffline
INSTRUMENTATION_STATUS_CODE: -4
INSTRUMENTATION_RESULT: stream=

Time: 0.020
There was 1 failure:
1) rejectsWrongPassword(com.example.LoginTest)
java.lang.AssertionError: expected:<401> but was:<200>
\tat com.example.LoginTest.rejectsWrongPassword(LoginTest.java:42)

FAILURES!!!
Tests run: 3,  Failures: 1


INSTRUMENTATION_CODE: -1
`;

let settings: Buffer;
let testApk: Buffer;

beforeAll(async () => {
  [settings, testApk] = await Promise.all([readFile(APKS.settings), readFile(APKS.uiautomator2Test)]);
});

async function deviceWith(apks: Buffer[]): Promise<Device> {
  const device = new Device({ ...defaultProfile(0), instrumentation: { [TEST_PACKAGE]: SCRIPT } });
  for (const apk of apks) expect((await run(device, `pm install -t -S ${apk.length}`, apk)).stdout).toBe('Success\n');
  return device;
}

describe('am start and force-stop', () => {
  it('starts an activity of an installed package and refuses unknown ones', async () => {
    const device = await deviceWith([settings]);
    expect(await run(device, 'am start -n io.appium.settings/.Settings -a android.intent.action.MAIN')).toEqual({
      status: 0,
      stdout: 'Starting: Intent { act=android.intent.action.MAIN cmp=io.appium.settings/.Settings }\n',
      stderr: '',
    });
    expect(device.packages.running.has('io.appium.settings')).toBe(true);
    expect(await run(device, 'am force-stop io.appium.settings')).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(device.packages.running.has('io.appium.settings')).toBe(false);

    expect(await run(device, 'am start -W -n com.example/.Main')).toEqual({
      status: 1,
      stdout: 'Starting: Intent { cmp=com.example/.Main }\n',
      stderr: 'Error type 3\nError: Activity class {com.example/com.example.Main} does not exist.\n',
    });
    expect((await run(device, 'cmd activity start -n io.appium.settings/io.appium.settings.Settings')).status).toBe(0);
  });
});

describe('am instrument', () => {
  it('reports the scripted outcomes with the status protocol', async () => {
    const device = await deviceWith([testApk]);
    const result = await run(device, `am instrument -r -w -e debug false ${RUNNER}`);
    expect(result).toEqual({ status: 0, stdout: EXPECTED_RAW, stderr: '' });
  });

  it('prints only the summary without -r and selects tests with -e class', async () => {
    const device = await deviceWith([testApk]);
    const result = await run(device, `am instrument -w -e class com.example.LoginTest#signsIn ${RUNNER}`);
    expect(result.stdout).toBe('\ncom.example.LoginTest:.\n\nTime: 0.005\n\nOK (1 test)\n\n');
    const synced = await run(device, `am instrument -r -w -e class com.example.SyncTest ${RUNNER}`);
    const end =
      'INSTRUMENTATION_STATUS_CODE: -4\n' +
      'INSTRUMENTATION_RESULT: stream=\n\nTime: 0.005\n\nOK (1 test)\n\n\nINSTRUMENTATION_CODE: -1\n';
    expect(synced.stdout.slice(-end.length)).toBe(end);
  });

  it('fails for a test package that is not installed', async () => {
    const device = await deviceWith([]);
    expect(await run(device, `am instrument -r -w ${RUNNER}`)).toEqual({
      status: 1,
      stdout:
        'INSTRUMENTATION_STATUS: id=ActivityManagerService\n' +
        `INSTRUMENTATION_STATUS: Error=Unable to find instrumentation info for: ComponentInfo{${RUNNER}}\n` +
        'INSTRUMENTATION_STATUS_CODE: -1\n',
      stderr:
        `android.util.AndroidException: INSTRUMENTATION_FAILED: ${RUNNER}\n` +
        '\tat com.android.commands.am.Instrument.run(Instrument.java)\n',
    });
  });
});
