// Human units in scenario files: durations ("358ms", "40s", "1.5min"), sizes
// ("4GiB", "512MB"), bandwidths ("1Gbit/s", "200MB/s", "128MiB/s"), rates
// ("100/s", "5/ms") and percentages ("50%"). Each parser returns the value in
// the model's unit (ns, bytes, bytes/s, per second, fraction) or null when the
// text is not in that form; the regular expressions are also the JSON Schema
// patterns, so editors flag the same mistakes. Only ASCII spaces may surround
// the number and the unit: a tab or a no-break space (which JavaScript's \s
// matches) is a mistake, not a separator.

/** Spaces allowed around the number and the unit: ASCII spaces only. */
const SP = ' *';
const NUM = '(?:\\d+(?:\\.\\d+)?|\\.\\d+)(?:[eE][+-]?\\d+)?';

const DURATION_UNITS: Record<string, number> = {
  ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, min: 60e9, h: 3600e9,
};
const SIZE_UNITS: Record<string, number> = {
  B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
  KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40,
};
const BW_UNITS: Record<string, number> = {
  'B/s': 1, 'KB/s': 1e3, 'MB/s': 1e6, 'GB/s': 1e9,
  'KiB/s': 2 ** 10, 'MiB/s': 2 ** 20, 'GiB/s': 2 ** 30,
  'bit/s': 1 / 8, 'Kbit/s': 1e3 / 8, 'Mbit/s': 1e6 / 8, 'Gbit/s': 1e9 / 8,
};
const RATE_UNITS: Record<string, number> = { '/s': 1, '/ms': 1e3, '/us': 1e6, '/min': 1 / 60, '/h': 1 / 3600 };

function alternation(units: Record<string, number>): string {
  return Object.keys(units)
    .sort((a, b) => b.length - a.length)
    .map((u) => u.replace(/[/.]/g, (c) => `\\${c}`))
    .join('|');
}

export const DURATION_PATTERN = `^${SP}${NUM}${SP}(?:${alternation(DURATION_UNITS)})${SP}$`;
export const SIZE_PATTERN = `^${SP}${NUM}${SP}(?:${alternation(SIZE_UNITS)})${SP}$`;
export const BANDWIDTH_PATTERN = `^${SP}${NUM}${SP}(?:${alternation(BW_UNITS)})${SP}$`;
export const RATE_PATTERN = `^${SP}${NUM}${SP}(?:${alternation(RATE_UNITS)})${SP}$`;
export const PERCENT_PATTERN = `^${SP}${NUM}${SP}%${SP}$`;

/** Each unit table's capturing pattern, built once. */
const CAPTURE = new Map<Record<string, number>, RegExp>();

function parseWith(text: string, units: Record<string, number>): number | null {
  let re = CAPTURE.get(units);
  if (!re) {
    re = new RegExp(`^${SP}(${NUM})${SP}(${alternation(units)})${SP}$`);
    CAPTURE.set(units, re);
  }
  const m = re.exec(text);
  if (!m) return null;
  const value = Number(m[1]) * units[m[2]!]!;
  return Number.isFinite(value) ? value : null;
}

/** "358ms" -> 358000000 (integer ns). */
export function parseDuration(text: string): number | null {
  const v = parseWith(text, DURATION_UNITS);
  return v === null ? null : Math.round(v);
}

/** "4GiB" -> 4294967296 (integer bytes). */
export function parseSize(text: string): number | null {
  const v = parseWith(text, SIZE_UNITS);
  return v === null ? null : Math.round(v);
}

/** "1Gbit/s" -> 125000000 (bytes per second). */
export function parseBandwidth(text: string): number | null {
  return parseWith(text, BW_UNITS);
}

/** "100/s" -> 100 (per second). */
export function parseRate(text: string): number | null {
  return parseWith(text, RATE_UNITS);
}

/** "50%" -> 0.5. */
const PERCENT = new RegExp(`^${SP}(${NUM})${SP}%${SP}$`);

export function parsePercent(text: string): number | null {
  const m = PERCENT.exec(text);
  return m ? Number(m[1]) / 100 : null;
}
