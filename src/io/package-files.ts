// The package's own files under Node: where the package root is (templates/, runtime/,
// generated/), the kernel cache folder, and the file-system TemplateSource the compiler core reads
// kernel skeletons through (src/backends/template.ts). Importing this module installs that source,
// so every Node entry point (the library, the CLI, the runners, the tests' setup) imports it.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useTemplateSource } from '../backends/template.js';

let root: string | undefined;

/** The package root (where package.json and templates/ are), from src/ or from dist/src/. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'templates')) || !existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the dcagen package root (templates/ folder)');
    dir = up;
  }
  root = dir;
  return dir;
}

/** Where runtimes keep compiled kernel sets, keyed by content hash (DCAGEN_CACHE overrides). */
export function cacheFolder(): string {
  return process.env['DCAGEN_CACHE'] ?? join(packageRoot(), '.dcagen-cache');
}

/** templates/<backend>/<name> read from disk. */
export function readTemplateFile(backend: string, name: string): string {
  return readFileSync(join(packageRoot(), 'templates', backend, name), 'utf8');
}

useTemplateSource(readTemplateFile);
