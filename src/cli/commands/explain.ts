// `dcagen explain`: prints the position matrix of a pattern (text, JSON) or writes an SVG heatmap.

import { UsageError } from '../../errors.js';
import { formatPositionMatrix, positionMatrix, positionMatrixSvg } from '../../explain/position-matrix.js';
import { writeFileAtomic } from '../../io/atomic-write.js';
import { parseFlags, type FlagSpec } from '../args.js';
import { compileSelectedPattern, patternParamFlags, patternSelectionFlags, selectPattern } from '../pattern-options.js';
import type { CommandIo } from './io.js';

const flags: Record<string, FlagSpec> = {
  ...patternSelectionFlags,
  'seq-len': { kind: 'int', description: 'number of tokens to show (rows and columns)' },
  json: { kind: 'boolean', description: 'print {"relative": [[...]], "region": [[...]]} instead of text' },
  svg: { kind: 'string', description: 'also write an SVG heatmap to FILE' },
};

export const explainHelp = 'dcagen explain --pattern P [params] --seq-len N [--json] [--svg FILE]';

export async function explainCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const selection = await selectPattern(argv);
  const parsed = parseFlags(argv, { ...flags, ...patternParamFlags(selection.definition), 'rope-theta': { kind: 'number', description: 'ignored by explain' } }, 'explain');
  const pattern = compileSelectedPattern(selection, parsed);
  const seqLen = parsed.requireNumber('seq-len');
  if (seqLen < 1 || seqLen > 4096) throw new UsageError(`--seq-len must be between 1 and 4096, got ${seqLen}`);
  const matrix = positionMatrix(pattern, seqLen);
  const svg = parsed.string('svg');
  if (svg !== undefined) await writeFileAtomic(svg, positionMatrixSvg(pattern, matrix));
  io.stdout(parsed.boolean('json') ? JSON.stringify(matrix) : formatPositionMatrix(pattern, matrix));
  return 0;
}
