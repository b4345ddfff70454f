// Kernel skeletons live as text files under templates/<backend>/. A template has holes written
// {{name}}; filling checks that every hole gets a value and every value has a hole, so a renamed
// hole can never silently emit half a kernel.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

const cache = new Map<string, string>();

export function loadTemplate(backend: string, name: string): string {
  const path = join(packageRoot(), 'templates', backend, name);
  let text = cache.get(path);
  if (text === undefined) {
    text = readFileSync(path, 'utf8');
    cache.set(path, text);
  }
  return text;
}

export function fillTemplate(text: string, values: Readonly<Record<string, string | number>>, label: string): string {
  const used = new Set<string>();
  const filled = text.replace(/\{\{([A-Za-z0-9_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template ${label}: no value for hole {{${name}}}`);
    used.add(name);
    return String(value);
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) throw new Error(`template ${label}: values without a hole: ${unused.join(', ')}`);
  return filled;
}

export function renderTemplate(backend: string, name: string, values: Readonly<Record<string, string | number>>): string {
  return fillTemplate(loadTemplate(backend, name), values, `${backend}/${name}`);
}
