// Writing outputs whole (reports/output.ts) and report directories with their
// manifest (reports/write.ts): a file appears complete or not at all, keeps
// its mode and its symbolic link when replaced, a device is written in place
// and stays a device; a failure is an OutputError naming the path, what
// failed and the errno, and leaves no temporary file; a report directory
// writes what it can and its manifest says what is missing.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkWritable, ensureDirectory, OutputError, writeFileAtomic } from '../../reports/output.ts';
import { MANIFEST_FILE, writeReportDirectory, type Manifest } from '../../reports/write.ts';
import { tempDir } from '../cli/helpers.ts';

const tmp = tempDir('write');
afterAll(() => tmp.remove());
const root = process.getuid?.() === 0;

/** The OutputError fn throws. */
function outputError(fn: () => void): OutputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OutputError);
    return e as OutputError;
  }
  throw new Error('did not throw');
}

const leftovers = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.tmp'));

describe('writeFileAtomic', () => {
  it('writes a new file and replaces an old one, keeping its mode', () => {
    const f = join(tmp.dir, 'a.json');
    writeFileAtomic(f, '{"a":1}');
    expect(readFileSync(f, 'utf8')).toBe('{"a":1}');
    chmodSync(f, 0o640);
    writeFileAtomic(f, '{"a":2}');
    expect(readFileSync(f, 'utf8')).toBe('{"a":2}');
    expect(statSync(f).mode & 0o777).toBe(0o640);
    expect(leftovers(tmp.dir)).toEqual([]);
  });

  it('replaces the file a symbolic link points to and keeps the link', () => {
    const target = tmp.file('target.txt', 'old');
    const link = join(tmp.dir, 'link.txt');
    symlinkSync(target, link);
    writeFileAtomic(link, 'new');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(target);
    expect(readFileSync(target, 'utf8')).toBe('new');
  });

  it('writes a device in place: /dev/null stays a device', () => {
    writeFileAtomic('/dev/null', 'nothing');
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
    expect(leftovers('/dev')).toEqual([]);
  });

  it.runIf(existsSync('/dev/full'))('a full device is ENOSPC, with the path and the reason', () => {
    const e = outputError(() => writeFileAtomic('/dev/full', 'x'));
    expect(e.message).toBe('cannot write /dev/full: ENOSPC (no space left on device)');
    expect(e).toMatchObject({ path: '/dev/full', action: 'write', code: 'ENOSPC' });
  });

  it('a directory is EISDIR, a path under a file ENOTDIR, a missing directory ENOENT; no temporary file is left', () => {
    expect(outputError(() => writeFileAtomic(tmp.dir, 'x')).message).toBe(`cannot write ${tmp.dir}: EISDIR (is a directory)`);
    const file = tmp.file('plain', 'x');
    expect(outputError(() => writeFileAtomic(join(file, 'x.json'), 'x')).message).toBe(`cannot write ${file}/x.json: ENOTDIR (not a directory)`);
    expect(outputError(() => writeFileAtomic(join(tmp.dir, 'no', 'x.json'), 'x')).code).toBe('ENOENT');
    expect(leftovers(tmp.dir)).toEqual([]);
  });

  it.skipIf(root)('a read-only directory is EACCES', () => {
    const ro = join(tmp.dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    try {
      expect(outputError(() => writeFileAtomic(join(ro, 'x'), 'x')).code).toBe('EACCES');
      expect(outputError(() => checkWritable(join(ro, 'sub'), 'directory')).code).toBe('EACCES');
    } finally {
      chmodSync(ro, 0o755);
    }
  });
});

describe('ensureDirectory and checkWritable', () => {
  it('a file where a directory should be is ENOTDIR, whether it is the path or a parent', () => {
    const file = tmp.file('not-a-dir', 'x');
    expect(outputError(() => ensureDirectory(file)).message).toBe(`cannot create directory ${file}: ENOTDIR (not a directory)`);
    expect(outputError(() => ensureDirectory(join(file, 'sub'))).code).toBe('ENOTDIR');
    expect(outputError(() => checkWritable(file, 'directory')).code).toBe('ENOTDIR');
    expect(outputError(() => checkWritable(join(file, 'a', 'b'), 'directory')).code).toBe('ENOTDIR');
    expect(outputError(() => checkWritable(tmp.dir, 'file')).code).toBe('EISDIR');
  });

  it('checkWritable creates nothing', () => {
    const d = join(tmp.dir, 'later', 'deeper');
    checkWritable(d, 'directory');
    checkWritable(join(d, 'f.json'), 'file');
    expect(existsSync(join(tmp.dir, 'later'))).toBe(false);
    ensureDirectory(d);
    expect(statSync(d).isDirectory()).toBe(true);
  });
});

describe('writeReportDirectory', () => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as Manifest;

  it('writes every file, then a manifest with their sizes and digests, complete', () => {
    const dir = join(tmp.dir, 'report');
    const files = [{ name: 'a.txt', text: 'alpha\n' }, { name: 'b.json', text: '{"é":1}' }];
    const m = writeReportDirectory(dir, 'run', files);
    expect(m).toEqual(manifest(dir));
    expect(m).toMatchObject({ format: 'latsim-report', version: 1, command: 'run', complete: true, reason: null, failed: [] });
    expect(m.files).toEqual(files.map((f) => ({ name: f.name, bytes: Buffer.byteLength(f.text), sha256: sha(f.text) })));
    for (const f of m.files) expect(sha(readFileSync(join(dir, f.name), 'utf8'))).toBe(f.sha256);
    expect(leftovers(dir)).toEqual([]);
  });

  it('writes what it can when a file fails, says so in the manifest, then throws', () => {
    const dir = join(tmp.dir, 'half');
    mkdirSync(join(dir, 'trace.json'), { recursive: true });
    const e = outputError(() => writeReportDirectory(dir, 'run', [{ name: 'report.txt', text: 'ok\n' }, { name: 'trace.json', text: '{}' }, { name: 'z.html', text: '<p>' }]));
    expect(e.message).toBe(`cannot write ${join(dir, 'trace.json')}: EISDIR (is a directory)`);
    const m = manifest(dir);
    expect(m.complete).toBe(false);
    expect(m.reason).toBe('trace.json could not be written');
    expect(m.files.map((f) => f.name)).toEqual(['report.txt', 'z.html']);
    expect(m.failed).toEqual([{ name: 'trace.json', error: 'EISDIR (is a directory)' }]);
    expect(readFileSync(join(dir, 'z.html'), 'utf8')).toBe('<p>');
  });

  it('a partial content is not complete, whatever was written', () => {
    const dir = join(tmp.dir, 'partial');
    const m = writeReportDirectory(dir, 'sweep', [{ name: 'sweep.json', text: '{}' }], 'interrupted by SIGINT after 3 of 10 runs');
    expect(m).toMatchObject({ complete: false, reason: 'interrupted by SIGINT after 3 of 10 runs', failed: [] });
    expect(m.files).toHaveLength(1);
  });

  it('a directory that cannot be made is one error, and nothing is written', () => {
    const file = tmp.file('in-the-way', 'x');
    expect(outputError(() => writeReportDirectory(file, 'run', [{ name: 'a', text: 'a' }])).message)
      .toBe(`cannot create directory ${file}: ENOTDIR (not a directory)`);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });
});
