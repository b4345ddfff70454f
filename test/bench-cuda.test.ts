// The GPU benchmark's parts that run without a GPU: its Python parses; the DCA regions and position
// remaps the FlexAttention baseline uses (bench/dca_regions.py) agree with dcagen's own pattern
// definition pair by pair; the goal judging and repeat choice (bench/bench_report.py) behave; the
// shell entry point refuses to start without the prepared files.
import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { compilePattern, owningRegion } from '../src/dsl/instantiate.js';
import { builtinPattern } from '../src/patterns/index.js';

const bench = join(import.meta.dirname, '..', 'bench');
// No __pycache__ left in bench/.
const env = { PYTHONDONTWRITEBYTECODE: '1' };

async function python(code: string, input?: unknown): Promise<unknown> {
  const r = await execa('python3', ['-c', code], { cwd: bench, env, reject: false, all: true, ...(input !== undefined ? { input: JSON.stringify(input) } : {}) });
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout);
}

describe('bench/ Python without a GPU', () => {
  it('every script compiles (py_compile)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-pyc-'));
    for (const file of ['cuda_h200.py', 'cuda_h200_decode.py', 'dca_regions.py', 'bench_report.py']) {
      const r = await execa('python3', ['-c', 'import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)', join(bench, file), join(dir, `${file}c`)], { env, reject: false, all: true });
      expect(r.exitCode, `${file}: ${r.all}`).toBe(0);
    }
  });

  it.each([[9, 3, 30], [40, 9, 130], [3072, 512, 0]] as const)('dca_regions.py matches the dca pattern (C %i, W %i): region, query and key position of every pair', async (chunkSize, localWindow, n) => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize, localWindow });
    const p = pattern.params;
    // Small configurations: every causal pair below n. Llama-2's: pairs around the chunk boundaries (L = 2560).
    const pairs: [number, number][] = [];
    if (n > 0) {
      for (let i = 0; i < n; ++i) for (let j = 0; j <= i; ++j) pairs.push([i, j]);
    } else {
      const around = [0, 1, 2558, 2559, 2560, 2561, 5119, 5120, 5121, 7679, 7680, 12800, 131071];
      for (const i of around) for (const j of around) if (j <= i) pairs.push([i, j]);
    }
    const got = await python([
      'import json, sys',
      'from dca_regions import DcaConfig',
      `cfg = DcaConfig(${chunkSize}, ${localWindow})`,
      'out = []',
      'for i, j in json.load(sys.stdin):',
      '    r = cfg.region_of(i, j)',
      '    out.append([r, cfg.query_position(r, i), cfg.key_position(j)])',
      'print(json.dumps(out))',
    ].join('\n'), pairs) as [string, number, number][];
    pairs.forEach(([i, j], k) => {
      const region = owningRegion(pattern, i, j)!;
      expect(got[k], `(${i}, ${j})`).toEqual([region.name, region.definition.queryPosition(i, p), pattern.definition.keyPosition!(j, p)]);
    });
  });

  it('dca_regions.py refuses W >= C and regions it does not know', async () => {
    const r = await execa('python3', ['-c', 'from dca_regions import DcaConfig\nDcaConfig(8, 8)'], { cwd: bench, env, reject: false, all: true });
    expect(r.all).toMatch(/ValueError: chunk length C - W must be at least 1, got 8 - 8/);
    const unknown = await execa('python3', ['-c', 'from dca_regions import DcaConfig\nDcaConfig(9, 3).query_position("middle", 4)'], { cwd: bench, env, reject: false, all: true });
    expect(unknown.all).toMatch(/ValueError: unknown region 'middle'/);
  });

  it('bench_report.py judges the goals time for time, says "not measured" for missing peers, and sizes repeats', async () => {
    const got = await python([
      'import json',
      'from bench_report import *',
      'times = {4096: {FUSED: 1.0, CAUSAL: 0.98, SDPA_FLASH: 1.2, THREE_PASS: 2.0},',
      '         131072: {FUSED: 100.0, CAUSAL: 90.0, THREE_PASS: 140.0}}',
      'rows = [[n, s, None if r is None else round(r, 4), v] for n, s, r, v in judge(times)]',
      'print(json.dumps({"rows": rows, "md": goals_markdown(times), "rep": [repeats_for(x) for x in (0.5, 150.0, 1e4, 0.0)],',
      '                  "tflops": round(causal_tflops(4096, 1.0), 3)}))',
    ].join('\n')) as { rows: [string, number, number | null, string][]; md: string; rep: number[]; tflops: number };
    expect(got.rows).toEqual([
      ['DCA at least as fast as SDPA flash causal', 4096, 1.2, 'met (>= 1.0)'],
      ['DCA at least as fast as SDPA flash causal', 131072, null, 'not measured'],
      ['DCA within 3% of our causal', 4096, 1.0204, 'met (<= 1.03)'],
      ['DCA within 3% of our causal', 131072, 1.1111, 'MISSED (<= 1.03)'],
      ['fused at least 1.5x faster than three-pass at 128k', 131072, 1.4, 'MISSED (>= 1.5)'],
    ]);
    expect(got.md.split('\n')[0]).toBe('| goal | Sq = Sk | ratio | verdict |');
    expect(got.rep).toEqual([20, 20, 3, 3]);
    expect(got.tflops).toBeCloseTo((4 * 4096 * 4096 * 128 * 32) / 2 / 1e-3 / 1e12, 3);
  });

  it('cuda-h200.sh exits 2 with one line when the prepared files are missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-bench-'));
    await cp(join(bench, 'cuda-h200.sh'), join(dir, 'bench', 'cuda-h200.sh'));
    const r = await execa('bash', [join(dir, 'bench', 'cuda-h200.sh')], { reject: false, all: true, env: { OUT: join(dir, 'out') } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^bench\/out\/cuda\/manifest\.json missing: run node bench\/prepare-cuda\.mjs first/);
  });
});
