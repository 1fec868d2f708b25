import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  dayBounds,
  dayOf,
  isTimeZone,
  nextPeriod,
  periodBounds,
  periodOf,
  previousPeriod,
  splitByDay,
} from '../../src/billing/calendar.js';

const HOUR = 3_600_000;
const at = (iso: string) => Date.parse(iso);
/** Epoch seconds of an ISO instant. */
const s = (iso: string) => Date.parse(iso) / 1000;

function hours({ startMs, endMs }: { startMs: number; endMs: number }): number {
  return (endMs - startMs) / HOUR;
}

/** Bounds as 'start end', to the minute: '2026-03-28T23:00Z 2026-03-29T22:00Z'. */
function span({ startMs, endMs }: { startMs: number; endMs: number }): string {
  const minute = (ms: number) => `${new Date(ms).toISOString().slice(0, 16)}Z`;
  expect(startMs % 60_000).toBe(0);
  expect(endMs % 60_000).toBe(0);
  return `${minute(startMs)} ${minute(endMs)}`;
}

/** Zones with the awkward cases: half-hour and 45-minute offsets, half-hour DST, DST at midnight, a skipped day. */
const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'America/Santiago',
  'Asia/Beirut',
  'America/Sao_Paulo',
  'America/Havana',
  'Asia/Kolkata',
  'Asia/Kathmandu',
  'America/St_Johns',
  'Pacific/Kiritimati',
  'Pacific/Pago_Pago',
  'Pacific/Apia',
  'Europe/Dublin',
  'Africa/Casablanca',
  'Antarctica/Troll',
];

describe('isTimeZone', () => {
  it('accepts IANA names and refuses the rest', () => {
    for (const zone of ZONES) expect(isTimeZone(zone)).toBe(true);
    expect(isTimeZone('Etc/GMT+5')).toBe(true);
    for (const name of ['', 'Mars/Olympus_Mons', '+01:00', '-05:00', 'Europe/', '../UTC', 'UTC ']) {
      expect(isTimeZone(name)).toBe(false);
    }
  });

  it('makes the other functions refuse an unknown zone', () => {
    expect(() => periodOf(0, 'Mars/Olympus_Mons')).toThrow(RangeError);
    expect(() => periodBounds('2026-01', '+01:00')).toThrow(RangeError);
  });
});

describe('periodOf and dayOf', () => {
  it('read the local date', () => {
    const instant = at('2026-02-28T23:30:00Z');
    expect(periodOf(instant, 'UTC')).toBe('2026-02');
    expect(dayOf(instant, 'UTC')).toBe('2026-02-28');
    expect(periodOf(instant, 'Europe/Berlin')).toBe('2026-03');
    expect(dayOf(instant, 'Europe/Berlin')).toBe('2026-03-01');
    expect(dayOf(at('2026-03-01T10:00:00Z'), 'Pacific/Pago_Pago')).toBe('2026-02-28');
    expect(dayOf(at('2026-03-01T10:00:00Z'), 'Pacific/Kiritimati')).toBe('2026-03-02');
    expect(dayOf(at('2026-12-31T18:29:59.999Z'), 'Asia/Kolkata')).toBe('2026-12-31');
    expect(periodOf(at('2026-12-31T18:30:00Z'), 'Asia/Kolkata')).toBe('2027-01');
  });

  it('refuse an instant that is not a number', () => {
    expect(() => dayOf(Number.NaN, 'UTC')).toThrow(RangeError);
  });
});

describe('dayBounds', () => {
  it('follows DST in Europe/Berlin and America/New_York', () => {
    expect(span(dayBounds('2026-03-29', 'Europe/Berlin'))).toBe('2026-03-28T23:00Z 2026-03-29T22:00Z');
    expect(span(dayBounds('2026-10-25', 'Europe/Berlin'))).toBe('2026-10-24T22:00Z 2026-10-25T23:00Z');
    expect(hours(dayBounds('2026-03-08', 'America/New_York'))).toBe(23);
    expect(span(dayBounds('2026-11-01', 'America/New_York'))).toBe('2026-11-01T04:00Z 2026-11-02T05:00Z');
  });

  it('follows half-hour DST on Lord Howe and the 45-minute offset of Chatham', () => {
    expect(span(dayBounds('2026-04-05', 'Australia/Lord_Howe'))).toBe('2026-04-04T13:00Z 2026-04-05T13:30Z');
    expect(hours(dayBounds('2026-04-05', 'Australia/Lord_Howe'))).toBe(24.5);
    expect(hours(dayBounds('2026-10-04', 'Australia/Lord_Howe'))).toBe(23.5);
    expect(span(dayBounds('2026-04-05', 'Pacific/Chatham'))).toBe('2026-04-04T10:15Z 2026-04-05T11:15Z');
    expect(hours(dayBounds('2026-09-27', 'Pacific/Chatham'))).toBe(23);
  });

  it('starts a day whose midnight does not exist at its first instant', () => {
    // Clocks went from 00:00 to 01:00: the day begins at the change.
    expect(span(dayBounds('2022-09-11', 'America/Santiago'))).toBe('2022-09-11T04:00Z 2022-09-12T03:00Z');
    expect(dayOf(at('2022-09-11T03:59:59.999Z'), 'America/Santiago')).toBe('2022-09-10');
    expect(span(dayBounds('2010-03-28', 'Asia/Beirut'))).toBe('2010-03-27T22:00Z 2010-03-28T21:00Z');
    expect(span(dayBounds('2018-11-04', 'America/Sao_Paulo'))).toBe('2018-11-04T03:00Z 2018-11-05T02:00Z');
  });

  it('gives a day that was skipped no length', () => {
    // Samoa moved across the date line: 29 December 2011 was followed by the 31st.
    const skipped = dayBounds('2011-12-30', 'Pacific/Apia');
    expect(skipped.endMs).toBe(skipped.startMs);
    expect(dayBounds('2011-12-29', 'Pacific/Apia').endMs).toBe(skipped.startMs);
    expect(dayBounds('2011-12-31', 'Pacific/Apia').startMs).toBe(skipped.endMs);
    expect(dayOf(skipped.startMs, 'Pacific/Apia')).toBe('2011-12-31');
  });

  it('knows leap years', () => {
    expect(hours(dayBounds('2024-02-29', 'UTC'))).toBe(24);
    expect(hours(dayBounds('2000-02-29', 'Europe/Berlin'))).toBe(24);
    for (const day of ['2023-02-29', '2100-02-29', '2026-04-31', '2026-13-01', '2026-1-01', '26-01-01', '2026-01-00']) {
      expect(() => dayBounds(day, 'UTC')).toThrow(RangeError);
    }
  });
});

describe('periodBounds', () => {
  it('runs from the first local midnight of the month to the next month', () => {
    expect(span(periodBounds('2026-03', 'Europe/Berlin'))).toBe('2026-02-28T23:00Z 2026-03-31T22:00Z');
    expect(hours(periodBounds('2026-03', 'Europe/Berlin'))).toBe(31 * 24 - 1);
    expect(span(periodBounds('2026-11', 'America/New_York'))).toBe('2026-11-01T04:00Z 2026-12-01T05:00Z');
    expect(span(periodBounds('2026-12', 'UTC'))).toBe('2026-12-01T00:00Z 2027-01-01T00:00Z');
    expect(span(periodBounds('2026-01', 'Pacific/Kiritimati'))).toBe('2025-12-31T10:00Z 2026-01-31T10:00Z');
  });

  it('counts February by the leap year rule', () => {
    expect(hours(periodBounds('2024-02', 'UTC'))).toBe(29 * 24);
    expect(hours(periodBounds('2026-02', 'UTC'))).toBe(28 * 24);
    expect(hours(periodBounds('2000-02', 'UTC'))).toBe(29 * 24);
    expect(hours(periodBounds('2100-02', 'UTC'))).toBe(28 * 24);
  });

  it('refuses what is not a period', () => {
    for (const period of ['2026-13', '2026-00', '2026-1', '202601', '2026-01-01', '']) {
      expect(() => periodBounds(period, 'UTC')).toThrow(RangeError);
      expect(() => nextPeriod(period)).toThrow(RangeError);
    }
  });
});

describe('nextPeriod and previousPeriod', () => {
  it('step a month, across years', () => {
    expect(nextPeriod('2026-01')).toBe('2026-02');
    expect(nextPeriod('2026-12')).toBe('2027-01');
    expect(previousPeriod('2026-01')).toBe('2025-12');
    expect(previousPeriod('2026-10')).toBe('2026-09');
  });
});

describe('splitByDay', () => {
  it('cuts at local midnights, and at the period boundary', () => {
    const start = at('2026-03-28T12:00:00Z') / 1000;
    const end = at('2026-04-01T12:00:00Z') / 1000;
    expect(splitByDay(start, end, 'Europe/Berlin')).toEqual([
      { startS: start, endS: s('2026-03-28T23:00Z'), day: '2026-03-28', period: '2026-03' },
      { startS: s('2026-03-28T23:00Z'), endS: s('2026-03-29T22:00Z'), day: '2026-03-29', period: '2026-03' },
      { startS: s('2026-03-29T22:00Z'), endS: s('2026-03-30T22:00Z'), day: '2026-03-30', period: '2026-03' },
      { startS: s('2026-03-30T22:00Z'), endS: s('2026-03-31T22:00Z'), day: '2026-03-31', period: '2026-03' },
      { startS: s('2026-03-31T22:00Z'), endS: end, day: '2026-04-01', period: '2026-04' },
    ]);
  });

  it('keeps a range within one day whole, and gives nothing for an empty range', () => {
    const start = at('2026-06-10T08:00:00Z') / 1000;
    expect(splitByDay(start, start + 1, 'UTC')).toEqual([
      { startS: start, endS: start + 1, day: '2026-06-10', period: '2026-06' },
    ]);
    expect(splitByDay(start, start, 'UTC')).toEqual([]);
  });

  it('puts the second before midnight and the one at midnight in different days', () => {
    const midnight = at('2026-07-01T00:00:00Z') / 1000;
    const pieces = splitByDay(midnight - 1, midnight + 1, 'UTC');
    expect(pieces.map((piece) => [piece.startS, piece.endS, piece.day])).toEqual([
      [midnight - 1, midnight, '2026-06-30'],
      [midnight, midnight + 1, '2026-07-01'],
    ]);
  });

  it('passes over the day Samoa skipped', () => {
    const pieces = splitByDay(at('2011-12-29T00:00:00Z') / 1000, at('2012-01-01T00:00:00Z') / 1000, 'Pacific/Apia');
    expect(pieces.map((piece) => piece.day)).toEqual(['2011-12-28', '2011-12-29', '2011-12-31', '2012-01-01']);
  });

  it('gives the hour repeated before midnight to the day whose span holds it', () => {
    // St. John's left DST at 00:01, back to 23:01 of the day before: 7 November had begun at 02:30Z, then the
    // local date read the 6th again until 03:30Z.
    const dayStart = at('2010-11-07T02:30:00Z') / 1000;
    expect(dayBounds('2010-11-06', 'America/St_Johns').endMs).toBe(dayStart * 1000);
    expect(dayOf(at('2010-11-07T03:00:00Z'), 'America/St_Johns')).toBe('2010-11-06');
    const pieces = splitByDay(at('2010-11-07T03:00:00Z') / 1000, at('2010-11-07T12:00:00Z') / 1000, 'America/St_Johns');
    expect(pieces.map((piece) => piece.day)).toEqual(['2010-11-07']);
    const across = splitByDay(dayStart - 60, dayStart + 3600, 'America/St_Johns');
    expect(across.map((piece) => [piece.day, piece.endS])).toEqual([
      ['2010-11-06', dayStart],
      ['2010-11-07', dayStart + 3600],
    ]);
  });

  it('refuses a range that is not whole seconds in order', () => {
    expect(() => splitByDay(10, 5, 'UTC')).toThrow(RangeError);
    expect(() => splitByDay(0.5, 5, 'UTC')).toThrow(RangeError);
    expect(() => splitByDay(0, Number.POSITIVE_INFINITY, 'UTC')).toThrow(RangeError);
  });
});

describe('properties', () => {
  const zone = fc.constantFrom(...ZONES);
  // 1970 to 2040.
  const second = fc.integer({ min: 0, max: 2_208_988_800 });
  const date = fc.date({
    min: new Date('1971-01-01T00:00:00Z'),
    max: new Date('2039-12-31T00:00:00Z'),
    noInvalidDate: true,
  });
  const isoDay = (value: Date) => value.toISOString().slice(0, 10);

  it('split pieces are contiguous, cover the range exactly and each lies in one day', () => {
    fc.assert(
      fc.property(zone, second, fc.integer({ min: 0, max: 90 * 86_400 }), (timeZone, startS, length) => {
        const endS = startS + length;
        const pieces = splitByDay(startS, endS, timeZone);
        if (length === 0) {
          expect(pieces).toEqual([]);
          return;
        }
        expect(pieces[0]?.startS).toBe(startS);
        expect(pieces.at(-1)?.endS).toBe(endS);
        let previousDay = '';
        pieces.forEach((piece, i) => {
          expect(piece.endS).toBeGreaterThan(piece.startS);
          if (i > 0) expect(piece.startS).toBe(pieces[i - 1]?.endS);
          expect(piece.day > previousDay).toBe(true);
          previousDay = piece.day;
          expect(piece.period).toBe(piece.day.slice(0, 7));
          const bounds = dayBounds(piece.day, timeZone);
          expect(piece.startS).toBeGreaterThanOrEqual(Math.ceil(bounds.startMs / 1000));
          expect(piece.endS).toBeLessThanOrEqual(Math.ceil(bounds.endMs / 1000));
          // A cut inside the range is exactly a day boundary.
          if (i > 0) expect(piece.startS).toBe(Math.ceil(bounds.startMs / 1000));
        });
      }),
      { numRuns: 300 },
    );
  });

  it('days tile the time line: each starts where the one before ends, at its first local instant', () => {
    fc.assert(
      fc.property(zone, date, (timeZone, value) => {
        const day = isoDay(value);
        const bounds = dayBounds(day, timeZone);
        const next = dayBounds(isoDay(new Date(value.getTime() + 86_400_000)), timeZone);
        expect(next.startMs).toBe(bounds.endMs);
        expect(bounds.endMs).toBeGreaterThanOrEqual(bounds.startMs);
        expect(hours(bounds)).toBeLessThanOrEqual(26);
        expect(dayOf(bounds.startMs - 1, timeZone) < day).toBe(true);
        if (bounds.endMs > bounds.startMs) {
          expect(dayOf(bounds.startMs, timeZone)).toBe(day);
          expect(dayOf(bounds.endMs - 1, timeZone)).toBe(day);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('periods tile the time line and hold their own instants', () => {
    fc.assert(
      fc.property(zone, date, (timeZone, value) => {
        const period = isoDay(value).slice(0, 7);
        const bounds = periodBounds(period, timeZone);
        expect(periodBounds(nextPeriod(period), timeZone).startMs).toBe(bounds.endMs);
        expect(previousPeriod(nextPeriod(period))).toBe(period);
        expect(periodOf(bounds.startMs, timeZone)).toBe(period);
        expect(periodOf(bounds.endMs - 1, timeZone)).toBe(period);
        expect(periodOf(bounds.startMs - 1, timeZone)).toBe(previousPeriod(period));
        expect(bounds.startMs).toBe(dayBounds(`${period}-01`, timeZone).startMs);
      }),
      { numRuns: 300 },
    );
  });
});
