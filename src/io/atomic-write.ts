// Writes a file so that no partial output is ever left behind: write a temporary sibling, then
// rename it into place. Failures become one-line DcagenErrors naming the path.

import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DcagenError } from '../errors.js';

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await writeFilesAtomic([{ path, data }]);
}

/** Writes several files all-or-nothing: every temporary is written before any rename. */
export async function writeFilesAtomic(files: ReadonlyArray<{ path: string; data: Uint8Array | string }>): Promise<void> {
  const temps: Array<{ temp: string; path: string }> = [];
  try {
    for (const f of files) {
      const temp = join(dirname(f.path), `.${basename(f.path)}.${randomBytes(6).toString('hex')}.tmp`);
      temps.push({ temp, path: f.path });
      await writeFile(temp, f.data);
    }
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t.temp, { force: true }).catch(() => undefined)));
    const failed = temps[temps.length - 1]?.path ?? '';
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'its folder does not exist' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (code ?? String(err));
    throw new DcagenError(`cannot write ${failed}: ${why}`);
  }
  for (const [n, t] of temps.entries()) {
    try {
      await rename(t.temp, t.path);
    } catch (err) {
      await Promise.all(temps.slice(n).map((r) => rm(r.temp, { force: true }).catch(() => undefined)));
      const code = (err as NodeJS.ErrnoException).code;
      throw new DcagenError(`cannot write ${t.path}: ${code === 'EISDIR' ? 'it is a directory' : (code ?? String(err))}`);
    }
  }
}
