import { DEFAULT_SCREEN } from '../profile.js';
import type { Device } from '../device.js';
import type { AdbStream } from '../../adb-protocol/index.js';
import { screenPixels } from '../userland/screen.js';

const FRAMEBUFFER_VERSION = 2;
const BITS_PER_PIXEL = 32;
/** The colorSpace field: 0 unknown, 1 sRGB, 2 Display P3. */
const COLOR_SPACE_SRGB = 1;
/** Offset and length in bits of red, blue, green and alpha, in the header's order, for RGBA_8888. */
const CHANNELS = [0, 8, 16, 8, 8, 8, 24, 8];

/**
 * `framebuffer:` as AOSP's framebuffer_service sends it: a version-2 header (version, bpp, colorSpace, size, width,
 * height, then offset and length of red, blue, green and alpha, all u32 LE) and the RGBA_8888 pixels of the screen.
 */
export async function runFramebuffer(stream: AdbStream, device: Device): Promise<void> {
  const screen = device.profile.screen ?? DEFAULT_SCREEN;
  const pixels = screenPixels(screen);
  const fields = [FRAMEBUFFER_VERSION, BITS_PER_PIXEL, COLOR_SPACE_SRGB, pixels.length, screen.width, screen.height];
  const header = Buffer.alloc(4 * (fields.length + CHANNELS.length));
  [...fields, ...CHANNELS].forEach((value, index) => header.writeUInt32LE(value, index * 4));
  await stream.write(Buffer.concat([header, pixels]));
  await stream.close();
}
