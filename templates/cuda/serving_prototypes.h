
/* ---- Serving: a paged KV cache (num_blocks, block_size, key_heads, head_dim), vLLM / FlashInfer layout ---- */
/** Key splits {{prefix}}_paged_attention will use for this call (negative: a cudaError_t for bad params). */
int {{prefix}}_paged_splits(const dcagen_paged_attention_params* params);
/** Scratch bytes the call needs in params->workspace (0 when it runs as one split). */
long long {{prefix}}_paged_workspace_bytes(const dcagen_paged_attention_params* params);
/** Attention of q over the paged cache on `stream`. Returns 0 or a cudaError_t. */
int {{prefix}}_paged_attention(const dcagen_paged_attention_params* params, void* stream);
/** Writes new keys (rotated at the pattern's key position) and values into the cache through slot_mapping.
    Returns 0, a cudaError_t, or cudaErrorNotSupported for patterns whose regions place keys at their own positions. */
int {{prefix}}_append_to_cache(const dcagen_cache_append_params* params, void* stream);
