// Tests of cli/scenario-file.ts: hand-written mistakes in a small scenario,
// each of which must give one ScenarioError naming the file, the line and
// column of the mistake and the field path, with what was expected; values
// set from the command line (sweep --set) point at the line they replace;
// `latsim check` turns each into one line on stderr and exit code 2.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseScenario, scenarioFromObject, ScenarioError, type ScenarioOverride } from '../../cli/scenario-file.ts';
import { runCli, tempDir } from './helpers.ts';

const BASE = [
  'name: base', //                 1
  'duration: 10s', //              2
  'vm:', //                        3
  '  memory: 1GiB', //             4
  '  vcpus: 2', //                 5
  '  page_size: 4KiB', //          6
  'devices:', //                   7
  '  net:', //                     8
  '    - name: net0', //           9
  '      vcpu: 1', //              10
  '  blk:', //                     11
  '    - name: disk0', //          12
  '      flush: 1ms', //           13
  'faults:', //                    14
  '  - name: nfs-stall', //        15
  '    device: disk0', //          16
  '    kind: slow-flush', //       17
  '    at: 2s', //                 18
  '    for: 1s', //                19
  '    latency: 5s', //            20
  'migration:', //                 21
  '  start: 3s', //                22
  '  max_bandwidth: 1Gbit/s', //   23
  '  link:', //                    24
  '    bandwidth: 10Gbit/s', //    25
  'expect:', //                    26
  '  max_downtime: 1s', //         27
];

/** BASE with line n (1-based) replaced by the given lines (none: deleted). */
function edit(n: number, ...lines: string[]): string {
  return [...BASE.slice(0, n - 1), ...lines, ...BASE.slice(n)].join('\n') + '\n';
}

function errorOf(text: string, overrides: ScenarioOverride[] = []): ScenarioError {
  try {
    parseScenario(text, 'f.yaml', overrides);
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    const err = e as ScenarioError;
    expect(err.message).not.toContain('\n');
    return err;
  }
  throw new Error('expected a ScenarioError, but the scenario was accepted');
}

describe('the base scenario', () => {
  it('is valid', () => {
    const s = parseScenario(BASE.join('\n'), 'f.yaml');
    expect(s.vm.vcpus).toBe(2);
    expect(s.faults[0]!.at_ns).toBe(2e9);
    expect(s.migration?.max_bandwidth).toBe(125e6);
  });
});

describe('mistakes name the file, line, column and field', () => {
  const cases: [string, string, RegExp][] = [
    ['an unknown top-level key', edit(2, 'duration: 10s', 'durration: 10s'), /^f\.yaml:3:1: durration: unknown key "durration" \(did you mean "duration"\?\)$/],
    ['a typo in a nested key', edit(4, '  memroy: 1GiB'), /^f\.yaml:4:3: vm\.memroy: unknown key "memroy" \(did you mean "memory"\?\)$/],
    ['a typo in a key inside a list', edit(13, '      flsh: 1ms'), /^f\.yaml:13:7: devices\.blk\[0\]\.flsh: unknown key "flsh" \(did you mean "flush"\?\)$/],
    ['a bad unit', edit(2, 'duration: 10 parsecs'), /^f\.yaml:2:11: duration: expected a duration like "358ms" or "40s", got "10 parsecs"$/],
    ['a negative size', edit(4, '  memory: -1GiB'), /^f\.yaml:4:11: vm\.memory: expected a size like "4GiB" or "512MB", got "-1GiB"$/],
    ['a zero bandwidth', edit(23, '  max_bandwidth: 0Gbit/s'), /^f\.yaml:23:18: migration\.max_bandwidth: bandwidth must be greater than zero$/],
    ['a page size that is not a power of two', edit(6, '  page_size: 3KiB'), /^f\.yaml:6:14: vm\.page_size: page size 3KiB is not a power of two/],
    ['a fault after the end of the run', edit(18, '    at: 12s'), /^f\.yaml:18:9: faults\[0\]\.at: the fault starts at or after the end of the run \(10s\)$/],
    ['a vCPU out of range', edit(10, '      vcpu: 5'), /^f\.yaml:10:13: devices\.net\[0\]\.vcpu: vCPU 5 does not exist \(the VM has 2\)$/],
    ['a word where a number goes', edit(5, '  vcpus: two'), /^f\.yaml:5:10: vm\.vcpus: expected an integer from 1 to 1024, got "two"$/],
    ['a missing required key', edit(9, '    - vcpu: 1').replace('      vcpu: 1\n', ''), /^f\.yaml:9:7: devices\.net\[0\]: missing required key "name"$/],
    ['a fault on a device that does not exist', edit(16, '    device: disk9'), /^f\.yaml:16:13: faults\[0\]\.device: no device named "disk9"; devices: net0, disk0$/],
    ['a zero duration', edit(2, 'duration: 0s'), /^f\.yaml:2:11: duration: duration must be greater than zero$/],
    ['a migration starting after the end', edit(22, '  start: 30s'), /^f\.yaml:22:10: migration\.start: migration starts at or after the end of the run$/],
    ['an unknown policy', edit(22, '  start: 3s', '  policy: fastest'), /^f\.yaml:23:11: migration\.policy: expected one of legacy, flush-timeout/],
    ['a duplicate key', edit(2, 'duration: 10s', 'duration: 20s'), /^f\.yaml:3:1: duration: duplicate key "duration" \(first at 2:1\)$/],
    ['a YAML syntax error', edit(4, '  memory: [1GiB'), /^f\.yaml:\d+:\d+: YAML: Flow sequence .*[^:]$/],
    ['a tab in the indentation', edit(5, '\tvcpus: 2'), /^f\.yaml:5:1: YAML: Tabs are not allowed as indentation$/],
  ];
  it.each(cases)('%s', (_what, text, expected) => {
    expect(errorOf(text).message).toMatch(expected);
  });

  it('a YAML syntax error points at the line where the parser gave up', () => {
    const err = errorOf(edit(4, '  memory: [1GiB'));
    expect(err.line).toBeGreaterThanOrEqual(4);
    expect(err.line).toBeLessThanOrEqual(5);
  });

  it('an empty file', () => {
    expect(errorOf('').message).toMatch(/^f\.yaml(:1:1)?: expected a mapping with at least name and duration$/);
    expect(errorOf('# only a comment\n').message).toMatch(/^f\.yaml(:\d+:\d+)?: expected a mapping with at least name and duration$/);
  });

  it('a document that is not a mapping', () => {
    expect(errorOf('- name: a\n- duration: 1s\n').message).toMatch(/^f\.yaml:1:1: expected a mapping with at least name and duration$/);
    expect(errorOf('42\n').message).toMatch(/^f\.yaml:1:1: expected a mapping/);
  });

  it('nesting deeper than any scenario needs is refused where it gets too deep', () => {
    expect(errorOf(`name: x\nduration: 1s\nvm: ${'['.repeat(5000)}`).message).toBe('f.yaml:3:69: YAML: nested deeper than 64 levels');
    expect(errorOf('? '.repeat(20_000)).message).toMatch(/^f\.yaml:1:\d+: YAML: nested deeper than 64 levels$/);
  });

  it('an alias bomb is refused, not expanded', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) lines.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
    expect(errorOf(lines.join('\n')).message).toMatch(/^f\.yaml(:\d+:\d+)?: YAML: /);
  });
});

describe('a scenario given as an object (the fuzzer\'s)', () => {
  it('is checked as a file is, its mistakes naming the field', () => {
    const ok = { name: 'x', duration: '2s', vm: { memory: '64MiB' } };
    expect(scenarioFromObject(ok, 'x.yaml')).toEqual(parseScenario('name: x\nduration: 2s\nvm: { memory: 64MiB }\n', 'x.yaml'));
    expect(() => scenarioFromObject({ ...ok, vm: { memory: '64XB' } }, 'x.yaml')).toThrow(/^x\.yaml: vm\.memory: /);
    expect(() => scenarioFromObject({ ...ok, vm: { memroy: '64MiB' } }, 'x.yaml')).toThrow(/^x\.yaml: vm\.memroy: /);
    expect(() => scenarioFromObject([ok], 'x.yaml')).toThrow(ScenarioError);
  });
});

describe('values set from the command line', () => {
  const set = (path: (string | number)[], value: unknown): ScenarioOverride => ({ path, value, source: `--set ${path.join('.')}=${String(value)}` });

  it('replace the value in the file before any check', () => {
    const s = parseScenario(BASE.join('\n'), 'f.yaml', [set(['vm', 'vcpus'], 4), set(['migration', 'flush_timeout'], '2s')]);
    expect(s.vm.vcpus).toBe(4);
    expect(s.migration?.flush_timeout_ns).toBe(2e9);
  });

  it('a bad value points at the line it replaced and names the --set', () => {
    const err = errorOf(BASE.join('\n'), [set(['vm', 'page_size'], '3KiB')]);
    expect(err.message).toMatch(/^f\.yaml:6:14: vm\.page_size: page size 3KiB is not a power of two.*\(--set vm\.page_size=3KiB\)$/);
  });

  it('a list replacing a scalar points at its key', () => {
    const err = errorOf(BASE.join('\n'), [set(['migration', 'max_bandwidth'], ['1Gbit/s'])]);
    expect(err.message).toMatch(/^f\.yaml:23:3: migration\.max_bandwidth: expected a bandwidth.*\(--set migration\.max_bandwidth=1Gbit\/s\)$/);
  });

  it('a misspelt path is an unknown key', () => {
    const err = errorOf(BASE.join('\n'), [set(['migration', 'flush_timout'], '1s')]);
    expect(err.message).toMatch(/^f\.yaml:\d+:\d+: migration\.flush_timout: unknown key "flush_timout".*\(--set migration\.flush_timout=1s\)$/);
  });

  it('a path through a single value cannot be set', () => {
    const err = errorOf(BASE.join('\n'), [set(['duration', 'x'], 1)]);
    expect(err.message).toMatch(/^f\.yaml:2:11: duration\.x: cannot set it: duration is a single value, not a mapping or list \(--set duration\.x=1\)$/);
  });
});

describe('latsim check', () => {
  const tmp = tempDir('check');
  afterAll(() => tmp.remove());

  it('exits 0 for a good file and 2 with one line per bad file', async () => {
    const good = tmp.file('good.yaml', BASE.join('\n'));
    const bad = tmp.file('bad.yaml', edit(4, '  memroy: 1GiB'));
    const run = await runCli(['check', good, bad]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe(`${good}: ok\n`);
    expect(run.stderr).toBe(`latsim: ${bad}:4:3: vm.memroy: unknown key "memroy" (did you mean "memory"?)\n`);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('a missing file is bad input too', async () => {
    const run = await runCli(['check', `${tmp.dir}/nope.yaml`]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`latsim: ${tmp.dir}/nope.yaml: no such file\n`);
  });

  it('--json prints one object per file', async () => {
    const good = tmp.file('good2.yaml', BASE.join('\n'));
    const bad = tmp.file('bad2.yaml', edit(2, 'duration: 0s'));
    const run = await runCli(['check', '--json', good, bad]);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toEqual([
      { file: good, ok: true, error: null },
      { file: bad, ok: false, error: `${bad}:2:11: duration: duration must be greater than zero` },
    ]);
  });
});

/** The base scenario with lines added at its end. */
const plus = (...lines: string[]) => `${[...BASE, ...lines].join('\n')}\n`;

describe('absurd but well-formed values are refused before the run, naming the field, value and limit', () => {
  const cases: [string, string, RegExp][] = [
    ['16 TiB of guest memory', edit(4, '  memory: 16TiB'), /^f\.yaml:4:11: vm\.memory: 16TiB is above the limit of 4TiB \(plausible: 1B to 4TiB\)$/],
    ['a dirty rate of 1e30/s', plus('guest:', '  workloads:', '    - vcpus: all', '      dirty: {rate: 1e30/s, pattern: uniform}'),
      /^f\.yaml:31:21: guest\.workloads\[0\]\.dirty\.rate: 1e30\/s is above the limit of 1e8\/s/],
    ['peer background traffic of 1e30/s', edit(10, '      vcpu: 1', '      peer: {background: 1e30/s}'),
      /^f\.yaml:11:26: devices\.net\[0\]\.peer\.background: 1e30\/s is above the limit of 1e6\/s/],
    ['a link of 1e300Gbit/s', edit(25, '    bandwidth: 1e300Gbit/s'), /^f\.yaml:25:16: migration\.link\.bandwidth: 1e300Gbit\/s is above the limit of 1000Gbit\/s/],
    ['1024 TiB of device state', edit(22, '  start: 3s', '  device_state: 1024TiB'), /^f\.yaml:23:17: migration\.device_state: 1024TiB is above the limit of 64GiB/],
    ['a run of a year', edit(2, 'duration: 8760h'), /^f\.yaml:2:11: duration: 8760h is above the limit of 24h/],
    ['a slice of a nanosecond', plus('guest: {slice: 1ns}'), /^f\.yaml:28:16: guest\.slice: 1ns is below the limit of 10us/],
    ['a threshold below a millisecond', plus('threshold: 1us'), /^f\.yaml:28:12: threshold: 1us is below the limit of 1ms/],
    ['a ping every nanosecond', edit(10, '      vcpu: 1', '      peer: {ping_interval: 1ns}'), /^f\.yaml:11:29: devices\.net\[0\]\.peer\.ping_interval: 1ns is below the limit of 100us \(plausible: 0 \(no ping\), or 100us to 1h\)$/],
    ['a million requests per second and more', edit(13, '      flush: 1ms', '      io: {rate: 2e6/s}'), /^f\.yaml:14:18: devices\.blk\[0\]\.io\.rate: 2e6\/s is above the limit of 1e6\/s/],
    ['a handler rate of 1e9/s', plus('main_loop:', '  handlers:', '    - {name: h, type: bh, cost: 1us, rate: 1e9/s}'), /^f\.yaml:30:44: main_loop\.handlers\[0\]\.rate: 1e9\/s is above the limit of 1e6\/s/],
    ['a handler cost of a day', plus('main_loop:', '  handlers:', '    - {name: h, type: bh, cost: 24h, rate: 1/s}'), /^f\.yaml:30:33: main_loop\.handlers\[0\]\.cost: 24h is above the limit of 1h/],
    ['a flush latency of a day inside a distribution', edit(13, '      flush: {dist: uniform, min: 1ms, max: 24h}'), /^f\.yaml:13:45: devices\.blk\[0\]\.flush\.max: 24h is above the limit of 1h/],
    ['a downtime limit above QEMU\'s 2000 s', edit(22, '  start: 3s', '  downtime_limit: 3000s'), /^f\.yaml:23:19: migration\.downtime_limit: 3000s is above the limit of 2000s/],
    ['a zero rate limit keeps its message', edit(23, '  max_bandwidth: 0Gbit/s'), /^f\.yaml:23:18: migration\.max_bandwidth: bandwidth must be greater than zero$/],
  ];
  it.each(cases)('%s', (_what, text, expected) => {
    expect(errorOf(text).message).toMatch(expected);
  });

  it('each is exit 2 and one line from latsim run, before anything runs', async () => {
    const tmp = tempDir('absurd');
    try {
      for (const [what, text] of cases) {
        const f = tmp.file(`${cases.findIndex((c) => c[0] === what)}.yaml`, text);
        const run = await runCli(['run', f]);
        expect(run.code, what).toBe(2);
        expect(run.stdout, what).toBe('');
        expect(run.stderr, what).toMatch(new RegExp(`^latsim: ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: [^\\n]+\\n$`));
      }
    } finally {
      tmp.remove();
    }
  });

  const faults = (n: number) => ['faults:', ...Array.from({ length: n }, (_, i) => `  - {name: f${i}, device: disk0, kind: stall, at: 1s, for: 1s}`)];
  it('at most 1000 faults', () => {
    const text = [...BASE.slice(0, 13), ...faults(1001), ...BASE.slice(20)].join('\n');
    expect(errorOf(text).message).toBe('f.yaml:15:3: faults: 1,001 faults, above the limit of 1000');
    expect(() => parseScenario([...BASE.slice(0, 13), ...faults(1000), ...BASE.slice(20)].join('\n'), 'f.yaml')).not.toThrow();
  });

  it('200,000 faults do not fit a scenario file', async () => {
    const tmp = tempDir('faults');
    try {
      const f = tmp.file('many.yaml', [...BASE.slice(0, 13), ...faults(200_000), ...BASE.slice(20)].join('\n'));
      const run = await runCli(['check', f]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^latsim: \S+many\.yaml: the file holds 1[0-9.]+ MiB, larger than the limit of 1\.0 MiB for a scenario\n$/);
    } finally {
      tmp.remove();
    }
  });

  it('counts of other lists are capped too', () => {
    const handlers = Array.from({ length: 257 }, (_, i) => `    - {name: h${i}, type: bh, cost: 1us, rate: 1/s}`);
    expect(errorOf(plus('main_loop:', '  handlers:', ...handlers)).message).toBe('f.yaml:30:5: main_loop.handlers: 257 handlers, above the limit of 256');
    const nets = Array.from({ length: 65 }, (_, i) => `    - name: n${i}`);
    expect(errorOf(edit(9, ...nets).replace('      vcpu: 1\n', '')).message).toMatch(/^f\.yaml:9:5: devices\.net: 65 virtio-net devices, above the limit of 64$/);
  });
});

describe('contradictions are refused', () => {
  const cases: [string, string, RegExp][] = [
    ['an empty policy list', edit(22, '  start: 3s', '  policy: []'), /^f\.yaml:23:11: migration\.policy: an empty policy list: give one of legacy, /],
    ['a repeated policy', edit(22, '  start: 3s', '  policy: [flush-timeout, flush-timeout]'), /^f\.yaml:23:27: migration\.policy\[1\]: policy "flush-timeout" is given twice \(first at \[0\]\)$/],
    ['a handler interval of 0s', plus('main_loop:', '  handlers:', '    - {name: h, type: bh, cost: 1us, interval: 0s}'),
      /^f\.yaml:30:48: main_loop\.handlers\[0\]\.interval: an interval of 0 activates the handler forever at one instant/],
    ['a mean handler interval below a microsecond', plus('main_loop:', '  handlers:', '    - {name: h, type: bh, cost: 1us, interval: 10ns}'),
      /^f\.yaml:30:48: main_loop\.handlers\[0\]\.interval: a mean interval of 10 ns is below the limit of 1us/],
    ['an exponential mean of 0', edit(13, '      flush: {dist: exponential, mean: 0s}'), /^f\.yaml:13:40: devices\.blk\[0\]\.flush\.mean: an exponential distribution's mean must be greater than zero/],
    ['a normal spread of 0', edit(13, '      flush: {dist: normal, mean: 1ms, stddev: 0s}'), /^f\.yaml:13:48: devices\.blk\[0\]\.flush\.stddev: .*must be greater than zero/],
    ['a lognormal median of 0', edit(13, '      flush: {dist: lognormal, median: 0s, sigma: 1}'), /^f\.yaml:13:40: devices\.blk\[0\]\.flush\.median: .*must be greater than zero/],
    ['a lognormal sigma of 0', edit(13, '      flush: {dist: lognormal, median: 1ms, sigma: 0}'), /^f\.yaml:13:\d+: devices\.blk\[0\]\.flush(\.sigma)?: .*(above 0|greater than zero)/],
    ['two faults with one name', edit(20, '    latency: 5s', '  - {name: nfs-stall, device: disk0, kind: stall, at: 3s, for: 1s}'),
      /^f\.yaml:21:12: faults\[1\]\.name: fault name "nfs-stall" is given twice \(first at \[0\]\)$/],
    ['two handlers with one name', plus('main_loop:', '  handlers:', '    - {name: h, type: bh, cost: 1us, rate: 1/s}', '    - {name: h, type: fd, cost: 1us, rate: 1/s}'),
      /^f\.yaml:31:14: main_loop\.handlers\[1\]\.name: handler name "h" is given twice/],
    ['a vCPU listed twice in a workload', plus('guest:', '  workloads:', '    - {vcpus: [1, 1]}'), /^f\.yaml:30:19: guest\.workloads\[0\]\.vcpus\[1\]: vCPU 1 is given twice/],
    ['min_downtime above max_downtime', edit(27, '  max_downtime: 1s', '  min_downtime: 2s'), /^f\.yaml:28:3: expect\.min_downtime: min_downtime 2s is above max_downtime 1s: no run can hold both$/],
  ];
  it.each(cases)('%s', (_what, text, expected) => {
    expect(errorOf(text).message).toMatch(expected);
  });

  it('a min_ equal to its max_ can hold', () => {
    expect(() => parseScenario(edit(27, '  max_downtime: 1s', '  min_downtime: 1s'), 'f.yaml')).not.toThrow();
  });
});

describe('strict YAML 1.2, core schema', () => {
  const cases: [string, string, RegExp][] = [
    ['%YAML 2.0', `%YAML 2.0\n---\n${BASE.join('\n')}`, /^f\.yaml:1:1: YAML: directive "%YAML 2\.0" is not accepted: a scenario is YAML 1\.2/],
    ['%YAML 1.1 (yes/no booleans)', `%YAML 1.1\n---\n${BASE.join('\n')}`, /^f\.yaml:1:1: YAML: directive "%YAML 1\.1" is not accepted/],
    ['%TAG', `%TAG !e! tag:example.com,2000:\n---\n${BASE.join('\n')}`, /^f\.yaml:1:1: YAML: directive "%TAG !e! tag:example\.com,2000:" is not accepted/],
    ['an unknown tag', edit(2, 'duration: !weird 2s'), /^f\.yaml:2:11: YAML: unknown tag !weird: only the core schema's !!str, /],
    ['a YAML 1.1 tag', edit(1, 'name: !!binary aGVsbG8='), /^f\.yaml:1:7: YAML: unknown tag !!binary/],
    ['a list as a key', `? [a, b]\n: 1\n${BASE.join('\n')}`, /^f\.yaml:1:3: a key must be a single value, not a list$/],
    ['a mapping as a key inside a section', edit(4, '  {a: 1}: 2'), /^f\.yaml:4:3: vm: a key must be a single value, not a mapping$/],
    ['an alias as a key', `x: &k vm\n*k : 1\n${BASE.join('\n')}`, /^f\.yaml:2:1: a key must be a single value, not an alias$/],
    ['a duplicate key in a list item', edit(13, '      flush: 1ms', '      flush: 2ms'), /^f\.yaml:14:7: devices\.blk\[0\]\.flush: duplicate key "flush" \(first at 13:7\)$/],
    ['a second document', `${BASE.join('\n')}\n---\nname: other\n`, /^f\.yaml:28:1: YAML: a second document/],
    ['a merge key is just an unknown key', edit(4, '  <<: {memory: 1GiB}'), /^f\.yaml:4:3: vm\.<<: unknown key "<<"/],
  ];
  it.each(cases)('%s', (_what, text, expected) => {
    expect(errorOf(text).message).toMatch(expected);
  });

  it('core tags and %YAML 1.2 are fine', () => {
    expect(parseScenario(`%YAML 1.2\n---\n${edit(1, 'name: !!str base')}`, 'f.yaml').name).toBe('base');
  });

  it('the library never writes its own warnings to stderr', async () => {
    const tmp = tempDir('warn');
    try {
      const f = tmp.file('complex.yaml', `? [a, b]\n: 1\n${BASE.join('\n')}`);
      const run = await runCli(['check', f]);
      expect(run.code).toBe(2);
      expect(run.stderr).toBe(`latsim: ${f}:1:3: a key must be a single value, not a list\n`);
    } finally {
      tmp.remove();
    }
  });
});

describe('units take plain spaces only', () => {
  it.each([
    ['a tab', '10\ts', /which holds a tab where only a plain space may go$/],
    ['a no-break space', '10\u00a0s', /which holds a no-break space \(U\+00A0\) where only a plain space may go$/],
    ['a narrow no-break space', '10\u202fs', /which holds a U\+202F space/],
  ])('%s inside a duration', (_what, value, expected) => {
    const err = errorOf(edit(2, `duration: "${value}"`));
    expect(err.message).toMatch(/^f\.yaml:2:11: duration: expected a duration like "358ms" or "40s", got /);
    expect(err.message).toMatch(expected);
  });

  it('plain spaces are fine', () => {
    expect(parseScenario(edit(2, 'duration: 10 s'), 'f.yaml').duration_ns).toBe(10e9);
  });
});

describe('messages point at the mistake itself', () => {
  it('a misspelt required key is an unknown key at its own line, not a missing key at 1:1', () => {
    expect(errorOf(edit(2, 'duraton: 10s')).message).toBe('f.yaml:2:1: duraton: unknown key "duraton" (did you mean "duration"?)');
  });

  it('a key far from every known key lists them', () => {
    expect(errorOf(edit(4, '  zzzzzz: 1GiB')).message).toMatch(/^f\.yaml:4:3: vm\.zzzzzz: unknown key "zzzzzz"; expected one of: memory, page_size, vcpus/);
  });

  it('an unclosed double quote is reported where it opens, not at the end of the file', () => {
    expect(errorOf(edit(1, 'name: "base')).message).toBe('f.yaml:1:7: YAML: this double-quoted string is never closed');
  });

  it('an unclosed single quote too', () => {
    expect(errorOf(edit(16, "    device: 'disk0")).message).toBe('f.yaml:16:13: YAML: this single-quoted string is never closed');
  });

  it('escaped quotes do not close a string', () => {
    expect(errorOf(edit(1, 'name: "base\\"')).message).toBe('f.yaml:1:7: YAML: this double-quoted string is never closed');
    expect(errorOf(edit(1, "name: 'it''")).message).toBe('f.yaml:1:7: YAML: this single-quoted string is never closed');
  });

  it('a long value is not quoted whole', () => {
    expect(errorOf(edit(9, `    - name: ${'x'.repeat(200)}`)).message)
      .toMatch(/^f\.yaml:9:13: devices\.net\[0\]\.name: expected a name .*\(at most 128\), got a text of 200 characters$/);
    expect(errorOf(edit(2, `duration: ${'9'.repeat(100)} parsecs`)).message)
      .toMatch(/^f\.yaml:2:11: duration: expected a duration like "358ms" or "40s", got "9{40}\.\.\."$/);
  });
});

describe('the parser is linear and bounded', () => {
  // Time is bounded by the test's timeout, never asserted.
  it('40,000 keys: the first unknown one, at once', { timeout: 20_000 }, () => {
    const keys = Array.from({ length: 40_000 }, (_, i) => `k${i}: 1`);
    expect(errorOf([...BASE, ...keys].join('\n')).message).toMatch(/^f\.yaml:28:1: k0: unknown key "k0"/);
  });

  it('40,000 keys in one nested mapping, the last one repeated', { timeout: 20_000 }, () => {
    const keys = Array.from({ length: 40_000 }, (_, i) => `  k${i}: 1`);
    expect(errorOf([...BASE, 'x:', ...keys, '  k0: 2'].join('\n')).message).toMatch(/^f\.yaml:40029:3: x\.k0: duplicate key "k0" \(first at 29:3\)$/);
  });

  it('a million-level flow nest is refused by the lexer pass, before the parser recurses', { timeout: 20_000 }, () => {
    expect(errorOf(`name: x\nduration: 1s\nvm: ${'['.repeat(1_000_000)}`).message).toBe('f.yaml:3:69: YAML: nested deeper than 64 levels');
    expect(errorOf(`name: x\nduration: 1s\nvm: ${'{a: '.repeat(250_000)}`).message).toMatch(/^f\.yaml:3:\d+: YAML: nested deeper than 64 levels$/);
  });

  it('brackets inside strings and comments are not nesting', () => {
    const s = parseScenario(edit(1, `name: base # ${'['.repeat(100)}`).replace('name: base', `name: base\ndescription: "${'['.repeat(100)}"`), 'f.yaml');
    expect(s.name).toBe('base');
  });

  it('a string over 64 Ki characters is refused where it is', () => {
    expect(errorOf(edit(1, 'name: base', `description: ${'x'.repeat(70_000)}`)).message)
      .toBe('f.yaml:2:14: description: a text of 70,000 characters, above the limit of 65,536');
  });

  it('scenario text over 1 MiB is refused before it is parsed', () => {
    expect(errorOf(`name: x\ndescription: ${'x'.repeat(2 ** 20)}\n`).message).toMatch(/^f\.yaml: the text holds 1\.0 MiB, larger than the limit of 1\.0 MiB/);
  });

  it('a 50 MB string is refused at once', { timeout: 20_000 }, () => {
    expect(errorOf(`name: x\nduration: 1s\ndescription: ${'x'.repeat(50e6)}\n`).message).toMatch(/^f\.yaml: the text holds 47\.7 MiB, larger than the limit/);
  });
});

describe('only regular files of at most 1 MiB are read', () => {
  const tmp = tempDir('files');
  afterAll(() => tmp.remove());
  const one = (run: { code: number; stderr: string }) => {
    expect(run.code).toBe(2);
    expect(run.stderr.endsWith('\n') && run.stderr.indexOf('\n') === run.stderr.length - 1).toBe(true);
  };

  it('a FIFO is refused at once, not waited on', { timeout: 20_000 }, async () => {
    const fifo = join(tmp.dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const run = await runCli(['check', fifo]);
    one(run);
    expect(run.stderr).toBe(`latsim: ${fifo}: a FIFO, not a regular file: a scenario is read from a file\n`);
  });

  it('/dev/zero is refused at once, not read until memory runs out', { timeout: 20_000 }, async () => {
    const run = await runCli(['run', '/dev/zero']);
    one(run);
    expect(run.stderr).toBe('latsim: /dev/zero: a character device, not a regular file: a scenario is read from a file\n');
  });

  it('a directory', async () => {
    const run = await runCli(['check', tmp.dir]);
    one(run);
    expect(run.stderr).toContain(': a directory, not a regular file');
  });

  it('a file over 1 MiB', async () => {
    const f = tmp.file('big.yaml', `name: x\nduration: 1s\ndescription: ${'x'.repeat(2 ** 20)}\n`);
    const run = await runCli(['check', f]);
    one(run);
    expect(run.stderr).toBe(`latsim: ${f}: the file holds 1.0 MiB, larger than the limit of 1.0 MiB for a scenario\n`);
  });

  it('a file that is not UTF-8', async () => {
    const f = join(tmp.dir, 'latin1.yaml');
    writeFileSync(f, Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0x0a]));
    const run = await runCli(['check', f]);
    one(run);
    expect(run.stderr).toBe(`latsim: ${f}: the file is not UTF-8 text\n`);
  });

  it('control characters in a file name are escaped in messages', async () => {
    const f = tmp.file('evil\u001b[2J\nname.yaml', edit(2, 'duration: 0s'));
    const run = await runCli(['check', f]);
    one(run);
    expect(run.stderr).toBe(`latsim: ${tmp.dir}/evil\\x1b[2J\\x0aname.yaml:2:11: duration: duration must be greater than zero\n`);
  });
});

describe('--max-memory', () => {
  const tmp = tempDir('mem');
  afterAll(() => tmp.remove());
  const big = () => tmp.file('big.yaml', edit(4, '  memory: 1TiB'));

  it('refuses a scenario whose estimate is above it, at the field that weighs most (latsim run)', async () => {
    const f = big();
    const run = await runCli(['run', f, '--max-memory', '256MiB']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(new RegExp(`^latsim: ${f}:4:11: vm\\.memory: the run needs an estimated \\d+\\.\\d MiB, above --max-memory 256\\.0 MiB; most of it migration bitmap and destination: 2\\^28 pages x 0\\.5 B = 128\\.0 MiB\\n$`));
  });

  it('latsim check applies the same estimate', async () => {
    const f = big();
    expect((await runCli(['check', f, '--max-memory', '256MiB'])).code).toBe(2);
    expect((await runCli(['check', f, '--max-memory', '8GiB'])).code).toBe(0);
  });

  it('counts the trace when it is kept', async () => {
    const f = tmp.file('long.yaml', edit(2, 'duration: 24h'));
    expect((await runCli(['check', f, '--max-memory', '3GiB'])).code).toBe(0);
    const run = await runCli(['run', f, '--max-memory', '3GiB', '--trace', join(tmp.dir, 't.json')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/: duration: the run needs an estimated [\d.]+ GiB, above --max-memory 3\.0 GiB; most of it trace records: 20,000,000 events x 256 B/);
  });

  it('latsim sweep checks every grid point, and counts each worker', async () => {
    const f = tmp.file('sweep.yaml', BASE.join('\n'));
    const point = await runCli(['sweep', f, '--set', 'vm.memory=64MiB,1TiB', '--max-memory', '256MiB']);
    expect(point.code).toBe(2);
    expect(point.stdout).toBe('');
    expect(point.stderr).toMatch(/^latsim: \S+:4:11: vm\.memory: the run needs an estimated \d+\.\d MiB, above --max-memory 256\.0 MiB; .*\(--set vm\.memory=1TiB\)\n$/);
    const workers = await runCli(['sweep', f, '--set', 'vm.memory=64MiB,512GiB', '--workers', '2', '--max-memory', '400MiB']);
    expect(workers.code).toBe(2);
    expect(workers.stderr).toMatch(/vm\.memory: the run needs an estimated \d+\.\d MiB x 2 runs at once, above --max-memory 400\.0 MiB/);
  });

  it('latsim fuzz checks its largest scenario', async () => {
    const run = await runCli(['fuzz', '--seeds', '1', '--max-memory', '100MiB']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^latsim: --max-memory: the largest fuzz scenario \(safety phase\): the run needs an estimated [\d.]+ MiB, above --max-memory 100\.0 MiB/);
  });

  it('takes a size', async () => {
    const run = await runCli(['check', big(), '--max-memory', 'lots']);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('latsim: --max-memory: expected a size like "8GiB", got "lots"\n');
  });
});

describe('the default event bound', () => {
  it('is about a minute of wall time, and a scenario may raise it', () => {
    expect(parseScenario(BASE.join('\n'), 'f.yaml').limits.max_events).toBe(20_000_000);
    expect(parseScenario(plus('limits: {max_events: 100000000}'), 'f.yaml').limits.max_events).toBe(1e8);
  });

  it('a run that crosses it exits 3 with the replay command', async () => {
    const tmp = tempDir('bound');
    try {
      const f = tmp.file('busy.yaml', plus('limits: {max_events: 1000}'));
      const run = await runCli(['run', f]);
      expect(run.code).toBe(3);
      expect(run.stderr).toContain(`replay: latsim run ${f} --seed 1\n`);
    } finally {
      tmp.remove();
    }
  });
});

describe('include: scenario fragments', () => {
  const tmp = tempDir('include');
  afterAll(() => tmp.remove());
  tmp.file('host.yaml', [
    'qemu:', //                    1
    '  host:', //                  2
    '    zero_page_scan: 450ns', // 3
    '    page_send: 2us', //       4
    'vm:', //                      5
    '  memory: 128MiB', //         6
    '  firmware: 468KiB', //       7
    '',
  ].join('\n'));
  const scenario = (lines: string[]) => tmp.file('s.yaml', [...lines, ''].join('\n'));

  it('gives the values the scenario leaves out; the scenario\'s own win', () => {
    const file = scenario(['name: inc', 'duration: 2s', 'include: host.yaml', 'vm: { memory: 64MiB }', 'qemu: { host: { page_send: 1us } }']);
    const s = parseScenario(readFileSync(file, 'utf8'), file);
    expect(s.vm.memory_bytes).toBe(64 * 2 ** 20);
    expect(s.vm.firmware_bytes).toBe(468 * 1024);
    expect(s.qemu.host.zero_page_scan_ns).toBe(450);
    expect(s.qemu.host.page_send_ns).toBe(1000);
  });

  it('a mistake in a fragment is placed in the fragment, naming the scenario that includes it', () => {
    const bad = tmp.file('bad.yaml', 'qemu:\n  host:\n    zero_page_scan: ninety\n');
    const file = scenario(['name: inc', 'duration: 2s', 'include: bad.yaml']);
    expect(() => parseScenario(readFileSync(file, 'utf8'), file)).toThrow(
      `${bad}:3:21: qemu.host.zero_page_scan: expected a duration like "358ms" or "40s", got "ninety" (included by ${file})`);
    const typo = tmp.file('typo.yaml', 'vm:\n  memroy: 1GiB\n');
    const file2 = scenario(['name: inc', 'duration: 2s', 'include: [host.yaml, typo.yaml]']);
    expect(() => parseScenario(readFileSync(file2, 'utf8'), file2)).toThrow(`${typo}:2:3: vm.memroy: unknown key "memroy" (did you mean "memory"?)`);
  });

  it('refuses what a fragment cannot be or hold', () => {
    const cases: [string, string][] = [
      ['named.yaml', 'name: other\n'],
      ['list.yaml', '- a\n'],
    ];
    for (const [name, text] of cases) tmp.file(name, text);
    const run = (inc: string) => {
      const file = scenario(['name: inc', 'duration: 2s', `include: ${inc}`]);
      return () => parseScenario(readFileSync(file, 'utf8'), file);
    };
    expect(run('named.yaml')).toThrow('name belongs to the scenario itself');
    expect(run('list.yaml')).toThrow('expected a mapping');
    expect(run('missing.yaml')).toThrow(/missing\.yaml: no such file/);
    expect(run('s.yaml')).toThrow('include: a scenario cannot include itself');
    expect(run('"[]"')).toThrow(ScenarioError);
  });
});
