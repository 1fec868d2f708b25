import { deflateSync } from 'node:zlib';
import type { Screen } from '../profile.js';

const PNG_SIGNATURE = Buffer.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
const COLOR_TYPE_RGBA = 6;
const BYTES_PER_PIXEL = 4;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** The CRC-32 of PNG chunks (ISO 3309, as in zlib). */
export function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const framed = Buffer.alloc(4 + typeAndData.length + 4);
  framed.writeUInt32BE(data.length, 0);
  typeAndData.copy(framed, 4);
  framed.writeUInt32BE(crc32(typeAndData), 4 + typeAndData.length);
  return framed;
}

/**
 * What the virtual screen shows, as RGBA rows: a vertical gradient from blue to teal with a status bar, the same
 * for every capture. Nothing is rendered; it only has the size and format of a real capture.
 */
export function screenPixels(screen: Screen): Buffer {
  const row = screen.width * BYTES_PER_PIXEL;
  const pixels = Buffer.alloc(row * screen.height);
  const statusBar = Math.round((24 * screen.density) / 160);
  for (let y = 0; y < screen.height; y++) {
    const shade = Math.round((y / Math.max(1, screen.height - 1)) * 255);
    const color =
      y < statusBar ? Buffer.of(0x20, 0x21, 0x24, 0xff) : Buffer.of(0x1a, 0x73 + (shade >> 2), 0xe8 - (shade >> 2), 0xff);
    pixels.fill(color, y * row, (y + 1) * row);
  }
  return pixels;
}

/** `screencap -p`: a PNG (8-bit RGBA, no interlace) of the screen. */
export function encodePng(screen: Screen, pixels: Buffer): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(screen.width, 0);
  header.writeUInt32BE(screen.height, 4);
  header.writeUInt8(8, 8);
  header.writeUInt8(COLOR_TYPE_RGBA, 9);
  const row = screen.width * BYTES_PER_PIXEL;
  const filtered = Buffer.alloc((row + 1) * screen.height);
  for (let y = 0; y < screen.height; y++) pixels.copy(filtered, y * (row + 1) + 1, y * row, (y + 1) * row);
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(filtered)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const PIXEL_FORMAT_RGBA_8888 = 1;
const DATASPACE_SRGB = 142671872;

/**
 * `screencap` without `-p`: u32 width, u32 height, u32 pixel format (1 = RGBA_8888) and, from Android 9, u32
 * dataspace, all little-endian, then the pixels.
 */
export function encodeRawCapture(screen: Screen, pixels: Buffer, sdk: number): Buffer {
  const header = Buffer.alloc(sdk >= 28 ? 16 : 12);
  header.writeUInt32LE(screen.width, 0);
  header.writeUInt32LE(screen.height, 4);
  header.writeUInt32LE(PIXEL_FORMAT_RGBA_8888, 8);
  if (sdk >= 28) header.writeUInt32LE(DATASPACE_SRGB, 12);
  return Buffer.concat([header, pixels]);
}
