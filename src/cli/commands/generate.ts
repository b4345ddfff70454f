// `dcagen generate`: rewrites the committed canonical kernels under generated/ (or, with --check,
// lists the files that drifted and exits 1).

import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { packageRoot } from '../../io/package-files.js';
import { canonicalFiles, generatedDrift } from '../../generated.js';
import { writeFilesAtomic } from '../../io/atomic-write.js';
import { parseFlags, type FlagSpec } from '../args.js';
import type { CommandIo } from './io.js';

export const generateFlags: Record<string, FlagSpec> = {
  check: { kind: 'boolean', description: 'write nothing: list the files that differ from the compiler and exit 1 if any' },
};

export async function generateCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlags(argv, generateFlags, 'generate');
  const root = join(packageRoot(), 'generated');
  if (parsed.boolean('check')) {
    const drifted = await generatedDrift(root);
    for (const p of drifted) io.stdout(`drifted: generated/${p}`);
    io.stdout(drifted.length === 0 ? 'generated/ matches the compiler' : `${drifted.length} file(s) drifted: run npx dcagen generate`);
    return drifted.length === 0 ? 0 : 1;
  }
  const files = canonicalFiles();
  for (const dir of new Set(files.map((f) => dirname(join(root, f.path))))) await mkdir(dir, { recursive: true });
  await writeFilesAtomic(files.map((f) => ({ path: join(root, f.path), data: f.contents })));
  io.stdout(`wrote ${files.length} files under generated/`);
  return 0;
}
