import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inspectApk, type ApkInspection } from '../../src/apps/apk.js';
import { APKS } from '../helpers/apk-fixtures.js';
import { buildArsc, type ArscTable, type ArscTypeChunk } from './arsc.js';
import { buildZip } from './zip.js';

// The manifest of a real APK, whose application label is @0x7f040000 and icon @0x7f020000 (aapt dump xmltree).
const MANIFEST = execFileSync('unzip', ['-p', APKS.unlock, 'AndroidManifest.xml']);
const LABEL = 0x7f040000;
const ICON = 0x7f020000;
const TYPE_NAMES = ['attr', 'drawable', 'layout', 'string'];

const DENSITIES = { mdpi: 160, hdpi: 240, xxhdpi: 480, xxxhdpi: 640 } as const;
type Density = keyof typeof DENSITIES;
const iconPath = (density: Density) => `res/mipmap-${density}-v4/ic_launcher.png`;
const png = (density: Density) =>
  Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(density)]);

const work = mkdtempSync(join(tmpdir(), 'cloudphone-arsc-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let apks = 0;

/** An APK of that manifest, `resources` as its resources.arsc and a PNG for each density but `missing`. */
function apk(resources: Buffer | ArscTable, missing: Density[] = []): string {
  const path = join(work, `${++apks}.apk`);
  const icons = (Object.keys(DENSITIES) as Density[]).filter((density) => !missing.includes(density));
  writeFileSync(
    path,
    buildZip([
      { name: 'AndroidManifest.xml', data: MANIFEST },
      { name: 'resources.arsc', data: Buffer.isBuffer(resources) ? resources : buildArsc(resources) },
      ...icons.map((density) => ({ name: iconPath(density), data: png(density) })),
    ]),
  );
  return path;
}

/** The label and icons `aapt dump badging` finds, to check that the tables built here are valid. */
function aapt(path: string): { label: string | undefined; icons: Record<string, string> } {
  const out = execFileSync('aapt', ['dump', 'badging', path], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return {
    label: /^application-label:'(.*)'$/m.exec(out)?.[1],
    icons: Object.fromEntries([...out.matchAll(/^application-icon-(\d+):'(.*)'$/gm)].map((m) => [m[1]!, m[2]!])),
  };
}

function labelTable(label: string, utf8: boolean): ArscTable {
  return {
    utf8,
    typeNames: TYPE_NAMES,
    chunks: [
      { type: 'drawable', entries: { 0: { string: iconPath('hdpi') } } },
      { type: 'string', entries: { 0: { string: label }, 1: { string: 'after' } } },
    ],
  };
}

/** Icon variants in an unsorted order: the xxhdpi one is the best for a launcher. */
const iconChunks = (index: number, extra: ArscTypeChunk['entries'] = {}): ArscTypeChunk[] =>
  (['mdpi', 'xxxhdpi', 'xxhdpi', 'hdpi'] as const).map((density) => ({
    type: 'drawable',
    density: DENSITIES[density],
    entries: { ...extra, [index]: { string: iconPath(density) } },
  }));

describe('resources.arsc: label and icon', () => {
  const labels = {
    ascii: 'Settings',
    'non-ASCII': 'Réglages 设置',
    'longer than 127 bytes, fewer than 128 units': '设置'.repeat(25),
    'longer than 127 units': 'Long label, '.repeat(20),
  };

  for (const utf8 of [false, true]) {
    it(`reads labels from a ${utf8 ? 'UTF-8' : 'UTF-16'} string pool`, async () => {
      for (const [name, label] of Object.entries(labels)) {
        const path = apk(labelTable(label, utf8));
        expect(aapt(path).label, name).toBe(label);
        const ours: ApkInspection = await inspectApk(path);
        expect(ours.label, name).toBe(label);
        expect(ours.icon, name).toEqual(png('hdpi'));
      }
    });
  }

  it('reads a label of 0x8000 units or more from a UTF-16 pool (two-unit length)', async () => {
    const label = 'Ω'.repeat(0x8000 + 5);
    expect((await inspectApk(apk(labelTable(label, false)))).label).toBe(label);
  });

  it('prefers the default-language label and follows references', async () => {
    const path = apk({
      typeNames: TYPE_NAMES,
      chunks: [
        { type: 'drawable', entries: { 0: { string: iconPath('hdpi') } } },
        { type: 'string', language: 'fr', entries: { 0: { string: 'Paramètres' }, 3: { string: 'Réglages' } } },
        { type: 'string', entries: { 0: { reference: LABEL + 3 }, 3: { string: 'Settings' } } },
      ],
    });
    expect(aapt(path).label).toBe('Settings');
    expect((await inspectApk(path)).label).toBe('Settings');
  });

  it('a reference cycle has no label', async () => {
    const path = apk({
      typeNames: TYPE_NAMES,
      chunks: [{ type: 'string', entries: { 0: { reference: LABEL + 1 }, 1: { reference: LABEL } } }],
    });
    expect((await inspectApk(path)).label).toBeNull();
  });

  it('picks the xxhdpi icon among mdpi, hdpi, xxhdpi and xxxhdpi, then the next best present', async () => {
    const table: ArscTable = {
      typeNames: TYPE_NAMES,
      chunks: [...iconChunks(0), { type: 'string', entries: { 0: { string: 'Settings' } } }],
    };
    const path = apk(table);
    expect(aapt(path).icons['480']).toBe(iconPath('xxhdpi'));
    expect((await inspectApk(path)).icon).toEqual(png('xxhdpi'));
    expect((await inspectApk(apk(table, ['xxhdpi']))).icon).toEqual(png('hdpi'));
  });

  const encodings = [
    { encoding: 'dense', compact: false },
    { encoding: 'sparse', compact: false },
    { encoding: 'offset16', compact: false },
    { encoding: 'dense', compact: true },
    { encoding: 'sparse', compact: true },
    { encoding: 'offset16', compact: true },
  ] as const;

  for (const { encoding, compact } of encodings) {
    it(`resolves both through ${encoding} type chunks of ${compact ? 'compact' : 'full'} entries`, async () => {
      // Both ids lead, by reference, to entries after missing ones, among other entries.
      const chunks: ArscTypeChunk[] = [
        { type: 'drawable', entries: { 0: { reference: ICON + 3 } } },
        ...iconChunks(3, { 1: { string: 'res/other.png' }, 6: { string: 'res/last.png' } }),
        { type: 'string', language: 'fr', entries: { 2: { string: 'Étiquette' }, 5: { string: 'Autre' } } },
        { type: 'string', entries: { 0: { reference: LABEL + 2 }, 2: { string: 'Label' }, 5: { string: 'Other' } } },
      ];
      const path = apk({ typeNames: TYPE_NAMES, chunks: chunks.map((chunk) => ({ ...chunk, encoding, compact })) });
      if (encoding !== 'offset16' && !compact) {
        // Debian's aapt (Android 10) predates FLAG_OFFSET16 and compact entries.
        expect(aapt(path)).toEqual({ label: 'Label', icons: expect.objectContaining({ '480': iconPath('xxhdpi') }) });
      }
      const ours = await inspectApk(path);
      expect(ours.label).toBe('Label');
      expect(ours.icon).toEqual(png('xxhdpi'));
    });
  }
});

describe('resources.arsc: unreadable tables cost only the label and icon', () => {
  const table = buildArsc({
    typeNames: TYPE_NAMES,
    chunks: [...iconChunks(0), { type: 'string', entries: { 0: { string: 'Settings' }, 9: { string: 'Last' } } }],
  });

  async function expectNoLabelOrIcon(resources: Buffer): Promise<void> {
    const ours = await inspectApk(apk(resources));
    expect(ours.packageName).toBe('io.appium.unlock');
    expect(ours.label).toBeNull();
    expect(ours.icon).toBeNull();
  }

  it('garbage', async () => {
    await expectNoLabelOrIcon(Buffer.alloc(0));
    await expectNoLabelOrIcon(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)));
    await expectNoLabelOrIcon(table.subarray(0, 12));
  });

  it('a table truncated anywhere', async () => {
    for (let length = 0; length < table.length; length += 4) await expectNoLabelOrIcon(table.subarray(0, length));
  });

  it('entry offsets past the end of the table', async () => {
    const corrupt = Buffer.from(table);
    const typeHeader = Buffer.from([0x01, 0x02, 84, 0]); // RES_TABLE_TYPE, header size 84
    for (let at = corrupt.indexOf(typeHeader); at >= 0; at = corrupt.indexOf(typeHeader, at + 1)) {
      corrupt.writeUInt32LE(0x7f7f7f7f, at + 84); // the offset of entry 0
    }
    await expectNoLabelOrIcon(corrupt);
  });
});
