// Hugging Face config.json: Qwen's dual_chunk_attention_config, rope_theta, head dim and
// partial_rotary_factor; explicit flags override the config (checked in-process through main()).

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { UsageError } from '../src/errors.js';
import { readHfConfig } from '../src/io/hf-config.js';
import { withTempDir } from './helpers/tensors.js';

export const QWEN_CONFIG = fileURLToPath(new URL('./fixtures/hf/qwen2.5-7b-instruct-1m.config.json', import.meta.url));

async function capture(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), interactive: false });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('readHfConfig', () => {
  it('reads a Qwen2.5-7B-Instruct-1M config', async () => {
    expect(await readHfConfig(QWEN_CONFIG)).toEqual({
      pattern: 'dca',
      patternValues: { chunk_size: 262144, local_size: 8192 },
      ropeTheta: 10000000,
      headDim: 128,
      originalMaxPosition: 262144,
      queryHeads: 28,
      keyHeads: 4,
    });
  });

  it('reads head_dim and partial_rotary_factor, and needs no DCA section', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'config.json');
      await writeFile(path, JSON.stringify({ hidden_size: 2048, num_attention_heads: 16, head_dim: 64, partial_rotary_factor: 0.5, rope_theta: 500000 }));
      expect(await readHfConfig(path)).toEqual({ patternValues: {}, ropeTheta: 500000, headDim: 64, rotaryDim: 32, queryHeads: 16 });
    });
  });

  it('reports a missing file, invalid JSON, a non-object, and non-numbers as UsageErrors', async () => {
    await withTempDir(async (dir) => {
      const missing = await rejection(readHfConfig(join(dir, 'none.json')));
      expect(missing).toBeInstanceOf(UsageError);
      expect(missing.message).toBe(`--hf-config ${join(dir, 'none.json')}: no such file`);
      const cases: Array<[string, RegExp]> = [
        ['{"rope_theta": 1e7,', /not valid JSON/],
        ['[1, 2]', /expected a JSON object/],
        ['{"rope_theta": "big"}', /"rope_theta" must be a number/],
        ['{"dual_chunk_attention_config": {"chunk_size": "x"}}', /"chunk_size" must be a number/],
        ['{"dual_chunk_attention_config": 5}', /dual_chunk_attention_config must be an object/],
        ['{"hidden_size": 100, "num_attention_heads": 3}', /head dim 33\.3+\d* is not an integer/],
      ];
      for (const [text, message] of cases) {
        const path = join(dir, 'c.json');
        await writeFile(path, text);
        const err = await rejection(readHfConfig(path));
        expect(err, text).toBeInstanceOf(UsageError);
        expect(err.message, text).toMatch(message);
        expect(err.message).not.toContain('\n');
      }
    });
  });
});

describe('--hf-config on the command line', () => {
  it('selects dca with the Qwen chunk_size and local_size', async () => {
    const r = await capture(['explain', '--hf-config', QWEN_CONFIG, '--seq-len', '3']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('pattern dca (chunkSize=262144 localWindow=8192 chunkLength=253952), 3 tokens: query position − key position, row i = query, column j = key');
  });

  it('explicit flags override the config', async () => {
    const r = await capture(['explain', '--hf-config', QWEN_CONFIG, '--local-window', '3', '--chunk-size', '9', '--seq-len', '12', '--json']);
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout) as { relative: (number | null)[][] };
    expect(m.relative[11]).toEqual([9, 8, 7, 6, 5, 4, 5, 4, 3, 2, 1, 0]);
    const one = await capture(['explain', '--hf-config', QWEN_CONFIG, '--local-window', '0', '--seq-len', '2']);
    expect(one.stdout.split('\n')[0]).toMatch(/^pattern dca \(chunkSize=262144 localWindow=0 chunkLength=262144\)/);
  });

  it('a config value that breaks a constraint is a one-line parameter error', async () => {
    const r = await capture(['explain', '--hf-config', QWEN_CONFIG, '--local-window', '262144', '--seq-len', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('dcagen explain: pattern dca: chunk length L = chunk-size − local-window must be at least 1 (got 262144 − 262144 = 0)');
  });
});
