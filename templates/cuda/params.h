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
} dcagen_attention_params;
#endif
