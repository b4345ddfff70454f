// The built-in patterns as example pattern files: the very sources under src/patterns/ (bundled as
// text), with their import of the DSL written as a pattern file writes it (from 'dcagen'). Each
// comes with parameter values that make a readable matrix at the default size.

const sources = import.meta.glob<string>('../../src/patterns/*.ts', { query: '?raw', import: 'default', eager: true });

export interface Example {
  /** The pattern's CLI name (also the file's name without .ts, except dca-paper). */
  readonly name: string;
  readonly source: string;
  /** Starting parameter values (the pattern's own defaults win where it has them). */
  readonly params: Readonly<Record<string, number>>;
}

const STARTING_VALUES: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  causal: {},
  dca: { chunkSize: 9, localWindow: 3 },
  'dca-paper': { c: 10, s: 6, w: 4 },
  'self-extend': { groupSize: 4, neighborWindow: 6 },
  rerope: { window: 6 },
  'sliding-window': { window: 5 },
};

function asPatternFile(source: string): string {
  return source.replace(/from\s+(['"])\.\.\/dsl\/pattern\.js\1/g, "from 'dcagen'");
}

export const examples: readonly Example[] = Object.keys(STARTING_VALUES).map((name) => {
  const source = sources[`../../src/patterns/${name}.ts`];
  if (source === undefined) throw new Error(`src/patterns/${name}.ts is not in the playground bundle`);
  return { name, source: asPatternFile(source), params: STARTING_VALUES[name]! };
});
