// Tests of cli/scenario-file.ts: hand-written mistakes in a small scenario,
// each of which must give one ScenarioError naming the file, the line and
// column of the mistake and the field path, with what was expected; values
// set from the command line (sweep --set) point at the line they replace;
// `latsim check` turns each into one line on stderr and exit code 2.
import { afterAll, describe, expect, it } from 'vitest';
import { parseScenario, ScenarioError, type ScenarioOverride } from '../../cli/scenario-file.ts';
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
