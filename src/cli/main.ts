// The `dcagen` command line: dispatches to a command, prints DcagenErrors as one line on stderr
// with their exit code (2 for bad input), and never shows a stack trace for a user error.

// Installs the file-system template source the compiler core emits kernels from.
import '../io/package-files.js';
import { DcagenError } from '../errors.js';
import { benchCommand, benchFlags } from './commands/bench.js';
import { emitCommand, emitFlags } from './commands/emit.js';
import { explainCommand, explainFlags } from './commands/explain.js';
import { generateCommand, generateFlags } from './commands/generate.js';
import type { CommandIo } from './commands/io.js';
import { runCommand, runFlags } from './commands/run.js';
import { verifyCommand, verifyFlags } from './commands/verify.js';
import { commandHelp, mainHelp, type CommandEntry } from './help.js';
import { selectPattern } from './pattern-options.js';

/** Every command, its flag table and its summary (the help and the tests read it). */
export const commands: Readonly<Record<string, CommandEntry>> = {
  explain: { run: explainCommand, flags: explainFlags, patternParams: true, summary: 'print the position matrix of a pattern (text, --json, --svg)' },
  run: { run: runCommand, flags: runFlags, patternParams: true, summary: 'run attention on .npy inputs with a backend' },
  emit: { run: emitCommand, flags: emitFlags, patternParams: true, summary: 'write kernel source and launcher for a pattern' },
  verify: { run: verifyCommand, flags: verifyFlags, patternParams: false, summary: 'check a backend against the float64 reference on random cases' },
  bench: { run: benchCommand, flags: benchFlags, patternParams: false, summary: 'time fused DCA vs causal vs three-pass' },
  generate: { run: generateCommand, flags: generateFlags, patternParams: false, summary: 'rewrite (or --check) the committed canonical kernels in generated/' },
};

export const processIo: CommandIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  interactive: Boolean(process.stderr.isTTY),
};

export async function main(argv: readonly string[], io: CommandIo = processIo): Promise<number> {
  const [first, ...afterFirst] = argv;
  // `dcagen help emit …` is `dcagen emit … --help`.
  const [name, ...rest] = first === 'help' && afterFirst[0] !== undefined && !afterFirst[0].startsWith('-') ? [afterFirst[0], ...afterFirst.slice(1), '--help'] : argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(mainHelp(commands));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    io.stdout('dcagen 0.1.0');
    return 0;
  }
  const command = commands[name];
  if (command === undefined) {
    io.stderr(`dcagen: unknown command "${name}" (commands: ${Object.keys(commands).join(', ')})`);
    return 2;
  }
  try {
    if (rest.includes('--help') || rest.includes('-h')) {
      // With --pattern or --pattern-file, the help lists that pattern's parameters too.
      const named = command.patternParams && rest.some((a) => /^--pattern(-file)?(=|$)/.test(a));
      io.stdout(commandHelp(name, command, named ? (await selectPattern(rest)).definition : undefined));
      return 0;
    }
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof DcagenError) {
      io.stderr(`dcagen ${name}: ${oneLine(err.message)}`);
      return err.exitCode;
    }
    io.stderr(`dcagen ${name}: internal error: ${oneLine(err instanceof Error ? err.message : String(err))}`);
    if (process.env['DCAGEN_DEBUG'] && err instanceof Error && err.stack) io.stderr(err.stack);
    return 1;
  }
}

/**
 * An error message as one line: messages may quote user text (a parameter description, a path),
 * and a line break in it would split the one line a user (or a script) reads.
 */
export function oneLine(message: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\v': '\\v', '\f': '\\f' };
  return message.replace(/[\n\r\v\f\u0085\u2028\u2029]/g, (c) => named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
