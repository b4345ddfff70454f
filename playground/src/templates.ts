// Gives the compiler core its kernel templates in the browser: every file under templates/, bundled
// as text by Vite (import.meta.glob … ?raw), installed as the core's TemplateSource. templates/ stays
// the one place the skeletons are written; Node reads the same files from disk.

import { useTemplateSource } from '../../src/backends/template.js';

const files = import.meta.glob<string>('../../templates/*/*', { query: '?raw', import: 'default', eager: true });

const byName = new Map(Object.entries(files).map(([path, text]) => [path.replace(/^\.\.\/\.\.\/templates\//, ''), text]));

export function installBundledTemplates(): void {
  useTemplateSource((backend, name) => {
    const text = byName.get(`${backend}/${name}`);
    if (text === undefined) throw new Error(`templates/${backend}/${name} is not in the playground bundle`);
    return text;
  });
}
