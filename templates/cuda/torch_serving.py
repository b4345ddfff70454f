

def _check_cache(name, t):
    if t.dim() != 4 or t.size(-1) != HEAD_DIM or t.dtype != DTYPE or not t.is_cuda or t.stride(-1) != 1:
        raise ValueError(f"{name} must be a (num_blocks, block_size, key_heads, {HEAD_DIM}) {DTYPE} CUDA tensor, contiguous in its last dimension; got {tuple(t.shape)} {t.dtype}")


def append_to_cache(key, value, k_cache, v_cache, slot_mapping, positions, *, {{keywordParams}}lengths=None, original_max_position=None, rope_theta=10000.0):
    """Writes new tokens into a paged KV cache, in place (vLLM's reshape_and_cache conventions).

    key, value: (num_tokens, key_heads, {{headDim}}) {{torchDtype}}; k_cache, v_cache: (num_blocks, block_size,
    key_heads, {{headDim}}); slot_mapping: (num_tokens,) integer, block * block_size + row, negative for padding
    tokens (skipped); positions: (num_tokens,) each token's position in its sequence. Keys are rotated
    once, at the pattern's key position of their token, so paged_attention of a pre-rotated kernel set
    reads them as they are. With original_max_position, lengths gives each token's sequence length n and
    keys are multiplied by Qwen's factor s(n) = max(1, 0.1 ln(n / original_max_position) + 1).
    """
{{paramChecks}}
    if not APPEND_SUPPORTED:
        raise ValueError(f"pattern {PATTERN} places keys at a region's own position: its keys cannot be stored rotated once")
    for name, t in (("key", key), ("value", value)):
        if t.dim() != 3 or t.size(-1) != HEAD_DIM or t.dtype != DTYPE or not t.is_cuda or t.stride(-1) != 1:
            raise ValueError(f"{name} must be a (num_tokens, key_heads, {HEAD_DIM}) {DTYPE} CUDA tensor, got {tuple(t.shape)} {t.dtype}")
    _check_cache("k_cache", k_cache)
    _check_cache("v_cache", v_cache)
    if key.shape != value.shape or k_cache.shape != v_cache.shape or key.size(1) != k_cache.size(2):
        raise ValueError(f"incompatible shapes key {tuple(key.shape)}, value {tuple(value.shape)}, k_cache {tuple(k_cache.shape)}, v_cache {tuple(v_cache.shape)}")
    tokens = key.size(0)
    slot_mapping = slot_mapping.to(device=key.device, dtype=torch.int64).contiguous()
    positions = positions.to(device=key.device, dtype=torch.int32).contiguous()
    if slot_mapping.numel() != tokens or positions.numel() != tokens:
        raise ValueError(f"slot_mapping and positions need one entry per token ({tokens})")
    if original_max_position:
        if lengths is None:
            raise ValueError("original_max_position (Qwen's key factor) needs lengths, each token's sequence length")
        lengths = lengths.to(device=key.device, dtype=torch.int32).contiguous()
    else:
        lengths = torch.empty(0, dtype=torch.int32, device=key.device)
    if tokens == 0:
        return
    max_position = POSITION_LIMIT if POSITION_LIMIT is not None else int(positions.max()) + 1
    _build().append(key, value, k_cache, v_cache, slot_mapping, positions, lengths,
                    rope_table(rope_theta, max_position, key.device), int(original_max_position or 0))


def paged_attention(q, k_cache, v_cache, block_table, seq_lens, *, {{keywordParams}}softmax_scale=None, num_splits=0,
                    return_softmax_lse=False, max_seq_len=None, original_max_position=None, rope_theta=10000.0,
                    cu_seqlens_q=None, max_seqlen_q=None):
    """Attention of q over a paged KV cache (flash_attn_with_kvcache's names where they apply).

    q: (batch, Sq, Hq, {{headDim}}), the last Sq positions of every sequence; k_cache, v_cache: (num_blocks,
    block_size, Hk, {{headDim}}) with block_size a power of two; block_table: (batch, max_blocks) int32,
    physical block of each logical block; seq_lens: (batch,) int32, keys of each sequence (>= its queries).
    Keys in the cache are {{cacheKeys}}. num_splits: 0 lets the
    launcher split keys across thread blocks from the work, n > 0 forces n. max_seq_len: an upper bound
    of seq_lens (default block_table.size(1) * block_size, which needs no device read). With
    original_max_position, logits get Qwen's temperature s(n) per sequence, n = seq_lens[b]{{qwenNote}}.
    Returns out like q, and lse (batch, Hq, Sq) float32 when return_softmax_lse.

    Chunked prefill / varlen (flash_attn_varlen_func's convention): cu_seqlens_q (batch + 1,) int32 packs q
    as (total_q, Hq, {{headDim}}), sequence b owning rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1, its last
    positions; max_seqlen_q is the largest count (default: read from cu_seqlens_q, a device sync). out is
    packed like q, lse (Hq, total_q).
    """
{{paramChecks}}
    packed = cu_seqlens_q is not None
    rank = 3 if packed else 4
    if q.dim() != rank or q.size(-1) != HEAD_DIM or q.dtype != DTYPE or not q.is_cuda or q.stride(-1) != 1:
        shape = "(total_q, Hq, D)" if packed else "(batch, Sq, Hq, D)"
        raise ValueError(f"q must be a {shape} {DTYPE} CUDA tensor with head dim {HEAD_DIM}, got {tuple(q.shape)} {q.dtype}")
    _check_cache("k_cache", k_cache)
    _check_cache("v_cache", v_cache)
    block_size = k_cache.size(1)
    if k_cache.shape != v_cache.shape or q.size(-2) % k_cache.size(2) != 0 or block_size & (block_size - 1) != 0:
        raise ValueError(f"incompatible shapes q {tuple(q.shape)}, k_cache {tuple(k_cache.shape)}, v_cache {tuple(v_cache.shape)} (block_size must be a power of two)")
    block_table = block_table.to(device=q.device, dtype=torch.int32)
    seq_lens = seq_lens.to(device=q.device, dtype=torch.int32).contiguous()
    batch = block_table.size(0)
    if block_table.dim() != 2 or (not packed and batch != q.size(0)) or block_table.stride(-1) != 1 or seq_lens.numel() != batch:
        raise ValueError(f"block_table must be (batch, max_blocks) and seq_lens (batch,), got {tuple(block_table.shape)} and {tuple(seq_lens.shape)}")
    if packed:
        cu_seqlens_q = cu_seqlens_q.to(device=q.device, dtype=torch.int32).contiguous()
        if cu_seqlens_q.numel() != batch + 1:
            raise ValueError(f"cu_seqlens_q must have batch + 1 = {batch + 1} entries, got {cu_seqlens_q.numel()}")
        if max_seqlen_q is None:
            max_seqlen_q = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max())
        if max_seqlen_q < 1:
            raise ValueError("max_seqlen_q must be at least 1")
    else:
        cu_seqlens_q = torch.empty(0, dtype=torch.int32, device=q.device)
        max_seqlen_q = 0
    if max_seq_len is None:
        max_seq_len = block_table.size(1) * block_size
    max_position = POSITION_LIMIT if POSITION_LIMIT is not None else max_seq_len - 1
    out, lse = _build().paged(q, k_cache, v_cache, block_table, seq_lens, rope_table(rope_theta, max_position, q.device),
                              int(max_seq_len), int(num_splits), float(softmax_scale or 0.0), int(original_max_position or 0),
                              cu_seqlens_q, int(max_seqlen_q))
    return (out, lse) if return_softmax_lse else out
