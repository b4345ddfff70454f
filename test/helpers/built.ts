// The compiled package (dist/), rebuilt when src/ is newer. Pattern files import 'dcagen', which
// the loader points at the package's compiled index.js: tests that load pattern files in-process
// use the modules from dist/ (the spawned CLI uses them too).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export function ensureBuilt(): void {
  const built = join(ROOT, 'dist', 'src', 'index.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
}

/** A module of the compiled package, e.g. builtModule('src/cli/main.js'). */
export async function builtModule<T>(path: string): Promise<T> {
  ensureBuilt();
  return (await import(pathToFileURL(join(ROOT, 'dist', path)).href)) as T;
}
