// Option values (cli/args.ts): one syntax and range for seeds in every
// command (decimal digits, 0..SEED_MAX); counts in decimal digits; empty
// values and options that exclude each other refused. Each mistake is exit 2
// with one line on stderr, before anything runs.
import { describe, expect, it } from 'vitest';
import { parseInteger, parseSeed, parseSeeds, parseSeedRange } from '../../cli/args.ts';
import { UsageError } from '../../cli/errors.ts';
import { SEED_MAX } from '../../sim/scenario/scenario.ts';
import { runCli, tempDir } from './helpers.ts';

const FIXTURE = 'test/cli/fixtures/flush-stall.yaml';

describe('seeds', () => {
  it('are decimal digits from 0 to SEED_MAX', () => {
    expect(parseSeed('--seed', '0')).toBe(0);
    expect(parseSeed('--seed', '007')).toBe(7);
    expect(parseSeed('--seed', String(SEED_MAX))).toBe(2 ** 32 - 1);
  });

  it.each(['0x10', '1e3', '', '-1', '+1', '1.0', '1.', ' 7', '7 ', '4294967296', '99999999999999999999', 'seven', '0b1'])('%j is not a seed', (text) => {
    expect(() => parseSeed('--seed', text)).toThrow(UsageError);
    expect(() => parseSeed('--seed', text)).toThrow(`--seed: ${JSON.stringify(text)} is not a seed (decimal digits, 0 to ${SEED_MAX})`);
  });

  it('--seeds takes A..B, A,B,C or A, with the same syntax for each seed', () => {
    expect(parseSeeds('--seeds', '3..5', 10)).toEqual([3, 4, 5]);
    expect(parseSeeds('--seeds', '9,2', 10)).toEqual([9, 2]);
    expect(parseSeeds('--seeds', `${SEED_MAX - 1}..${SEED_MAX}`, 10)).toEqual([SEED_MAX - 1, SEED_MAX]);
    expect(parseSeedRange('--seeds', '12')).toBeNull();
    expect(parseSeedRange('--seeds', '2..4')).toEqual({ first: 2, last: 4 });
  });

  it.each(['0x1..4', '1..1e3', '1..', '..3', '5..4', '1,,2', '1, 2', '1,1', `0..${SEED_MAX + 1}`, '1..2..3', '1...3'])('--seeds %j is refused', (text) => {
    expect(() => parseSeeds('--seeds', text, 10)).toThrow(UsageError);
  });

  it('--seeds refuses more seeds than the limit', () => {
    expect(() => parseSeeds('--seeds', '1..11', 10)).toThrow('11 seeds, more than 10');
  });
});

describe('integers', () => {
  it('are decimal digits within their range', () => {
    expect(parseInteger('--timeout', '60', 1)).toBe(60);
    for (const bad of ['', '0x10', '1e3', '-1', '1.5', ' 3', '0']) expect(() => parseInteger('--timeout', bad, 1), bad).toThrow(UsageError);
    expect(() => parseInteger('--n', '11', 0, 10)).toThrow('--n: expected an integer from 0 to 10 in decimal digits, got "11"');
  });
});

/** Runs latsim in this process; the mistake must be exit 2 and one line naming it. */
async function refused(args: string[], message: string | RegExp): Promise<void> {
  const r = await runCli(args);
  expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^latsim: /);
  if (typeof message === 'string') expect(lines[0]).toContain(message);
  else expect(lines[0]).toMatch(message);
  expect(r.stdout).toBe('');
}

describe('every command takes seeds the same way', () => {
  const notASeed = (option: string, text: string) => `${option}: ${JSON.stringify(text)} is not a seed`;

  it.each([
    [['run', FIXTURE, '--seed', '0x10'], notASeed('--seed', '0x10')],
    [['run', FIXTURE, '--seed', '1e3'], notASeed('--seed', '1e3')],
    [['run', FIXTURE, '--seed', '4294967296'], notASeed('--seed', '4294967296')],
    [['sweep', FIXTURE, '--seeds', '1..1e3'], notASeed('--seeds', '1e3')],
    [['sweep', FIXTURE, '--seeds', '0x1,2'], notASeed('--seeds', '0x1')],
    [['fuzz', '--seed-start', '0x10', '--seeds', '1'], notASeed('--seed-start', '0x10')],
    [['fuzz', '--seeds', '1..5e1'], notASeed('--seeds', '5e1')],
    [['fuzz', '--seeds', '1e2'], '--seeds: expected an integer >= 1 in decimal digits, got "1e2"'],
    [['fuzz', '--seed-start', String(SEED_MAX), '--seeds', '2'], `seeds go past ${SEED_MAX}`],
    [['bisect', FIXTURE, '--good', 'HEAD~1', '--bad', 'HEAD', '--seed', '-1'], notASeed('--seed', '-1')],
    [['bisect', FIXTURE, '--good', 'HEAD~1', '--bad', 'HEAD', '--timeout', '1e3'], '--timeout: expected an integer'],
    [['bisect-param', FIXTURE, '--param', 'migration.flush_timeout', '--range', '1ms..1s', '--seed', '7.0'], notASeed('--seed', '7.0')],
  ])('%j', async (args, message) => {
    await refused(args as string[], message as string);
  });
});

describe('empty values', () => {
  it.each([
    [['run', FIXTURE, '--trace', ''], '--trace: the value is empty'],
    [['run', FIXTURE, '--report', ''], '--report: the value is empty'],
    [['run', FIXTURE, '--seed', ''], '--seed: the value is empty'],
    [['run', ''], '<scenario>: the argument is empty'],
    [['sweep', FIXTURE, '--report', ''], '--report: the value is empty'],
    [['sweep', FIXTURE, '--format', ''], '--format: the value is empty'],
    [['fuzz', '--out', ''], '--out: the value is empty'],
    [['fuzz', '--time', ''], '--time: the value is empty'],
    [['bisect', FIXTURE, '--good', '', '--bad', 'HEAD'], '--good: the value is empty'],
    [['bisect', FIXTURE, '--good', 'HEAD~1', '--bad', 'HEAD', '--repo', ''], '--repo: the value is empty'],
    [['bisect-param', FIXTURE, '--param', '', '--range', '1ms..1s'], '--param: the value is empty'],
    [['merge', 'a.json', '--format', ''], '--format: the value is empty'],
    [['check', ''], '<files>: the argument is empty'],
    [['real', 'run', FIXTURE, '--trace', ''], '--trace: the value is empty'],
  ])('%j', async (args, message) => {
    await refused(args as string[], message as string);
  });
});

describe('options that exclude each other', () => {
  it.each([
    [['run', FIXTURE, '--update-fingerprint', '--check-fingerprint'], '--update-fingerprint and --check-fingerprint cannot be used together'],
    [['run', FIXTURE, '--update-fingerprint', '--bisect'], '--update-fingerprint and --bisect cannot be used together'],
    [['run', FIXTURE, '--update-fingerprint', '--seed', '8'], '--seed 8 and --update-fingerprint cannot be used together: the fingerprint recorded is that of the scenario\'s own seed, 7'],
    [['run', FIXTURE, '--trace', 'out/x', '--report', 'out/x'], '--trace out/x and --report out/x cannot be used together: the same path'],
    [['run', FIXTURE, '--trace', FIXTURE], `--trace ${FIXTURE}: that is the scenario file`],
    [['sweep', FIXTURE, '--json', '--format', 'csv'], '--json and --format csv cannot be used together'],
    [['merge', 'a.json', '--json', '--format', 'table'], '--json and --format table cannot be used together'],
    [['fuzz', '--seeds', '1..3', '--seed-start', '2'], '--seeds 1..3 and --seed-start cannot be used together'],
    [['sweep', FIXTURE, '--progress', 'sometimes'], '--progress: expected one of auto, lines, none'],
  ])('%j', async (args, message) => {
    await refused(args as string[], message as string);
  });

  it('--json with --format json is only redundant', async () => {
    const r = await runCli(['sweep', FIXTURE, '--json', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).format).toBe('latsim-campaign');
  });

  it('fuzz --seeds A..B is --seed-start A with B-A+1 seeds', async () => {
    const out = tempDir('args-fuzz');
    try {
      const r = await runCli(['fuzz', '--seeds', '40..41', '--out', out.dir, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.campaign).toMatchObject({ seed_start: 40, seeds: 2 });
      expect(j.rows.map((x: { seed: number }) => x.seed)).toEqual([40, 41]);
    } finally {
      out.remove();
    }
  });
});
