// Kernel skeletons live as text files under templates/<backend>/. A template has holes written
// {{name}}; filling checks that every hole gets a value and every value has a hole, so a renamed
// hole can never silently emit half a kernel.
//
// This module is part of the compiler core, which also runs in a browser (the playground), so it
// does not read files itself: whoever hosts the core installs a TemplateSource once. Under Node
// that is src/io/package-files.ts (templates/ on disk, installed by the library entry, the CLI and
// the tests' setup); the playground installs the same files bundled by Vite. templates/ stays
// the one place the text is written.

import { UnavailableError } from '../errors.js';

/** Returns the text of templates/<backend>/<name>, or throws when there is no such template. */
export type TemplateSource = (backend: string, name: string) => string;

let source: TemplateSource | undefined;
const cache = new Map<string, string>();

/** Installs where templates come from (once per host; a later call replaces it and clears the cache). */
export function useTemplateSource(next: TemplateSource): void {
  source = next;
  cache.clear();
}

export function loadTemplate(backend: string, name: string): string {
  const key = `${backend}/${name}`;
  let text = cache.get(key);
  if (text === undefined) {
    if (source === undefined) {
      throw new UnavailableError(`no template source installed to read templates/${key}: under Node import 'dcagen' (or src/io/package-files.js); elsewhere call useTemplateSource`);
    }
    text = source(backend, name);
    cache.set(key, text);
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
