// Writing output files so that a reader never sees half of one: a file is
// written to a temporary name in its own directory, flushed, and renamed over
// the target once complete. A failure is an OutputError naming the path, what
// failed and the errno, as `cannot write /dev/full: ENOSPC (no space left on
// device)`, and leaves no temporary file behind. A target that exists and is
// not a regular file (/dev/stdout, a FIFO, a device) is written in place:
// renaming onto it would replace the device node. A symbolic link to a file
// keeps the link; the file it points to is replaced.
// Leaves out: what goes in the files (the renderers) and report directories
// with their manifest (reports/write.ts).
import { randomBytes } from 'node:crypto';
import { accessSync, constants, closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { getSystemErrorMap } from 'node:util';

/** An output that could not be written: one line, `cannot <action> <path>: <CODE> (<reason>)`. */
export class OutputError extends Error {
  constructor(readonly path: string, readonly action: string, readonly code: string, readonly reason: string) {
    super(`cannot ${action} ${path}: ${code} (${reason})`);
    this.name = 'OutputError';
  }

  /** The OutputError of a failed system call; anything that is not one is rethrown as it is. */
  static of(path: string, action: string, e: unknown): OutputError {
    if (e instanceof OutputError) return e;
    const err = e as NodeJS.ErrnoException;
    if (typeof err?.code !== 'string' || !/^E[A-Z0-9]+$/.test(err.code)) throw e;
    const known = typeof err.errno === 'number' ? getSystemErrorMap().get(err.errno) : undefined;
    const reason = known?.[1] ?? err.message;
    return new OutputError(path, action, err.code, reason);
  }
}

function statOrNull(path: string, action = 'write'): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw OutputError.of(path, action, e);
  }
}

/** Creates a directory and its parents (nothing if it exists). */
export function ensureDirectory(dir: string): void {
  const notDir = () => new OutputError(dir, 'create directory', 'ENOTDIR', 'not a directory');
  const before = statOrNull(dir, 'create directory');
  if (before && !before.isDirectory()) throw notDir();
  if (before) return;
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw notDir();
    throw OutputError.of(dir, 'create directory', e);
  }
}

/**
 * Checks, without creating anything, that a file or directory could be
 * written at `path`: for long campaigns, which should not find out at the end.
 * Throws the OutputError the write would meet (ENOTDIR, EISDIR, EACCES, ...).
 */
export function checkWritable(path: string, kind: 'file' | 'directory'): void {
  const action = kind === 'file' ? 'write' : 'create directory';
  const st = statOrNull(path, action);
  if (st) {
    if (kind === 'directory' && !st.isDirectory()) throw new OutputError(path, action, 'ENOTDIR', 'not a directory');
    if (kind === 'file' && st.isDirectory()) throw new OutputError(path, action, 'EISDIR', 'is a directory');
    if (kind === 'file' && !st.isFile()) return;
  }
  // The nearest directory that exists must take new entries.
  let dir = st?.isDirectory() ? path : dirname(path);
  let d = statOrNull(dir, action);
  while (!d && dirname(dir) !== dir) {
    dir = dirname(dir);
    d = statOrNull(dir, action);
  }
  if (d && !d.isDirectory()) throw new OutputError(path, action, 'ENOTDIR', 'not a directory');
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw OutputError.of(path, action, e);
  }
}

/** The temporary name a file is written under before it is renamed to `target`. */
export function temporaryName(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes a whole file under a temporary name and renames it into place; throws an OutputError. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const st = statOrNull(path);
  if (st?.isDirectory()) throw new OutputError(path, 'write', 'EISDIR', 'is a directory');
  if (st && !st.isFile()) {
    try {
      writeFileSync(path, data);
    } catch (e) {
      throw OutputError.of(path, 'write', e);
    }
    return;
  }
  const target = st ? realpathSync(path) : path;
  const tmp = temporaryName(target);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx', 0o666);
    writeFileSync(fd, data);
    // Replacing a file keeps its permissions.
    if (st) fchmodSync(fd, st.mode & 0o7777);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, target);
  } catch (e) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // Already failing; the first error is the one to report.
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // Never created, or already renamed.
    }
    throw OutputError.of(path, 'write', e);
  }
}

/** One OutputError as it is, several as an AggregateError of them; nothing for none. */
export function throwOutputErrors(errors: readonly OutputError[]): void {
  if (errors.length === 1) throw errors[0]!;
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('\n'));
}
