#ifndef DCAGEN_ATTENTION_PARAMS_DEFINED
#define DCAGEN_ATTENTION_PARAMS_DEFINED
/** Device pointers, element strides and shapes of one attention call. */
typedef struct dcagen_attention_params {
  const void* q;        /* (batch, queries, query_heads, head_dim), storage type of the kernel */
  const void* k;        /* (batch, keys, key_heads, head_dim) */
  const void* v;        /* (batch, keys, key_heads, head_dim) */
  void* out;            /* like q */
  float* lse;           /* (batch, query_heads, queries), contiguous, natural log */
  const float* rope;    /* RoPE table from *_fill_rope_table, on the device */
  void* partial_out;    /* three-pass kernels only: *_workspace_bytes of scratch, else NULL */
  float* partial_lse;   /* set by the three-pass launcher (it points into partial_out); leave NULL */
  long long q_batch_stride, q_seq_stride, q_head_stride;       /* in elements */
  long long k_batch_stride, k_seq_stride, k_head_stride;
  long long v_batch_stride, v_seq_stride, v_head_stride;
  long long out_batch_stride, out_seq_stride, out_head_stride;
  int batch, queries, keys, query_heads, key_heads;
  float logit_scale;    /* from *_logit_scale: softmax scale × Qwen temperature² */
  void* key_workspace;  /* *_key_workspace_bytes of scratch for keys rotated once per call; NULL: the launcher
                           allocates it stream-ordered per call (cudaMallocAsync); unused when that size is 0 */
} dcagen_attention_params;
#endif
#ifndef DCAGEN_SERVING_PARAMS_DEFINED
#define DCAGEN_SERVING_PARAMS_DEFINED
/** Attention of q over a paged KV cache (vLLM / FlashInfer layout): device pointers, element strides, shapes. */
typedef struct dcagen_paged_attention_params {
  const void* q;            /* (batch, queries, query_heads, head_dim): the last `queries` positions of each sequence */
  const void* k_cache;      /* (num_blocks, block_size, key_heads, head_dim) */
  const void* v_cache;      /* like k_cache */
  const int* block_table;   /* (batch, max_blocks_per_seq) int32: physical block of each logical block */
  const int* seq_lens;      /* (batch,) int32: keys of each sequence, each at least `queries` */
  void* out;                /* like q */
  float* lse;               /* (batch, query_heads, queries), contiguous, natural log */
  const float* rope;        /* RoPE table from *_fill_rope_table for *_max_position(max_seq_len), on the device */
  void* workspace;          /* *_paged_workspace_bytes of scratch; NULL: the stream-ordered pool */
  long long q_batch_stride, q_seq_stride, q_head_stride;        /* in elements */
  long long k_block_stride, k_row_stride, k_head_stride;        /* k_cache */
  long long v_block_stride, v_row_stride, v_head_stride;        /* v_cache */
  long long out_batch_stride, out_seq_stride, out_head_stride;
  long long block_table_stride;   /* elements between rows of block_table */
  int batch, queries, query_heads, key_heads;
  int block_size;           /* keys per cache block: a power of two */
  int max_seq_len;          /* at least every seq_lens entry: how the keys are split */
  int splits;               /* key splits: 0 chooses from the work and the GPU, n > 0 forces n */
  float softmax_scale;      /* <= 0: 1/sqrt(head_dim) */
  int original_max_position;  /* > 0: Qwen temperature s(n), n = seq_lens[b] (see the kernel file) */
  const int* cu_seqlens_q;  /* varlen / chunked prefill: (batch + 1) int32, q packed (total_q, query_heads, head_dim) with
                               sequence b owning rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1 (its last positions);
                               `queries` is then the largest count, out is packed like q, lse (query_heads, total_q).
                               NULL: fixed rows as above */
} dcagen_paged_attention_params;

/** New tokens into a paged KV cache (vLLM's reshape_and_cache): keys rotated once at their key position. */
typedef struct dcagen_cache_append_params {
  const void* key;          /* (tokens, key_heads, head_dim) new keys, not rotated */
  const void* value;        /* (tokens, key_heads, head_dim) */
  void* k_cache;            /* (num_blocks, block_size, key_heads, head_dim) */
  void* v_cache;
  const long long* slot_mapping;  /* (tokens,) block × block_size + row; negative: skip the token (padding) */
  const int* positions;     /* (tokens,) position of each token in its sequence */
  const int* lengths;       /* (tokens,) sequence length n of each token's sequence, for the Qwen key factor; NULL: no factor */
  const float* rope;        /* RoPE table covering every key position written */
  long long key_token_stride, key_head_stride;                  /* in elements */
  long long value_token_stride, value_head_stride;
  long long k_block_stride, k_row_stride, k_head_stride;
  long long v_block_stride, v_row_stride, v_head_stride;
  int tokens, key_heads, num_blocks, block_size;
  int original_max_position;  /* > 0 (with lengths): keys × s(n) = max(1, 0.1 ln(n / original_max_position) + 1) */
} dcagen_cache_append_params;
#endif
