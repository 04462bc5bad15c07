// Tests of sim/scenario/units.ts: the human units of scenario files parse to the
// model's units, formatted values parse back to what they show, malformed or
// overflowing text is rejected, and the JSON Schema patterns accept exactly
// what the parsers accept (so editors flag the same mistakes as latsim check).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BANDWIDTH_PATTERN, DURATION_PATTERN, parseBandwidth, parseDuration, parsePercent, parseRate,
  parseSize, PERCENT_PATTERN, RATE_PATTERN, SIZE_PATTERN,
} from '../../../sim/scenario/units.ts';
import { formatBytes, formatNs } from '../../../sim/instrument/format.ts';

describe('parsing', () => {
  it.each([
    ['358ms', 358_000_000],
    ['40s', 40e9],
    ['1.5min', 90e9],
    ['2h', 7200e9],
    ['12us', 12_000],
    ['12µs', 12_000],
    ['250ns', 250],
    [' 5 ms ', 5e6],
    ['.5s', 5e8],
    ['1e3ms', 1e9],
  ])('duration %j is %d ns', (text, ns) => {
    expect(parseDuration(text)).toBe(ns);
  });

  it.each([
    ['4GiB', 4 * 2 ** 30],
    ['512MB', 512e6],
    ['4KiB', 4096],
    ['1TiB', 2 ** 40],
    ['100B', 100],
  ])('size %j is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    ['1Gbit/s', 125e6],
    ['200MB/s', 200e6],
    ['128MiB/s', 128 * 2 ** 20],
    ['8bit/s', 1],
  ])('bandwidth %j is %d bytes/s', (text, bps) => {
    expect(parseBandwidth(text)).toBe(bps);
  });

  it('rates and percentages', () => {
    expect(parseRate('100/s')).toBe(100);
    expect(parseRate('5/ms')).toBe(5000);
    expect(parseRate('60/min')).toBe(1);
    expect(parsePercent('50%')).toBe(0.5);
    expect(parsePercent('12.5 %')).toBe(0.125);
  });
});

describe('rejections', () => {
  it.each(['358', 'ms', '-3ms', '3 parsecs', '1.2.3ms', 'NaNs', '', ' ', '1e400s', 'Infinitys', '3ms5', '3 m s'])('duration %j', (text) => {
    expect(parseDuration(text)).toBeNull();
  });

  it.each(['4', 'GiB', '-1GiB', '4GIB', '4 gigs', '1e400GiB'])('size %j', (text) => {
    expect(parseSize(text)).toBeNull();
  });

  it.each(['1Gbit', '1Gb/s', '-1MB/s', '100', 'fast'])('bandwidth %j', (text) => {
    expect(parseBandwidth(text)).toBeNull();
  });

  it.each(['100', '100/day', '-5/s', 's/100'])('rate %j', (text) => {
    expect(parseRate(text)).toBeNull();
  });

  it.each(['50', '%', '-5%', 'half'])('percent %j', (text) => {
    expect(parsePercent(text)).toBeNull();
  });

  // JavaScript's \s matches these; a unit is separated by plain spaces only.
  it.each(['\t', '\u00a0', '\u202f', '\u2009', '\u3000', '\ufeff', '\n'])('any unit with %j inside or around it', (space) => {
    for (const [parse, pattern, text] of [
      [parseDuration, DURATION_PATTERN, '10s'], [parseSize, SIZE_PATTERN, '4GiB'], [parseBandwidth, BANDWIDTH_PATTERN, '1Gbit/s'],
      [parseRate, RATE_PATTERN, '100/s'], [parsePercent, PERCENT_PATTERN, '50%'],
    ] as const) {
      const cut = text.search(/[^\d]/);
      for (const odd of [`${text.slice(0, cut)}${space}${text.slice(cut)}`, `${space}${text}`, `${text}${space}`]) {
        expect(parse(odd), JSON.stringify(odd)).toBeNull();
        expect(new RegExp(pattern, 'u').test(odd), JSON.stringify(odd)).toBe(false);
      }
    }
  });
});

describe('round trips', () => {
  it('a formatted duration parses back to itself, to the precision shown', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 * 3600e9 }), (ns) => {
      const text = formatNs(ns);
      const back = parseDuration(text);
      expect(back, text).not.toBeNull();
      // The step of the last digit shown: 0.1 s, 0.01 s, 1 ms, 1 us or 1 ns.
      const step = ns >= 10e9 ? 1e8 : ns >= 1e9 ? 1e7 : ns >= 1e6 ? 1e6 : ns >= 1e3 ? 1e3 : 1;
      expect(Math.abs(back! - ns), `${ns} -> ${text} -> ${back}`).toBeLessThanOrEqual(step / 2 + 1e-6 * step);
    }), { numRuns: 2000 });
  });

  it('a formatted size parses back to itself, to the precision shown', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 50 }), (bytes) => {
      const text = formatBytes(bytes);
      const back = parseSize(text);
      expect(back, text).not.toBeNull();
      const unit = bytes < 1024 ? 1 : 1024 ** Math.min(4, Math.floor(Math.log(bytes) / Math.log(1024)));
      expect(Math.abs(back! - bytes), `${bytes} -> ${text}`).toBeLessThanOrEqual(unit * 0.05 + 1);
    }), { numRuns: 2000 });
  });

  it('a duration written in any unit parses to the same nanoseconds', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), (ms) => {
      expect(parseDuration(`${ms}ms`)).toBe(ms * 1e6);
      expect(parseDuration(`${ms * 1000}us`)).toBe(ms * 1e6);
      expect(parseDuration(`${ms / 1000}s`)).toBe(ms * 1e6);
    }));
  });
});

describe('schema patterns agree with the parsers', () => {
  const text = fc.string({ unit: fc.constantFrom(...'0123456789.eE+- µusmnhiBKMGTbt/%'.split('')), maxLength: 10 });
  const cases: [string, string, (s: string) => number | null][] = [
    ['duration', DURATION_PATTERN, parseDuration],
    ['size', SIZE_PATTERN, parseSize],
    ['bandwidth', BANDWIDTH_PATTERN, parseBandwidth],
    ['rate', RATE_PATTERN, parseRate],
    ['percent', PERCENT_PATTERN, parsePercent],
  ];
  it.each(cases)('%s', (_name, pattern, parse) => {
    const re = new RegExp(pattern, 'u');
    fc.assert(fc.property(text, (s) => {
      const v = parse(s);
      // The pattern cannot see overflow: "1e400s" matches but does not parse.
      if (v !== null) expect(re.test(s), s).toBe(true);
      else if (re.test(s)) expect(Number.isFinite(Number(/[\d.eE+-]+/.exec(s)?.[0]) * 1e9 * 1e9), s).toBe(false);
    }), { numRuns: 3000 });
  });
});
