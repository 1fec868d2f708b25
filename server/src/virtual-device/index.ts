/**
 * The virtual device: a simulated Android phone behind a device-side ADB daemon on TCP, which the real `adb`,
 * @yume-chan/adb and the server's device layer reach like a phone. Code outside this folder starts devices and
 * picks profiles through this entry only.
 */
export { runVirtualDevices, type VirtualDeviceFlags } from './cli.js';
export { startVirtualDevice, startVirtualDevices, type VirtualDevice, type VirtualDeviceOptions } from './daemon.js';
export { defaultProfile, type DeviceProfile, type InstrumentationTest } from './profile.js';
export { BUILT_IN_PROFILES, builtInProfile, instantiate, type ProfileTemplate } from './profiles.js';
