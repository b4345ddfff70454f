// Reads pattern and RoPE settings from a Hugging Face model config (config.json): Qwen's
// `dual_chunk_attention_config`, `rope_theta`, the head dim and `partial_rotary_factor`.

import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';

export interface HfSettings {
  /** Pattern implied by the config (`dca` when it has dual_chunk_attention_config). */
  readonly pattern?: string;
  /** Pattern parameters by the pattern's hfKey names (chunk_size, local_size, …). */
  readonly patternValues: Readonly<Record<string, number>>;
  readonly ropeTheta?: number;
  readonly headDim?: number;
  readonly rotaryDim?: number;
  readonly originalMaxPosition?: number;
  readonly queryHeads?: number;
  readonly keyHeads?: number;
}

export async function readHfConfig(path: string): Promise<HfSettings> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `--hf-config ${path}: no such file` : `--hf-config ${path}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`--hf-config ${path}: expected a JSON object`);
  const cfg = raw as Record<string, unknown>;
  const num = (obj: Record<string, unknown>, key: string): number | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new UsageError(`--hf-config ${path}: "${key}" must be a number`);
    return v;
  };
  const heads = num(cfg, 'num_attention_heads');
  const hidden = num(cfg, 'hidden_size');
  const headDim = num(cfg, 'head_dim') ?? (hidden !== undefined && heads !== undefined ? hidden / heads : undefined);
  if (headDim !== undefined && !Number.isInteger(headDim)) throw new UsageError(`--hf-config ${path}: head dim ${headDim} is not an integer`);
  const factor = num(cfg, 'partial_rotary_factor');
  const rotaryDim = headDim !== undefined && factor !== undefined ? Math.round(headDim * factor) : undefined;
  const dcaRaw = cfg['dual_chunk_attention_config'];
  const patternValues: Record<string, number> = {};
  let originalMaxPosition: number | undefined;
  if (dcaRaw !== undefined && dcaRaw !== null) {
    if (typeof dcaRaw !== 'object') throw new UsageError(`--hf-config ${path}: dual_chunk_attention_config must be an object`);
    const dcaCfg = dcaRaw as Record<string, unknown>;
    for (const key of ['chunk_size', 'local_size']) {
      const v = num(dcaCfg, key);
      if (v !== undefined) patternValues[key] = v;
    }
    originalMaxPosition = num(dcaCfg, 'original_max_position_embeddings');
  }
  const ropeTheta = num(cfg, 'rope_theta');
  const keyHeads = num(cfg, 'num_key_value_heads');
  return {
    ...(dcaRaw ? { pattern: 'dca' } : {}),
    patternValues,
    ...(ropeTheta !== undefined ? { ropeTheta } : {}),
    ...(headDim !== undefined ? { headDim } : {}),
    ...(rotaryDim !== undefined ? { rotaryDim } : {}),
    ...(originalMaxPosition !== undefined ? { originalMaxPosition } : {}),
    ...(heads !== undefined ? { queryHeads: heads } : {}),
    ...(keyHeads !== undefined ? { keyHeads } : {}),
  };
}
