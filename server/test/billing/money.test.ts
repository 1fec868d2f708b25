import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CURRENCIES,
  chargeFor,
  currencyExponent,
  formatMinor,
  formatMoney,
  isCurrency,
  roundHalfUp,
  toAmount,
} from '../../src/billing/money.js';

describe('currencies', () => {
  it('knows the minor units of ISO 4217', () => {
    const expected = { USD: 2, EUR: 2, JPY: 0, KRW: 0, KWD: 3, BHD: 3, IQD: 3, CLF: 4, UYW: 4, CLP: 0, XOF: 0 };
    for (const [code, exponent] of Object.entries(expected)) expect(currencyExponent(code), code).toBe(exponent);
  });

  it('lists the active codes with a minor unit, sorted', () => {
    expect(CURRENCIES).toEqual([...CURRENCIES].sort());
    expect(CURRENCIES.length).toBeGreaterThan(150);
    for (const code of CURRENCIES) {
      expect(code).toMatch(/^[A-Z]{3}$/);
      expect([0, 2, 3, 4]).toContain(currencyExponent(code));
    }
    // Units of account and metals have no minor unit; these codes are withdrawn.
    for (const code of ['XAU', 'XDR', 'XXX', 'XTS', 'HRK', 'CUC', 'ZWL']) expect(isCurrency(code)).toBe(false);
  });

  it('rejects what is not a code', () => {
    for (const code of ['usd', 'US', 'USDX', '', 'toString', '__proto__', 'constructor']) {
      expect(isCurrency(code)).toBe(false);
      expect(() => currencyExponent(code)).toThrow(RangeError);
    }
  });
});

describe('roundHalfUp', () => {
  it('rounds exact halves up, and away from zero when negative', () => {
    expect(roundHalfUp(5n, 2n)).toBe(3n);
    expect(roundHalfUp(-5n, 2n)).toBe(-3n);
    expect(roundHalfUp(5n, -2n)).toBe(-3n);
    expect(roundHalfUp(-5n, -2n)).toBe(3n);
    expect(roundHalfUp(1n, 2n)).toBe(1n);
    expect(roundHalfUp(-1n, 2n)).toBe(-1n);
  });

  it('rounds to the nearest otherwise', () => {
    expect(roundHalfUp(29n, 60n)).toBe(0n);
    expect(roundHalfUp(31n, 60n)).toBe(1n);
    expect(roundHalfUp(-29n, 60n)).toBe(0n);
    expect(roundHalfUp(-31n, 60n)).toBe(-1n);
    expect(roundHalfUp(0n, 7n)).toBe(0n);
    expect(roundHalfUp(14n, 7n)).toBe(2n);
  });

  it('refuses a zero denominator', () => {
    expect(() => roundHalfUp(1n, 0n)).toThrow(RangeError);
  });

  it('is within half of the exact quotient and symmetric', () => {
    const amount30 = fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n });
    fc.assert(
      fc.property(amount30, fc.bigInt({ min: 1n, max: 10n ** 12n }), (n, d) => {
        const r = roundHalfUp(n, d);
        // |n/d − r| ≤ 1/2, with equality only when rounding away from zero.
        const twice = 2n * n - 2n * r * d;
        expect(twice <= d && twice >= -d).toBe(true);
        if (twice === d) expect(n < 0n).toBe(true);
        if (twice === -d) expect(n > 0n).toBe(true);
        expect(roundHalfUp(-n, d)).toBe(-r);
      }),
    );
  });
});

describe('chargeFor', () => {
  it('charges seconds · price / 60, halves up', () => {
    // 30 s at 1 per minute is exactly half a minor unit.
    expect(chargeFor(30n * 1n)).toBe(1n);
    expect(chargeFor(29n * 1n)).toBe(0n);
    expect(chargeFor(1n * 30n)).toBe(1n);
    expect(chargeFor(1n * 29n)).toBe(0n);
    expect(chargeFor(90n * 1n)).toBe(2n);
    expect(chargeFor(3725n * 125n)).toBe(7760n); // 7760.41…
    expect(chargeFor(0n)).toBe(0n);
    expect(chargeFor(60n * 7n)).toBe(7n);
  });

  it('stays exact far beyond the safe integers', () => {
    // A year of a thousand devices at a high price, then much more.
    const year = 366n * 86_400n;
    expect(chargeFor(year * 1000n * 999_999n)).toBe((year * 1000n * 999_999n) / 60n);
    const huge = 10n ** 40n + 30n;
    expect(chargeFor(huge)).toBe(10n ** 40n / 60n + 1n);
    expect(chargeFor(BigInt(Number.MAX_SAFE_INTEGER) * 60n + 30n)).toBe(BigInt(Number.MAX_SAFE_INTEGER) + 1n);
  });

  it('refuses a negative product', () => {
    expect(() => chargeFor(-1n)).toThrow(RangeError);
  });
});

describe('toAmount', () => {
  it('converts safe integers and refuses the rest', () => {
    expect(toAmount(-12n)).toBe(-12);
    expect(toAmount(BigInt(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
    expect(toAmount(BigInt(Number.MIN_SAFE_INTEGER))).toBe(Number.MIN_SAFE_INTEGER);
    expect(() => toAmount(BigInt(Number.MAX_SAFE_INTEGER) + 1n)).toThrow(RangeError);
    expect(() => toAmount(BigInt(Number.MIN_SAFE_INTEGER) - 1n)).toThrow(RangeError);
  });
});

describe('formatMinor', () => {
  it('writes major units with the exponent of the currency', () => {
    expect(formatMinor(1234, 'USD')).toBe('12.34');
    expect(formatMinor(5, 'USD')).toBe('0.05');
    expect(formatMinor(0, 'USD')).toBe('0.00');
    expect(formatMinor(-0, 'USD')).toBe('0.00');
    expect(formatMinor(-1234, 'EUR')).toBe('-12.34');
    expect(formatMinor(-5, 'KWD')).toBe('-0.005');
    expect(formatMinor(12345, 'KWD')).toBe('12.345');
    expect(formatMinor(1234, 'JPY')).toBe('1234');
    expect(formatMinor(-7, 'JPY')).toBe('-7');
    expect(formatMinor(1, 'CLF')).toBe('0.0001');
    expect(formatMinor(1_000_000, 'USD')).toBe('10000.00');
  });

  it('takes bigints, beyond the safe range too', () => {
    expect(formatMinor(123456789012345678901234n, 'USD')).toBe('1234567890123456789012.34');
    expect(formatMinor(-1n, 'BHD')).toBe('-0.001');
  });

  it('refuses fractions, unsafe numbers and unknown currencies', () => {
    expect(() => formatMinor(1.5, 'USD')).toThrow(RangeError);
    expect(() => formatMinor(2 ** 53, 'USD')).toThrow(RangeError);
    expect(() => formatMinor(Number.NaN, 'USD')).toThrow(RangeError);
    expect(() => formatMinor(1, 'XAU')).toThrow(RangeError);
  });

  it('reads back as the amount', () => {
    const amount20 = fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n });
    fc.assert(
      fc.property(fc.constantFrom(...CURRENCIES), amount20, (code, amount) => {
        const text = formatMinor(amount, code);
        const exponent = currencyExponent(code);
        expect(text).toMatch(exponent === 0 ? /^-?(0|[1-9]\d*)$/ : new RegExp(`^-?(0|[1-9]\\d*)\\.\\d{${exponent}}$`));
        expect(BigInt(text.replace('.', ''))).toBe(amount);
      }),
    );
  });
});

describe('formatMoney', () => {
  it('appends the code', () => {
    expect(formatMoney(1234, 'USD')).toBe('12.34 USD');
    expect(formatMoney(-5n, 'KWD')).toBe('-0.005 KWD');
    expect(formatMoney(1234, 'JPY')).toBe('1234 JPY');
  });
});
