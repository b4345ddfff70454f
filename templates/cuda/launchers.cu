// ---- Host side: RoPE tables, logit scale, launch ----
extern "C" int {{prefix}}_max_position(int keys) {
  return {{maxPosition}};
}

extern "C" long long {{prefix}}_rope_table_floats(int max_position) {
  const long long fine_rows = 1ll << {{ropeFineBits}};
  const long long coarse_rows = (long long)(max_position >> {{ropeFineBits}}) + 1;
  return (fine_rows + coarse_rows) * {{ropePairs}} * 2;
}

extern "C" void {{prefix}}_fill_rope_table(float* table, double theta, int max_position) {
  const int fine_rows = 1 << {{ropeFineBits}};
  const int coarse_rows = (max_position >> {{ropeFineBits}}) + 1;
  for (int row = 0; row < fine_rows + coarse_rows; ++row) {
    const double position = row < fine_rows ? (double)row : (double)(row - fine_rows) * fine_rows;
    for (int k = 0; k < {{ropePairs}}; ++k) {
      const double angle = position * pow(theta, -2.0 * k / {{rotaryDim}});
      table[(row * {{ropePairs}} + k) * 2] = (float)cos(angle);
      table[(row * {{ropePairs}} + k) * 2 + 1] = (float)sin(angle);
    }
  }
}

extern "C" float {{prefix}}_logit_scale(int keys, double scale, int original_max_position) {
  double s = scale > 0 ? scale : 1.0 / sqrt((double){{headDim}});
  if (original_max_position > 0) {
    const double f = fmax(1.0, 0.1 * log((double)keys / original_max_position) + 1.0);
    s *= f * f;
  }
  return (float)s;
}

extern "C" long long {{prefix}}_workspace_bytes(int batch, int queries, int query_heads) {
  return {{workspaceFloats}} * (long long)batch * queries * query_heads * 4;
}

extern "C" int {{prefix}}_launch(const dcagen_attention_params* params, void* stream_handle) {
  using namespace {{namespace}};
  const AttentionParams& p = *params;
  if (p.batch < 1 || p.queries < 1 || p.keys < p.queries || p.key_heads < 1 || p.query_heads % p.key_heads != 0) return (int)cudaErrorInvalidValue;
  cudaStream_t stream = (cudaStream_t)stream_handle;
  const dim3 grid((p.queries + BLOCK_Q - 1) / BLOCK_Q, p.query_heads, p.batch);
  const int smem_bytes = SMEM_ELEMENTS * (int)sizeof({{smemType}});
{{launchBody}}
  return (int)cudaGetLastError();
}
