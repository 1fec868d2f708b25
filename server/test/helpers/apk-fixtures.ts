import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function inPackage(name: string, file: string): string {
  return join(dirname(require.resolve(`${name}/package.json`)), file);
}

/** Real APKs shipped by npm packages (devDependencies of the server). */
export const APKS = {
  /** io.appium.settings 8.0.10: versionCode 192, minSdk 26, targetSdk 35, launcher io.appium.settings.Settings. */
  settings: inPackage('io.appium.settings', 'apks/settings_apk-debug.apk'),
  /** io.appium.unlock 2.0.0: versionCode 2, minSdk 5, no targetSdk (so 5): refused on SDK 34 and later. */
  unlock: inPackage('appium-unlock', 'bin/unlock_apk-debug.apk'),
  /** io.appium.uiautomator2.server 10.6.6, 18 MB. */
  uiautomator2: inPackage('appium-uiautomator2-server', 'apks/appium-uiautomator2-server-v10.6.6.apk'),
  /** Its test APK: instrumentation androidx.test.runner.AndroidJUnitRunner for io.appium.uiautomator2.server. */
  uiautomator2Test: inPackage('appium-uiautomator2-server', 'apks/appium-uiautomator2-server-debug-androidTest.apk'),
} as const;
