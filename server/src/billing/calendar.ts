/**
 * Billing days and periods in an IANA time zone, from the zone data the runtime carries (`Intl.DateTimeFormat`).
 *
 * A day 'YYYY-MM-DD' starts at the first instant whose local date is that date: local midnight, or, when midnight
 * does not exist that day (clocks moved forward at 00:00), the instant of the change. It ends where the next day
 * starts, so days tile the time line with no gap and no overlap whatever the offsets do. A period 'YYYY-MM' runs
 * from the start of its first day to the start of the next month's first day.
 */

const PERIOD = /^(\d{4})-(0[1-9]|1[0-2])$/;
const DAY = /^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;
/** An IANA name (letters first), not the offset form (`+01:00`) that newer runtimes also accept. */
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+\-/]*$/;
const HOUR_MS = 3_600_000;
/** Beyond any UTC offset a zone has had, local mean times included. */
const MAX_OFFSET_MS = 18 * HOUR_MS;

export interface Bounds {
  /** The first instant, in epoch milliseconds. */
  startMs: number;
  /** The first instant after, in epoch milliseconds. */
  endMs: number;
}

export interface DayPiece {
  /** Whole epoch seconds, `[startS, endS)`. */
  startS: number;
  endS: number;
  /** The local date of the piece, 'YYYY-MM-DD'. */
  day: string;
  /** Its month, 'YYYY-MM'. */
  period: string;
}

interface Fields {
  year: number;
  month: number;
  day: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    if (!isTimeZone(timeZone)) throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}`);
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  return format;
}

/** Whether `name` is an IANA time zone the runtime knows (`UTC`, `Europe/Berlin`, …). */
export function isTimeZone(name: string): boolean {
  if (!ZONE_NAME.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/**
 * The local wall-clock time at `instantMs`, as the epoch milliseconds that UTC shows at that same wall-clock time
 * (so `wallMs - instantMs` is the zone's offset).
 */
function wallMs(instantMs: number, timeZone: string): number {
  if (!Number.isFinite(instantMs)) throw new RangeError(`instant ${instantMs} is not a finite number`);
  const fields: Record<string, string> = {};
  for (const part of formatter(timeZone).formatToParts(instantMs)) fields[part.type] = part.value;
  const wall = new Date(0);
  wall.setUTCFullYear(Number(fields.year), Number(fields.month) - 1, Number(fields.day));
  wall.setUTCHours(Number(fields.hour), Number(fields.minute), Number(fields.second));
  // The formatter drops the milliseconds; offsets are whole seconds, so they carry over unchanged.
  return wall.getTime() + (((instantMs % 1000) + 1000) % 1000);
}

/** The UTC date of epoch milliseconds. */
function dateOf(ms: number): Fields {
  const date = new Date(ms);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

function localFields(instantMs: number, timeZone: string): Fields {
  return dateOf(wallMs(instantMs, timeZone));
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, '0');
}

function formatPeriod(year: number, month: number): string {
  return `${pad(year, 4)}-${pad(month, 2)}`;
}

function formatDay({ year, month, day }: Fields): string {
  return `${formatPeriod(year, month)}-${pad(day, 2)}`;
}

/** The billing period 'YYYY-MM' that `instantMs` falls in. */
export function periodOf(instantMs: number, timeZone: string): string {
  const { year, month } = localFields(instantMs, timeZone);
  return formatPeriod(year, month);
}

/** The local date 'YYYY-MM-DD' of `instantMs`. */
export function dayOf(instantMs: number, timeZone: string): string {
  return formatDay(localFields(instantMs, timeZone));
}

/** Epoch milliseconds of 00:00 UTC on a date; the month and day may overflow (month 13 = January next year). */
function utcMidnight(year: number, month: number, day: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getTime();
}

/** The first instant whose local wall-clock time is at least `wall` (a wall time given as UTC epoch ms). */
function firstInstantAtOrAfter(wall: number, timeZone: string): number {
  // The usual case in a few lookups: the instant of that wall time at the offset in force then, accepted when the
  // millisecond before it is still earlier on the wall clock (it is not the second of a repeated wall time).
  let guess = wall - (wallMs(wall, timeZone) - wall);
  guess = wall - (wallMs(guess, timeZone) - guess);
  if (wallMs(guess, timeZone) === wall && wallMs(guess - 1, timeZone) < wall) return guess;
  // Otherwise (the wall time falls in a gap or repeats): search the instants it can be at for the first one.
  let low = wall - MAX_OFFSET_MS;
  let high = wall + MAX_OFFSET_MS;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (wallMs(middle, timeZone) >= wall) high = middle;
    else low = middle;
  }
  return high;
}

function dayStart(year: number, month: number, day: number, timeZone: string): number {
  return firstInstantAtOrAfter(utcMidnight(year, month, day), timeZone);
}

function parsePeriod(period: string): { year: number; month: number } {
  const match = PERIOD.exec(period);
  if (match === null) throw new RangeError(`period ${JSON.stringify(period)} is not YYYY-MM`);
  return { year: Number(match[1]), month: Number(match[2]) };
}

function parseDay(day: string): Fields {
  const match = DAY.exec(day);
  const fields = match === null ? null : { year: Number(match[1]), month: Number(match[2]), day: Number(match[3]) };
  if (fields === null || new Date(utcMidnight(fields.year, fields.month, fields.day)).getUTCDate() !== fields.day) {
    throw new RangeError(`day ${JSON.stringify(day)} is not a date YYYY-MM-DD`);
  }
  return fields;
}

/**
 * Periods' bounds already computed: every admission and open charge asks for the current period's, and each
 * computation formats several instants in the zone.
 */
const periodCache = new Map<string, Bounds>();
const PERIOD_CACHE_SIZE = 64;

/** Where period 'YYYY-MM' starts and ends in `timeZone`. */
export function periodBounds(period: string, timeZone: string): Bounds {
  const key = `${timeZone} ${period}`;
  let bounds = periodCache.get(key);
  if (bounds === undefined) {
    const { year, month } = parsePeriod(period);
    bounds = { startMs: dayStart(year, month, 1, timeZone), endMs: dayStart(year, month + 1, 1, timeZone) };
    if (periodCache.size >= PERIOD_CACHE_SIZE) periodCache.delete(periodCache.keys().next().value!);
    periodCache.set(key, bounds);
  }
  return { ...bounds };
}

/** Where day 'YYYY-MM-DD' starts and ends in `timeZone`. */
export function dayBounds(day: string, timeZone: string): Bounds {
  const { year, month, day: date } = parseDay(day);
  return { startMs: dayStart(year, month, date, timeZone), endMs: dayStart(year, month, date + 1, timeZone) };
}

/** The month after 'YYYY-MM'. */
export function nextPeriod(period: string): string {
  const { year, month } = parsePeriod(period);
  return month === 12 ? formatPeriod(year + 1, 1) : formatPeriod(year, month + 1);
}

/** The month before 'YYYY-MM'. */
export function previousPeriod(period: string): string {
  const { year, month } = parsePeriod(period);
  return month === 1 ? formatPeriod(year - 1, 12) : formatPeriod(year, month - 1);
}

/**
 * Splits the whole epoch seconds `[startS, endS)` at every day boundary of `timeZone` (and so at every period
 * boundary). A boundary that falls inside a second is moved up to the end of that second, so every second belongs to
 * exactly one piece: the pieces are contiguous and cover the range exactly. An empty range gives no pieces.
 */
export function splitByDay(startS: number, endS: number, timeZone: string): DayPiece[] {
  if (!Number.isSafeInteger(startS) || !Number.isSafeInteger(endS) || endS < startS) {
    throw new RangeError(`[${startS}, ${endS}) is not a range of whole seconds`);
  }
  const pieces: DayPiece[] = [];
  let from = startS;
  while (from < endS) {
    const local = localFields(from * 1000, timeZone);
    let end = dayStart(local.year, local.month, local.day + 1, timeZone);
    // Where a zone's clock went back across midnight, a local date recurs after the next day began: the instant
    // belongs to the day whose span holds it.
    while (end <= from * 1000) {
      local.day += 1;
      end = dayStart(local.year, local.month, local.day + 1, timeZone);
    }
    const day = formatDay(dateOf(utcMidnight(local.year, local.month, local.day)));
    const to = Math.min(Math.ceil(end / 1000), endS);
    pieces.push({ startS: from, endS: to, day, period: day.slice(0, 7) });
    from = to;
  }
  return pieces;
}
