


# ---- Serving: a paged KV cache in vLLM's layout ----
# key_cache, value_cache: (num_blocks, block_size, key_heads, HEAD_DIM) DTYPE arrays; block_table int32
# (batch, max_blocks): logical block b of sequence s is physical block block_table[s, b]; seq_lens int32
# (batch,). Keys in the cache are {{cacheKeys}}.
KEYS_PRE_ROTATED = {{keysPreRotated}}
CACHE_APPEND = {{hasCacheAppend}}
SIMD_WIDTH = 32
# Calls with at most DECODE_MAX_QUERIES queries run the split-K decode kernel (DECODE_MAX_ROWS rows per
# threadgroup at most; 0: no decode kernel); the key splits aim at about TARGET_THREADGROUPS
# threadgroups with at least MIN_SPLIT_KEYS keys each. The same rules as dcagen's runner.
DECODE_MAX_QUERIES = {{decodeMaxQueries}}
DECODE_MAX_ROWS = {{decodeMaxRows}}
TARGET_THREADGROUPS = {{targetThreadgroups}}
MIN_SPLIT_KEYS = {{minSplitKeys}}

# `params` of the serving kernels: the int32 fields of AppendParams / PagedParams / DecodeParams, float
# fields as bits.
_APPEND_PARAMS = "    const " + NAMESPACE + "::AppendParams p = {params[0], params[1], params[2], params[3]};\n"
_PAGED_PARAMS = ("    const " + NAMESPACE + "::PagedParams p = {params[0], params[1], params[2], params[3], params[4], params[5],"
                 " as_type<float>(params[6]), params[7], params[8], params[9], params[10], params[11]};\n")
_DECODE_PARAMS = ("    const " + NAMESPACE + "::DecodeParams p = {{params[0], params[1], params[2], params[3], params[4],"
                  " as_type<float>(params[5])}, params[6], params[7], params[8]};\n")
# cu_seqlens_q is read only when the call packs its query rows (PagedParams.total_queries > 0).
_PAGED_INPUTS = ["q", "k_cache", "v_cache", "rope", "params", "block_table", "seq_lens", "cu_seqlens_q"]
_DECODE_IDS = "threadgroup_position_in_grid, thread_index_in_simdgroup, simdgroup_index_in_threadgroup"


def serving_kernel_sources():
    """{label: (input names, output names, body)} of the serving kernels this set has."""
    ns = NAMESPACE + "::"
    sources = {
        "paged_prefill": (_PAGED_INPUTS, ["out", "lse"], _THREADGROUP + _PAGED_PARAMS + "    " + ns
                          + "paged_prefill(q, k_cache, v_cache, (device const float2*)rope, p, out, lse, block_table, seq_lens,"
                          " cu_seqlens_q, tg, " + _IDS + ");\n"),
    }
    if DECODE_MAX_ROWS > 0:
        decode_tg = "    threadgroup float tg[" + ns + "DECODE_TG_FLOATS];\n"
        sources["paged_decode"] = (
            _PAGED_INPUTS, ["out", "lse", "partials"],
            decode_tg + _PAGED_PARAMS + "    " + ns
            + "paged_decode(q, k_cache, v_cache, (device const float2*)rope, p, out, lse, partials, block_table, seq_lens,"
            " cu_seqlens_q, tg, " + _DECODE_IDS + ");\n")
        sources["paged_merge"] = (
            ["partials", "params", "seq_lens", "cu_seqlens_q"], ["out", "lse"],
            _PAGED_PARAMS + "    " + ns + "paged_merge(partials, p, out, lse, seq_lens, cu_seqlens_q, threadgroup_position_in_grid,"
            " thread_index_in_threadgroup);\n")
        # The same split-K decode over contiguous keys (the attention function routes few query rows here).
        sources["decode"] = (
            ["q", "k", "v", "rope", "params"], ["out", "lse", "partials"],
            decode_tg + _DECODE_PARAMS + "    " + ns
            + "contiguous_decode(q, k, v, (device const float2*)rope, p, out, lse, partials, tg, " + _DECODE_IDS + ");\n")
        sources["decode_merge"] = (
            ["partials", "params"], ["out", "lse"],
            _DECODE_PARAMS + "    " + ns + "contiguous_decode_merge(partials, p, out, lse, threadgroup_position_in_grid,"
            " thread_index_in_threadgroup);\n")
    if CACHE_APPEND:
        sources["rotate_new_keys"] = (
            ["k", "positions", "lengths", "rope", "params"], ["rotated"],
            _APPEND_PARAMS + "    " + ns + "rotate_new_keys(k, positions, lengths, (device const float2*)rope, p, rotated,"
            " threadgroup_position_in_grid, thread_index_in_simdgroup);\n")
    return sources


def _serving_kernel(label):
    kernel = _kernels.get(label)
    if kernel is None:
        inputs, outputs, body = serving_kernel_sources()[label]
        with open(os.path.join(_HERE, "{{fileName}}")) as f:
            header = f.read()
        kernel = mx.fast.metal_kernel(name=NAMESPACE + "_mlx_" + label, input_names=inputs, output_names=outputs,
                                      source=body, header=header)
        _kernels[label] = kernel
    return kernel


def append_to_cache(key, value, key_cache, value_cache, slot_mapping, positions, *, {{keywordParams}}rope_theta=10000.0,
                    seq_lens=None, original_max_position=None):
    """New tokens into the paged cache, as vLLM's reshape_and_cache(key, value, key_cache, value_cache,
    slot_mapping) plus the rotation: key t is rotated once at the pattern's key position of positions[t]
    (and multiplied by Qwen's s(seq_lens[t]) when original_max_position is given), value t is copied, both
    into slot slot_mapping[t] = block * block_size + row; negative slots are padding. key, value:
    (tokens, key_heads, {{headDim}}); slot_mapping, positions, seq_lens: (tokens,) integers. MLX arrays are
    values, so this returns the updated (key_cache, value_cache).
    """
{{paramChecks}}
    if not CACHE_APPEND:
        raise ValueError(f"pattern {PATTERN} cannot use a rotated KV cache: a region places keys at its own position")
    tokens, key_heads = key.shape[0], key.shape[1]
    if key.shape != value.shape or key.ndim != 3 or key.shape[2] != HEAD_DIM or key.dtype != DTYPE:
        raise ValueError(f"key and value must be (tokens, key_heads, {HEAD_DIM}) {DTYPE} arrays, got {tuple(key.shape)}, {tuple(value.shape)}")
    if key_cache.shape != value_cache.shape or key_cache.ndim != 4 or key_cache.shape[2:] != (key_heads, HEAD_DIM):
        raise ValueError(f"caches must be (num_blocks, block_size, {key_heads}, {HEAD_DIM}), got {tuple(key_cache.shape)}, {tuple(value_cache.shape)}")
    if original_max_position and seq_lens is None:
        raise ValueError("Qwen's key factor (original_max_position) needs seq_lens, the sequence length of every token")
    slots_host = np.array(slot_mapping, dtype=np.int64).reshape(-1)
    positions_host = np.array(positions, dtype=np.int64).reshape(-1)
    num_slots = key_cache.shape[0] * key_cache.shape[1]
    if slots_host.shape[0] != tokens or positions_host.shape[0] != tokens or slots_host.max(initial=-1) >= num_slots:
        raise ValueError(f"slot_mapping and positions need one entry per token, slots below {num_slots}")
    keep = np.nonzero(slots_host >= 0)[0]
    if keep.size == 0:
        return key_cache, value_cache
    # Key positions never exceed the sequence position, so the table up to the largest position covers them.
    rope = rope_table(rope_theta, POSITION_LIMIT if POSITION_LIMIT is not None else int(positions_host.max()))
    lengths = mx.array(np.zeros(tokens, dtype=np.int32) if seq_lens is None else np.array(seq_lens, dtype=np.int32).reshape(-1))
    params = mx.array([tokens, key_heads, num_slots, int(original_max_position or 0)], dtype=mx.int32)
    rotated = _serving_kernel("rotate_new_keys")(
        inputs=[key, mx.array(positions_host.astype(np.int32)), lengths, rope, params],
        output_shapes=[key.shape], output_dtypes=[key.dtype],
        grid=(tokens * SIMD_WIDTH, key_heads, 1), threadgroup=(SIMD_WIDTH, 1, 1),
    )[0]
    rows = mx.array(keep.astype(np.int32))
    slots = mx.array(slots_host[keep].astype(np.int32))
    k_flat = key_cache.reshape(num_slots, key_heads, HEAD_DIM)
    v_flat = value_cache.reshape(num_slots, key_heads, HEAD_DIM)
    k_flat[slots] = rotated[rows]
    v_flat[slots] = value[rows]
    return k_flat.reshape(key_cache.shape), v_flat.reshape(value_cache.shape)


def _decode_plan(batch, queries, query_heads, key_heads, max_keys, splits):
    """(splits, group_rows, row_blocks) of a split-K decode call: the rows of one KV head (its query heads x
    the queries), group_rows (a power of two) per threadgroup; splits as given, else about
    TARGET_THREADGROUPS threadgroups of at least MIN_SPLIT_KEYS keys; never more splits than keys."""
    kv_rows = query_heads // key_heads * queries
    group_rows = 1
    while group_rows < kv_rows and group_rows < DECODE_MAX_ROWS:
        group_rows *= 2
    row_blocks = -(-kv_rows // group_rows)
    if splits is None:
        threadgroups = row_blocks * key_heads * batch
        wanted = 1 if threadgroups >= TARGET_THREADGROUPS else -(-TARGET_THREADGROUPS // threadgroups)
        splits = max(1, min(wanted, max_keys // MIN_SPLIT_KEYS))
    if int(splits) < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    return min(int(splits), max_keys), group_rows, row_blocks


def _decode_launch(splits, group_rows, row_blocks, key_heads, batch):
    return dict(grid=(splits * SIMD_WIDTH * group_rows, key_heads * row_blocks, batch), threadgroup=(SIMD_WIDTH * group_rows, 1, 1))


def decode_attention(q, k, v, rope, attention_params, splits=None):
    """Split-K decode over contiguous keys, for calls with few query rows (the attention function routes
    them here): attention_params are the six int32 AttentionParams words (logit_scale as bits)."""
    batch, queries, query_heads, _ = q.shape
    keys, key_heads = k.shape[1], k.shape[2]
    splits, group_rows, row_blocks = _decode_plan(batch, queries, query_heads, key_heads, keys, splits)
    params = mx.array(list(attention_params) + [splits, -(-keys // splits), group_rows], dtype=mx.int32)
    shapes = [q.shape, (batch, query_heads, queries)]
    partial_floats = splits * batch * queries * query_heads * (HEAD_DIM + 1) if splits > 1 else 1
    out, lse, partials = _serving_kernel("decode")(
        inputs=[q, k, v, rope, params], output_shapes=shapes + [(partial_floats,)], output_dtypes=[q.dtype, mx.float32, mx.float32],
        **_decode_launch(splits, group_rows, row_blocks, key_heads, batch))
    if splits == 1:
        return out, lse
    row_launch = dict(grid=(-(-queries // BLOCK_Q) * THREADS, query_heads, batch), threadgroup=(THREADS, 1, 1))
    return _serving_kernel("decode_merge")(inputs=[partials, params], output_shapes=shapes,
                                           output_dtypes=[q.dtype, mx.float32], **row_launch)


def paged_attention(q, key_cache, value_cache, block_table, seq_lens, *, {{keywordParams}}rope_theta=10000.0, scale=None,
                    original_max_position=None, splits=None, cu_seqlens_q=None):
    """Attention of q (B, Sq, Hq, {{headDim}}), the last Sq positions of every sequence, over the paged cache, with
    flash_attn_with_kvcache's conventions (cache_seqlens = seq_lens, block_table, softmax_scale = scale).
    Returns (out like q, lse (B, Hq, Sq) float32, natural log). original_max_position enables Qwen's
    temperature: logits x scale x s(n), n = seq_lens[b]; raw keys also get s(n). splits forces the number
    of key splits of the decode kernel (calls with at most DECODE_MAX_QUERIES queries per sequence).
    Chunked prefill / varlen (flash_attn_varlen_func's convention): with cu_seqlens_q (B + 1,) integers,
    q is packed (total_q, Hq, {{headDim}}), sequence b owning rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1
    (its last positions); out is packed like q and lse is (Hq, total_q).
    """
{{paramChecks}}
    packed = cu_seqlens_q is not None
    if q.ndim != (3 if packed else 4) or q.shape[-1] != HEAD_DIM or q.dtype != DTYPE or key_cache.dtype != DTYPE or value_cache.dtype != DTYPE:
        raise ValueError(f"q ({'total_q' if packed else 'B, Sq'}, Hq, {HEAD_DIM}) and the caches must be {DTYPE} arrays")
    query_heads = q.shape[-2]
    num_blocks, block_size, key_heads = key_cache.shape[0], key_cache.shape[1], key_cache.shape[2]
    max_blocks = block_table.shape[1]
    lens = np.array(seq_lens, dtype=np.int64).reshape(-1)
    table = np.array(block_table, dtype=np.int64)
    batch = lens.shape[0]
    if packed:
        cu = np.array(cu_seqlens_q, dtype=np.int64).reshape(-1)
        counts = np.diff(cu)
        if cu.shape[0] != batch + 1 or cu[0] != 0 or cu[-1] != q.shape[0] or q.shape[0] < 1 or counts.min(initial=0) < 0:
            raise ValueError(f"cu_seqlens_q must rise from 0 to the {q.shape[0]} packed query rows, one entry more than seq_lens")
        queries, total_queries = int(counts.max()), int(cu[-1])
    else:
        if q.shape[0] != batch:
            raise ValueError(f"q has batch {q.shape[0]} but seq_lens has {batch} entries")
        queries, total_queries = q.shape[1], 0
        counts = np.full(batch, queries)
    if key_cache.shape != value_cache.shape or key_cache.shape[3] != HEAD_DIM or query_heads % key_heads != 0:
        raise ValueError(f"incompatible shapes q {tuple(q.shape)}, caches {tuple(key_cache.shape)}, {tuple(value_cache.shape)}")
    if table.shape[0] != batch or (lens < counts).any() or lens.max() > max_blocks * block_size:
        raise ValueError(f"block_table needs one row per sequence, every length in [its queries, {max_blocks * block_size}]")
    for b in range(batch):
        used = table[b, : -(-int(lens[b]) // block_size)]
        if used.min() < 0 or used.max() >= num_blocks:
            raise ValueError(f"block_table row {b} names blocks outside the cache's {num_blocks}")
    max_keys = int(lens.max())
    rope = rope_table(rope_theta, POSITION_LIMIT if POSITION_LIMIT is not None else max_keys - 1)
    decode = DECODE_MAX_ROWS > 0 and queries <= DECODE_MAX_QUERIES
    if decode:
        splits, group_rows, row_blocks = _decode_plan(batch, queries, query_heads, key_heads, max_keys, splits)
    else:
        if splits not in (None, 1):
            raise ValueError("the paged prefill kernel does not split keys")
        splits, group_rows, row_blocks = 1, 0, 0
    softmax_scale = scale if scale is not None else 1.0 / math.sqrt(HEAD_DIM)
    scale_bits = int(np.array([softmax_scale], dtype=np.float32).view(np.int32)[0])
    params = mx.array([batch, queries, query_heads, key_heads, block_size, max_blocks, scale_bits,
                       int(original_max_position or 0), splits, -(-max_keys // splits), group_rows, total_queries], dtype=mx.int32)
    lens_array = mx.array(lens.astype(np.int32))
    cu_array = mx.array(cu.astype(np.int32)) if packed else lens_array  # read by the kernels only when packed
    inputs = [q, key_cache, value_cache, rope, params, block_table.astype(mx.int32), lens_array, cu_array]
    shapes = [q.shape, (query_heads, total_queries) if packed else (batch, query_heads, queries)]
    row_launch = dict(grid=(-(-queries // BLOCK_Q) * THREADS, query_heads, batch), threadgroup=(THREADS, 1, 1))
    if not decode:
        out, lse = _serving_kernel("paged_prefill")(inputs=inputs, output_shapes=shapes, output_dtypes=[q.dtype, mx.float32], **row_launch)
        return out, lse
    # Partials: one slot per split of every (sequence, query, head) the grid covers; packed rows fit in them.
    partial_floats = splits * batch * queries * query_heads * (HEAD_DIM + 1) if splits > 1 else 1
    out, lse, partials = _serving_kernel("paged_decode")(
        inputs=inputs, output_shapes=shapes + [(partial_floats,)], output_dtypes=[q.dtype, mx.float32, mx.float32],
        **_decode_launch(splits, group_rows, row_blocks, key_heads, batch))
    if splits == 1:
        return out, lse
    out, lse = _serving_kernel("paged_merge")(inputs=[partials, params, lens_array, cu_array], output_shapes=shapes,
                                              output_dtypes=[q.dtype, mx.float32], **row_launch)
    return out, lse
