
/* ---- Serving: a paged KV cache (num_blocks, block_size, key_heads, head_dim), vLLM / FlashInfer layout ---- */
/** Key splits {{prefix}}_paged_attention will use for this call (negative: a cudaError_t for bad params). */
int {{prefix}}_paged_splits(const dcagen_paged_attention_params* params);
/** Scratch bytes the call needs in params->workspace (0 when it runs as one split). */
long long {{prefix}}_paged_workspace_bytes(const dcagen_paged_attention_params* params);
/** Attention of q over the paged cache on `stream`. With several splits and params->workspace NULL, scratch comes
    from the device's stream-ordered pool. Returns 0 or a cudaError_t. */
int {{prefix}}_paged_attention(const dcagen_paged_attention_params* params, void* stream);
/** Writes new keys (rotated at the pattern's key position) and values into the cache through slot_mapping.
    Returns 0, a cudaError_t, or cudaErrorNotSupported for patterns whose regions place keys at their own positions. */
int {{prefix}}_append_to_cache(const dcagen_cache_append_params* params, void* stream);
/* ---- Split-K decode of contiguous K/V: *_launch runs it for calls of at most 16 queries ---- */
/** Key splits {{prefix}}_decode uses for this call (splits 0: chosen from the work; n > 0: n); 0 when the call
    has more than 16 queries ({{prefix}}_launch runs the prefill kernel); negative: a cudaError_t for bad params. */
int {{prefix}}_decode_splits(const dcagen_attention_params* params, int splits);
/** Scratch bytes {{prefix}}_decode needs in `workspace` for these splits (0 with one split). */
long long {{prefix}}_decode_workspace_bytes(const dcagen_attention_params* params, int splits);
/** Split-K decode of q (at most 16 queries) over contiguous k, v on `stream`; params as for {{prefix}}_launch.
    workspace NULL: scratch comes from the device's stream-ordered pool. Returns 0 or a cudaError_t. */
int {{prefix}}_decode(const dcagen_attention_params* params, int splits, void* workspace, void* stream);
