/**
 * Money: integer amounts in a currency's minor unit (cents for USD, yen for JPY, fils for KWD), with the currency's
 * own exponent from ISO 4217.
 *
 * Amounts cross the API as JS numbers that must be safe integers; sums are taken in bigint so that no intermediate
 * loses precision, and `toAmount` brings a result back to a number.
 *
 * Rounding: a cost is an exact fraction of a minor unit and is rounded once, half up: to the nearest integer, an
 * exact half going up (away from zero for a negative value, so that rounding is symmetric: 2.5 → 3, −2.5 → −3).
 * The cost of s seconds at p minor units per minute is s·p/60: `chargeFor(BigInt(s) * BigInt(p))`.
 */

/**
 * ISO 4217 List One: every active currency code with its minor unit (digits after the decimal separator). Entries
 * without a minor unit (precious metals, SDR and other units of account, the testing and "no currency" codes) are
 * left out, since nothing can be billed in them, and so are withdrawn codes (HRK, BGN, ANG, SLL, ZWL, CUC).
 */
const EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  AED: 2, AFN: 2, ALL: 2, AMD: 2, AOA: 2, ARS: 2, AUD: 2, AWG: 2, AZN: 2,
  BAM: 2, BBD: 2, BDT: 2, BHD: 3, BIF: 0, BMD: 2, BND: 2, BOB: 2, BOV: 2, BRL: 2, BSD: 2, BTN: 2, BWP: 2, BYN: 2,
  BZD: 2,
  CAD: 2, CDF: 2, CHE: 2, CHF: 2, CHW: 2, CLF: 4, CLP: 0, CNY: 2, COP: 2, COU: 2, CRC: 2, CUP: 2, CVE: 2, CZK: 2,
  DJF: 0, DKK: 2, DOP: 2, DZD: 2,
  EGP: 2, ERN: 2, ETB: 2, EUR: 2,
  FJD: 2, FKP: 2,
  GBP: 2, GEL: 2, GHS: 2, GIP: 2, GMD: 2, GNF: 0, GTQ: 2, GYD: 2,
  HKD: 2, HNL: 2, HTG: 2, HUF: 2,
  IDR: 2, ILS: 2, INR: 2, IQD: 3, IRR: 2, ISK: 0,
  JMD: 2, JOD: 3, JPY: 0,
  KES: 2, KGS: 2, KHR: 2, KMF: 0, KPW: 2, KRW: 0, KWD: 3, KYD: 2, KZT: 2,
  LAK: 2, LBP: 2, LKR: 2, LRD: 2, LSL: 2, LYD: 3,
  MAD: 2, MDL: 2, MGA: 2, MKD: 2, MMK: 2, MNT: 2, MOP: 2, MRU: 2, MUR: 2, MVR: 2, MWK: 2, MXN: 2, MXV: 2, MYR: 2,
  MZN: 2,
  NAD: 2, NGN: 2, NIO: 2, NOK: 2, NPR: 2, NZD: 2,
  OMR: 3,
  PAB: 2, PEN: 2, PGK: 2, PHP: 2, PKR: 2, PLN: 2, PYG: 0,
  QAR: 2,
  RON: 2, RSD: 2, RUB: 2, RWF: 0,
  SAR: 2, SBD: 2, SCR: 2, SDG: 2, SEK: 2, SGD: 2, SHP: 2, SLE: 2, SOS: 2, SRD: 2, SSP: 2, STN: 2, SVC: 2, SYP: 2,
  SZL: 2,
  THB: 2, TJS: 2, TMT: 2, TND: 3, TOP: 2, TRY: 2, TTD: 2, TWD: 2, TZS: 2,
  UAH: 2, UGX: 0, USD: 2, USN: 2, UYI: 0, UYU: 2, UYW: 4, UZS: 2,
  VED: 2, VES: 2, VND: 0, VUV: 0,
  WST: 2,
  XAF: 0, XCD: 2, XCG: 2, XOF: 0, XPF: 0,
  YER: 2,
  ZAR: 2, ZMW: 2, ZWG: 2,
});

/** The known currency codes, in alphabetical order. */
export const CURRENCIES: readonly string[] = Object.freeze(Object.keys(EXPONENTS).sort());

/** Whether `code` is an active ISO 4217 currency with a minor unit (upper case, as the standard writes it). */
export function isCurrency(code: string): boolean {
  return Object.hasOwn(EXPONENTS, code);
}

/** The number of decimal digits of `code`'s minor unit (USD 2, JPY 0, KWD 3, CLF 4); a RangeError if unknown. */
export function currencyExponent(code: string): number {
  const exponent = isCurrency(code) ? EXPONENTS[code] : undefined;
  if (exponent === undefined) throw new RangeError(`unknown currency ${JSON.stringify(code)}`);
  return exponent;
}

/** `numerator / denominator` rounded half up (half away from zero for a negative quotient); the denominator ≠ 0. */
export function roundHalfUp(numerator: bigint, denominator: bigint): bigint {
  if (denominator === 0n) throw new RangeError('division by zero');
  const negative = numerator < 0n !== denominator < 0n;
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  // floor(n/d + 1/2) with integers only.
  const rounded = (2n * n + d) / (2n * d);
  return negative ? -rounded : rounded;
}

/**
 * The cost, in minor units, of device seconds times a price per minute (minor units): that product / 60, rounded
 * half up. Pass the product summed over the seconds of one line, so the line is rounded once.
 */
export function chargeFor(secondsTimesPrice: bigint): bigint {
  if (secondsTimesPrice < 0n) throw new RangeError('a charge is for a non-negative number of seconds times price');
  return roundHalfUp(secondsTimesPrice, 60n);
}

/** A bigint amount as the JS number the API carries; a RangeError if it is not a safe integer. */
export function toAmount(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`amount ${value} is beyond the safe integer range`);
  }
  return Number(value);
}

/**
 * An amount in minor units as a decimal string in major units, with exactly the currency's exponent of decimals
 * and a plain `.` separator: 1234 USD → `12.34`, −5 KWD → `-0.005`, 1234 JPY → `1234`. No grouping, no symbol,
 * so that CSV readers and documents show the same text.
 */
export function formatMinor(amount: number | bigint, currency: string): string {
  const exponent = currencyExponent(currency);
  if (typeof amount === 'number' && !Number.isSafeInteger(amount)) {
    throw new RangeError(`amount ${amount} is not a safe integer`);
  }
  const value = BigInt(amount);
  const digits = (value < 0n ? -value : value).toString().padStart(exponent + 1, '0');
  const sign = value < 0n ? '-' : '';
  if (exponent === 0) return sign + digits;
  return `${sign}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}

/** `formatMinor` followed by the currency code, as documents show an amount: `12.34 USD`. */
export function formatMoney(amount: number | bigint, currency: string): string {
  return `${formatMinor(amount, currency)} ${currency}`;
}
