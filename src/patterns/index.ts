// The built-in pattern registry, by CLI name.
import { UsageError } from '../errors.js';
import type { PatternDefinition } from '../dsl/pattern.js';
import { causal } from './causal.js';
import { dca } from './dca.js';
import { dcaPaper } from './dca-paper.js';
import { rerope } from './rerope.js';
import { selfExtend } from './self-extend.js';
import { slidingWindow } from './sliding-window.js';

export { causal, dca, dcaPaper, rerope, selfExtend, slidingWindow };

export const builtinPatterns: readonly PatternDefinition[] = [causal, dca, dcaPaper, selfExtend, rerope, slidingWindow];

export function builtinPattern(name: string): PatternDefinition {
  const found = builtinPatterns.find((p) => p.name === name);
  if (found === undefined) {
    throw new UsageError(`unknown pattern "${name}"; built-in patterns are ${builtinPatterns.map((p) => p.name).join(', ')} (or --pattern-file FILE.ts)`);
  }
  return found;
}
