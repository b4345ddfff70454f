// `dcagen explain`: prints the position matrix of a pattern (text, JSON) or writes an SVG heatmap.

import { UsageError } from '../../errors.js';
import { formatPositionMatrix, positionMatrix, positionMatrixSvg } from '../../explain/position-matrix.js';
import { writeFileAtomic } from '../../io/atomic-write.js';
import { parseFlags, type FlagSpec } from '../args.js';
import { compileSelectedPattern, patternParamFlags, patternSelectionFlags, selectPattern } from '../pattern-options.js';
import type { CommandIo } from './io.js';

export const explainFlags: Record<string, FlagSpec> = {
  ...patternSelectionFlags,
  'seq-len': { kind: 'int', required: true, description: 'number of tokens to show (rows and columns), 1 to 4096' },
  json: { kind: 'boolean', description: 'print {"relative", "region", "query", "key"} (rows of cells, null where no key is seen) instead of text' },
  svg: { kind: 'string', value: 'FILE', defaultText: 'none', description: 'also write an SVG heatmap to FILE' },
  'rope-theta': { kind: 'number', defaultText: 'none', description: 'accepted and ignored (positions do not depend on θ), so run/emit flags can be reused' },
};

export async function explainCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const selection = await selectPattern(argv);
  const parsed = parseFlags(argv, { ...explainFlags, ...patternParamFlags(selection.definition) }, 'explain');
  const pattern = compileSelectedPattern(selection, parsed);
  const seqLen = parsed.requireNumber('seq-len');
  if (seqLen < 1 || seqLen > 4096) throw new UsageError(`--seq-len must be between 1 and 4096, got ${seqLen}`);
  const matrix = positionMatrix(pattern, seqLen);
  const svg = parsed.string('svg');
  if (svg !== undefined) await writeFileAtomic(svg, positionMatrixSvg(pattern, matrix));
  io.stdout(parsed.boolean('json') ? JSON.stringify(matrix) : formatPositionMatrix(pattern, matrix));
  return 0;
}
