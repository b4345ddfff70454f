// Every region places key j at the same position, Region_{{keyRegion}}'s: where the cache stores it.
inline int cache_key_position(int j) { return Region_{{keyRegion}}::key_position(j); }

// New tokens into the paged cache (vLLM's reshape_and_cache): key t rotated once at
// cache_key_position(positions[t]) and multiplied by s(lengths[t]) when p.original_max_position > 0,
// value t copied, both into slot slot_mapping[t] = block × block_size + row. A negative slot skips the
// token (padding); slots past the cache are skipped too (hosts refuse them first). Grid
// (tokens, key_heads, 1) × SIMD_WIDTH threads; k, v (tokens, key_heads, HEAD_DIM).
inline void cache_append(device const storage_t* k, device const storage_t* v, device const int* positions,
                         device const int* slot_mapping, device const int* lengths, device const float2* rope,
                         const AppendParams p, device storage_t* k_cache, device storage_t* v_cache, uint3 group,
                         uint lane) {
  const int token = int(group.x);
  const int head = int(group.y);
  const int slot = slot_mapping[token];
  if (slot < 0 || slot >= p.slots) return;
  const long src = (long(token) * p.key_heads + head) * HEAD_DIM;
  const long dst = (long(slot) * p.key_heads + head) * HEAD_DIM;
  const float factor = p.original_max_position > 0 ? qwen_factor(lengths[token], p.original_max_position) : 1.0f;
  write_rotated_key(k + src, cache_key_position(positions[token]), factor, rope, k_cache + dst, lane);
  for (int d = int(lane); d < HEAD_DIM; d += SIMD_WIDTH) v_cache[dst + d] = v[src + d];
}

// The same keys into `rotated` (tokens, key_heads, HEAD_DIM) instead of the cache, for hosts whose
// kernels cannot write into an existing buffer (MLX); the host scatters them and the values. Same grid.
inline void rotate_new_keys(device const storage_t* k, device const int* positions, device const int* lengths,
                            device const float2* rope, const AppendParams p, device storage_t* rotated, uint3 group,
                            uint lane) {
  const int token = int(group.x);
  const long at = (long(token) * p.key_heads + int(group.y)) * HEAD_DIM;
  const float factor = p.original_max_position > 0 ? qwen_factor(lengths[token], p.original_max_position) : 1.0f;
  write_rotated_key(k + at, cache_key_position(positions[token]), factor, rope, rotated + at, lane);
}
