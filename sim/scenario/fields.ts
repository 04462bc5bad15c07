// Reading one section of a scenario document: the raw YAML values (already
// checked against the JSON Schema for shape) turned into the model's units,
// each with its default, and every impossible value reported through `fail`
// with its path, so the file reader can point at the line. The readers are
// shared by every section; the sections themselves say what each field means.
import type { Dist } from '../util/dist.ts';
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

/** Typed readers of raw values; each takes the value's path, the value, and its default. */
export class Fields {
  constructor(readonly fail: Fail) {}

  duration(path: Path, value: unknown, dflt: number): number {
    if (value === undefined) return dflt;
    const ns = parseDuration(value as string);
    if (ns === null) return this.fail(path, `expected a duration like "358ms", got ${JSON.stringify(value)}`);
    if (!Number.isSafeInteger(ns)) return this.fail(path, `duration ${String(value)} is too large`);
    return ns;
  }

  size(path: Path, value: unknown, dflt: number): number {
    if (value === undefined) return dflt;
    const b = parseSize(value as string);
    if (b === null || !Number.isSafeInteger(b)) return this.fail(path, `expected a size like "4GiB", got ${JSON.stringify(value)}`);
    return b;
  }

  positive(path: Path, v: number, what: string): number {
    return v > 0 ? v : this.fail(path, `${what} must be greater than zero`);
  }

  bandwidth(path: Path, value: unknown, dflt: number): number {
    if (value === undefined) return dflt;
    const bw = parseBandwidth(value as string);
    if (bw === null) return this.fail(path, `expected a bandwidth like "1Gbit/s", got ${JSON.stringify(value)}`);
    return this.positive(path, bw, 'bandwidth');
  }

  rate(path: Path, value: unknown, dflt: number): number {
    if (value === undefined) return dflt;
    const v = parseRate(value as string);
    if (v === null) return this.fail(path, `expected a rate like "100/s", got ${JSON.stringify(value)}`);
    return v;
  }

  /** A share; the schema's pattern has checked the form. */
  percent(value: unknown, dflt: number): number {
    return value === undefined ? dflt : parsePercent(value as string)!;
  }

  /** A cost or latency: "358ms" alone is a fixed value, else one of the distributions. */
  dist(path: Path, value: unknown, dflt: Dist): Dist {
    if (value === undefined) return dflt;
    if (typeof value === 'string') return { dist: 'fixed', value_ns: this.duration(path, value, 0) };
    const o = value as Raw;
    const need = (k: string): number => {
      if (o[k] === undefined) return this.fail(path, `a ${String(o.dist)} distribution needs "${k}"`);
      return this.duration([...path, k], o[k], 0);
    };
    switch (o.dist as Dist['dist']) {
      case 'fixed': return { dist: 'fixed', value_ns: need('value') };
      case 'uniform': {
        const min = need('min');
        const max = need('max');
        if (max < min) return this.fail([...path, 'max'], 'uniform max is below min');
        return { dist: 'uniform', min_ns: min, max_ns: max };
      }
      case 'exponential': return { dist: 'exponential', mean_ns: need('mean') };
      case 'normal': return { dist: 'normal', mean_ns: need('mean'), stddev_ns: need('stddev') };
      case 'lognormal': {
        if (o.sigma === undefined) return this.fail(path, 'a lognormal distribution needs "sigma"');
        return { dist: 'lognormal', median_ns: need('median'), sigma: o.sigma as number };
      }
      case 'mixture': {
        const of = o.of as Raw[] | undefined;
        if (!of || of.length === 0) return this.fail(path, 'a mixture needs "of": a list of {p, value}');
        const parts = of.map((part, i) => ({ p: part.p as number, value: this.dist([...path, 'of', i, 'value'], part.value, dflt) }));
        const sum = parts.reduce((s, part) => s + part.p, 0);
        if (Math.abs(sum - 1) > 1e-9) return this.fail([...path, 'of'], `mixture probabilities add up to ${sum}, not 1`);
        return { dist: 'mixture', of: parts };
      }
    }
  }
}

/** A fixed distribution, for defaults. */
export function fixed(ns: number): Dist {
  return { dist: 'fixed', value_ns: ns };
}
