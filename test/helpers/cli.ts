// Running the `dcagen` command line as a user does (node bin/dcagen.js) and checking the bad-input
// discipline: exit code 2, nothing on stdout, exactly one stderr line naming the problem.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { expect } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'dcagen.js');

export interface CliResult {
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

export async function dcagen(args: readonly string[], cwd = ROOT): Promise<CliResult> {
  const r = await execa('node', [BIN, ...args], { reject: false, cwd, env: { DCAGEN_DEBUG: '' } });
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Exit code 2, nothing on stdout, one stderr line matching `message`, no stack trace. */
export function expectBadInput(r: CliResult, message: RegExp): void {
  expect({ exitCode: r.exitCode, stdout: r.stdout }, r.stderr).toEqual({ exitCode: 2, stdout: '' });
  const lines = r.stderr.split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/^\s*at /m);
  expect(r.stderr).not.toMatch(/internal error|TypeError|ReferenceError|node:internal/);
}
