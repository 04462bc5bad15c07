// Reading one section of a scenario document: the raw YAML values (already
// checked against the JSON Schema for shape) turned into the model's units,
// each with its default and its plausible range (limits.ts), and every
// impossible value reported through `fail` with its path, so the file reader
// can point at the line. The readers are shared by every section; the
// sections themselves say what each field means.
import type { Dist } from '../util/dist.ts';
import { limitProblem, type Limit } from './limits.ts';
import { parseBandwidth, parseDuration, parsePercent, parseRate, parseSize } from './units.ts';

/** Keys and list indices from the top of the document. */
export type Path = readonly (string | number)[];
/** A mapping of the document, as parsed. */
export type Raw = Record<string, unknown>;
/** Reports a mistake at a path (at its key, when key is set) and does not return. */
export type Fail = (path: Path, detail: string, key?: boolean) => never;

/** The mapping at key k of o, or an empty one. */
export function section(o: unknown, k: string): Raw {
  return ((o as Raw | undefined)?.[k] ?? {}) as Raw;
}

/** The list at key k of o, or an empty one. */
export function items(o: unknown, k: string): Raw[] {
  return ((o as Raw | undefined)?.[k] ?? []) as Raw[];
}

/** The last key of a path, in words: ['migration', 'flush_timeout'] -> "flush timeout". */
function lastKey(path: Path): string {
  const k = [...path].reverse().find((p) => typeof p === 'string');
  return (k ?? 'value').replace(/_/g, ' ');
}

/** Typed readers of raw values; each takes the value's path, the value, its default and its limit. */
export class Fields {
  constructor(readonly fail: Fail) {}

  /** Checks v (written as value) against limit l. */
  within(path: Path, value: unknown, v: number, l: Limit, what = lastKey(path)): number {
    const problem = limitProblem(l, v, String(value).trim(), what);
    return problem === null ? v : this.fail(path, problem);
  }

  duration(path: Path, value: unknown, dflt: number, l: Limit, what?: string): number {
    if (value === undefined) return dflt;
    const ns = parseDuration(value as string);
    if (ns === null) return this.fail(path, `expected a duration like "358ms", got ${JSON.stringify(value)}`);
    return this.within(path, value, ns, l, what);
  }

  size(path: Path, value: unknown, dflt: number, l: Limit, what?: string): number {
    if (value === undefined) return dflt;
    const b = parseSize(value as string);
    if (b === null) return this.fail(path, `expected a size like "4GiB", got ${JSON.stringify(value)}`);
    return this.within(path, value, b, l, what);
  }

  positive(path: Path, v: number, what: string): number {
    return v > 0 ? v : this.fail(path, `${what} must be greater than zero`);
  }

  bandwidth(path: Path, value: unknown, dflt: number, l: Limit): number {
    if (value === undefined) return dflt;
    const bw = parseBandwidth(value as string);
    if (bw === null) return this.fail(path, `expected a bandwidth like "1Gbit/s", got ${JSON.stringify(value)}`);
    return this.within(path, value, bw, l, 'bandwidth');
  }

  rate(path: Path, value: unknown, dflt: number, l: Limit, what?: string): number {
    if (value === undefined) return dflt;
    const v = parseRate(value as string);
    if (v === null) return this.fail(path, `expected a rate like "100/s", got ${JSON.stringify(value)}`);
    return this.within(path, value, v, l, what);
  }

  /** A share; the schema's pattern has checked the form. */
  percent(value: unknown, dflt: number): number {
    return value === undefined ? dflt : parsePercent(value as string)!;
  }

  /**
   * A cost, latency or interval: "358ms" alone is a fixed value, else one of
   * the distributions. Every parameter is within l; a parameter that must be
   * positive for the distribution to mean anything (an exponential's mean, a
   * normal's spread, a lognormal's median and sigma) is refused at zero.
   */
  dist(path: Path, value: unknown, dflt: Dist, l: Limit): Dist {
    if (value === undefined) return dflt;
    if (typeof value === 'string') return { dist: 'fixed', value_ns: this.duration(path, value, 0, l) };
    const o = value as Raw;
    const kind = `${/^[aeiou]/.test(String(o.dist)) ? 'an' : 'a'} ${String(o.dist)}`;
    const need = (k: string): number => {
      if (o[k] === undefined) return this.fail(path, `${kind} distribution needs "${k}"`);
      return this.duration([...path, k], o[k], 0, l);
    };
    const above0 = (k: string, v: number, why: string): number =>
      v > 0 ? v : this.fail([...path, k], `${kind} distribution's ${k} must be greater than zero (${why})`);
    switch (o.dist as Dist['dist']) {
      case 'fixed': return { dist: 'fixed', value_ns: need('value') };
      case 'uniform': {
        const min = need('min');
        const max = need('max');
        if (max < min) return this.fail([...path, 'max'], 'uniform max is below min');
        return { dist: 'uniform', min_ns: min, max_ns: max };
      }
      case 'exponential': return { dist: 'exponential', mean_ns: above0('mean', need('mean'), 'a mean of 0 is a fixed 0; write "0s"') };
      case 'normal': return { dist: 'normal', mean_ns: need('mean'), stddev_ns: above0('stddev', need('stddev'), 'no spread is a fixed value; write the mean') };
      case 'lognormal': {
        if (o.sigma === undefined) return this.fail(path, 'a lognormal distribution needs "sigma"');
        const median = above0('median', need('median'), 'every draw would be 0');
        return { dist: 'lognormal', median_ns: median, sigma: above0('sigma', o.sigma as number, 'no spread is a fixed value; write the median') };
      }
      case 'mixture': {
        const of = o.of as Raw[] | undefined;
        if (!of || of.length === 0) return this.fail(path, 'a mixture needs "of": a list of {p, value}');
        const parts = of.map((part, i) => ({ p: part.p as number, value: this.dist([...path, 'of', i, 'value'], part.value, dflt, l) }));
        const sum = parts.reduce((s, part) => s + part.p, 0);
        if (Math.abs(sum - 1) > 1e-9) return this.fail([...path, 'of'], `mixture probabilities add up to ${sum}, not 1`);
        return { dist: 'mixture', of: parts };
      }
    }
  }

  /**
   * Items of a list must differ (at key, when the items are mappings): the
   * second of two equal ones is reported (what names the value: "fault name").
   */
  distinct(path: Path, values: readonly unknown[], what: string, key?: string): void {
    const seen = new Map<string, number>();
    values.forEach((v, i) => {
      if (v === undefined) return;
      const k = JSON.stringify(v);
      const first = seen.get(k);
      const at: Path = key === undefined ? [...path, i] : [...path, i, key];
      if (first !== undefined) this.fail(at, `${what} ${k} is given twice (first at [${first}])`);
      seen.set(k, i);
    });
  }
}

/** The mean of a distribution in ns (a normal's draws are cut at 0; its mean is taken as given). */
export function distMean(d: Dist): number {
  switch (d.dist) {
    case 'fixed': return d.value_ns;
    case 'uniform': return (d.min_ns + d.max_ns) / 2;
    case 'exponential': return d.mean_ns;
    case 'normal': return Math.max(0, d.mean_ns);
    case 'lognormal': return d.median_ns * Math.exp((d.sigma * d.sigma) / 2);
    case 'mixture': return d.of.reduce((s, part) => s + part.p * distMean(part.value), 0);
  }
}

/** A fixed distribution, for defaults. */
export function fixed(ns: number): Dist {
  return { dist: 'fixed', value_ns: ns };
}
