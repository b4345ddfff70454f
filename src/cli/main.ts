// The `dcagen` command line: dispatches to a command, prints DcagenErrors as one line on stderr
// with their exit code (2 for bad input), and never shows a stack trace for a user error.

import { DcagenError } from '../errors.js';
import { explainCommand, explainHelp } from './commands/explain.js';
import type { CommandIo } from './commands/io.js';
import { runCommand, runHelp } from './commands/run.js';
import { emitCommand, emitHelp } from './commands/emit.js';
import { verifyCommand, verifyHelp } from './commands/verify.js';
import { benchCommand, benchHelp } from './commands/bench.js';
import { generateCommand, generateHelp } from './commands/generate.js';

type Command = (argv: readonly string[], io: CommandIo) => Promise<number>;

const commands: Record<string, { run: Command; usage: string; summary: string }> = {
  explain: { run: explainCommand, usage: explainHelp, summary: 'print the position matrix of a pattern (text, --json, --svg)' },
  run: { run: runCommand, usage: runHelp, summary: 'run attention on .npy inputs with a backend' },
  emit: { run: emitCommand, usage: emitHelp, summary: 'write kernel source and launcher for a pattern' },
  verify: { run: verifyCommand, usage: verifyHelp, summary: 'check a backend against the float64 reference on random cases' },
  bench: { run: benchCommand, usage: benchHelp, summary: 'time fused DCA vs causal vs three-pass' },
  generate: { run: generateCommand, usage: generateHelp, summary: 'rewrite (or --check) the committed canonical kernels in generated/' },
};

function help(): string {
  const lines = [
    'dcagen — fused Dual Chunk Attention (and relatives) for CUDA, WGSL and Metal, checked against a float64 reference',
    '',
    'usage: dcagen <command> [flags]',
    '',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}\n            ${c.usage}`),
    '',
    'patterns: causal, dca (--chunk-size C --local-window W | --pretraining-length c), dca-paper (--c --s --w),',
    '          self-extend (--group-size G --neighbor-window W), rerope (--window W), sliding-window (--window W)',
  ];
  return lines.join('\n');
}

export const processIo: CommandIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  interactive: Boolean(process.stderr.isTTY),
};

export async function main(argv: readonly string[], io: CommandIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(help());
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
  if (rest.includes('--help') || rest.includes('-h')) {
    io.stdout(`usage: ${command.usage}`);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof DcagenError) {
      io.stderr(`dcagen ${name}: ${err.message}`);
      return err.exitCode;
    }
    io.stderr(`dcagen ${name}: internal error: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env['DCAGEN_DEBUG'] && err instanceof Error && err.stack) io.stderr(err.stack);
    return 1;
  }
}
