// cu_seqlens_q empty: q is (batch, Sq, Hq, D); else (varlen) q is packed (total_q, Hq, D), max_seqlen_q its largest count.
std::vector<torch::Tensor> paged(torch::Tensor q, torch::Tensor k_cache, torch::Tensor v_cache, torch::Tensor block_table,
                                 torch::Tensor seq_lens, torch::Tensor rope, int64_t max_seq_len, int64_t num_splits,
                                 double softmax_scale, int64_t original_max_position, torch::Tensor cu_seqlens_q, int64_t max_seqlen_q) {
  const bool packed = cu_seqlens_q.numel() > 0;
  const at::cuda::OptionalCUDAGuard device_guard(q.device());   // run on q's device, not the current one
  auto out = torch::empty_like(q);
  auto lse = packed ? torch::empty({q.size(1), q.size(0)}, q.options().dtype(torch::kFloat32))
                    : torch::empty({q.size(0), q.size(2), q.size(1)}, q.options().dtype(torch::kFloat32));
  dcagen_paged_attention_params p = {};
  p.q = q.data_ptr(); p.k_cache = k_cache.data_ptr(); p.v_cache = v_cache.data_ptr();
  p.block_table = block_table.data_ptr<int>(); p.seq_lens = seq_lens.data_ptr<int>();
  p.out = out.data_ptr(); p.lse = lse.data_ptr<float>(); p.rope = rope.data_ptr<float>();
  if (packed) {   // rows are tokens: no batch stride
    p.cu_seqlens_q = cu_seqlens_q.data_ptr<int>();
    p.q_seq_stride = q.stride(0); p.q_head_stride = q.stride(1);
    p.out_seq_stride = out.stride(0); p.out_head_stride = out.stride(1);
    p.batch = (int)seq_lens.numel(); p.queries = (int)max_seqlen_q; p.query_heads = q.size(1);
  } else {
    p.q_batch_stride = q.stride(0); p.q_seq_stride = q.stride(1); p.q_head_stride = q.stride(2);
    p.out_batch_stride = out.stride(0); p.out_seq_stride = out.stride(1); p.out_head_stride = out.stride(2);
    p.batch = q.size(0); p.queries = q.size(1); p.query_heads = q.size(2);
  }
  p.k_block_stride = k_cache.stride(0); p.k_row_stride = k_cache.stride(1); p.k_head_stride = k_cache.stride(2);
  p.v_block_stride = v_cache.stride(0); p.v_row_stride = v_cache.stride(1); p.v_head_stride = v_cache.stride(2);
  p.block_table_stride = block_table.stride(0);
  p.key_heads = k_cache.size(2);
  p.block_size = k_cache.size(1); p.max_seq_len = (int)max_seq_len; p.splits = (int)num_splits;
  p.softmax_scale = (float)softmax_scale; p.original_max_position = (int)original_max_position;
  const long long bytes = {{prefix}}_paged_workspace_bytes(&p);
  auto workspace = torch::empty({(int64_t)(bytes > 0 ? bytes / 4 : 0)}, q.options().dtype(torch::kFloat32));
  p.workspace = bytes > 0 ? workspace.data_ptr() : nullptr;
  int rc = {{prefix}}_paged_attention(&p, at::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(rc == 0, "{{prefix}}_paged_attention failed with CUDA error ", rc);
  return {out, lse};
}

void append(torch::Tensor key, torch::Tensor value, torch::Tensor k_cache, torch::Tensor v_cache, torch::Tensor slot_mapping,
            torch::Tensor positions, torch::Tensor lengths, torch::Tensor rope, int64_t original_max_position) {
  const at::cuda::OptionalCUDAGuard device_guard(key.device());   // run on the key's device, not the current one
  dcagen_cache_append_params p = {};
  p.key = key.data_ptr(); p.value = value.data_ptr(); p.k_cache = k_cache.data_ptr(); p.v_cache = v_cache.data_ptr();
  p.slot_mapping = (const long long*)slot_mapping.data_ptr<int64_t>(); p.positions = positions.data_ptr<int>();
  p.lengths = lengths.numel() > 0 ? lengths.data_ptr<int>() : nullptr; p.rope = rope.data_ptr<float>();
  p.key_token_stride = key.stride(0); p.key_head_stride = key.stride(1);
  p.value_token_stride = value.stride(0); p.value_head_stride = value.stride(1);
  p.k_block_stride = k_cache.stride(0); p.k_row_stride = k_cache.stride(1); p.k_head_stride = k_cache.stride(2);
  p.v_block_stride = v_cache.stride(0); p.v_row_stride = v_cache.stride(1); p.v_head_stride = v_cache.stride(2);
  p.tokens = key.size(0); p.key_heads = key.size(1); p.num_blocks = k_cache.size(0); p.block_size = k_cache.size(1);
  p.original_max_position = (int)original_max_position;
  int rc = {{prefix}}_append_to_cache(&p, at::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(rc == 0, "{{prefix}}_append_to_cache failed with CUDA error ", rc);
}
