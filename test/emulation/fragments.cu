// fragments.cu: probes the register layouts of ldmatrix and mma.sync. Each
// lane builds its fragments with the PTX ISA formulas written out literally
// (groupID = lane >> 2, threadID_in_group = lane % 4), so the harness can check
// the emulator's layouts independently of the GEMM, which would also pass if
// ldmatrix and mma were wrong in matching ways.
#include "ptx_wrappers.cuh"

// variant: 0 x1, 1 x2, 2 x4, 3 x1.trans, 4 x2.trans, 5 x4.trans.
// tile[i] = i for a 64 x 16 tile of b16; lane l points its row at tile[offs[l]].
__global__ void ldmatrix_probe(int variant, const int* __restrict__ offs, uint32_t* __restrict__ out) {
  __shared__ __align__(16) uint16_t tile[64 * 16];
  const int lane = threadIdx.x;
  for (int i = lane; i < 64 * 16; i += 32) tile[i] = (uint16_t)i;
  __syncwarp();
  const uint16_t* p = &tile[offs[lane]];
  uint32_t r[4] = {0u, 0u, 0u, 0u};
  switch (variant) {
    case 0: ldsm_x1(r, p); break;
    case 1: ldsm_x2(r, p); break;
    case 2: ldsm_x4(r, p); break;
    case 3: ldsm_x1_trans(r, p); break;
    case 4: ldsm_x2_trans(r, p); break;
    default: ldsm_x4_trans(r, smem_u32(p)); break;
  }
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

__device__ __forceinline__ uint32_t pack16(float lo, float hi, bool bf16) {
  uint32_t l, h;
  if (bf16) {
    l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
    h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
  } else {
    l = __half_as_ushort(__float2half_rn(lo));
    h = __half_as_ushort(__float2half_rn(hi));
  }
  return l | (h << 16);
}

// variant: 0 m16n8k16 f16, 1 m16n8k16 bf16, 2 m16n8k8 f16, 3 m16n8k8 bf16, 4 m16n8k8 tf32.
// A: 16 x 16 row-major (the first K columns used), B: 16 x 8 (k, n), C, D: 16 x 8.
__global__ void mma_probe(int variant, const float* __restrict__ A, const float* __restrict__ B,
                          const float* __restrict__ C, float* __restrict__ D) {
  const int lane = threadIdx.x, groupID = lane >> 2, tig = lane % 4;
  const bool bf16 = variant == 1 || variant == 3;
  uint32_t a[4] = {0u, 0u, 0u, 0u}, b[2] = {0u, 0u};
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) c[i] = C[(i < 2 ? groupID : groupID + 8) * 8 + tig * 2 + (i & 0x1)];
  if (variant <= 1) {
    float ae[8], be[4];
    for (int i = 0; i < 8; ++i) {
      int row = ((0 <= i && i < 2) || (4 <= i && i < 6)) ? groupID : groupID + 8;
      int col = i < 4 ? (tig * 2) + (i & 0x1) : (tig * 2) + (i & 0x1) + 8;
      ae[i] = A[row * 16 + col];
    }
    for (int i = 0; i < 4; ++i) be[i] = B[(i < 2 ? (tig * 2) + (i & 0x1) : (tig * 2) + (i & 0x1) + 8) * 8 + groupID];
    for (int r = 0; r < 4; ++r) a[r] = pack16(ae[2 * r], ae[2 * r + 1], bf16);
    b[0] = pack16(be[0], be[1], bf16);
    b[1] = pack16(be[2], be[3], bf16);
    if (bf16) mma_16816_bf16(d, a, b, c);
    else mma_16816_f16(d, a, b, c);
  } else if (variant <= 3) {
    float ae[4], be[2];
    for (int i = 0; i < 4; ++i) ae[i] = A[(i < 2 ? groupID : groupID + 8) * 16 + tig * 2 + (i & 0x1)];
    for (int i = 0; i < 2; ++i) be[i] = B[(tig * 2 + (i & 0x1)) * 8 + groupID];
    a[0] = pack16(ae[0], ae[1], bf16);
    a[1] = pack16(ae[2], ae[3], bf16);
    b[0] = pack16(be[0], be[1], bf16);
    if (bf16) mma_1688_bf16(d, a, b, c);
    else mma_1688_f16(d, a, b, c);
  } else {
    for (int i = 0; i < 4; ++i) {
      int row = (i == 0 || i == 2) ? groupID : groupID + 8;
      int col = (i == 0 || i == 1) ? tig : tig + 4;
      a[i] = __float_as_uint(A[row * 16 + col]);
    }
    for (int i = 0; i < 2; ++i) b[i] = __float_as_uint(B[(i == 0 ? tig : tig + 4) * 8 + groupID]);
    mma_1688_tf32(d, a, b, c);
  }
  for (int i = 0; i < 4; ++i) D[(i < 2 ? groupID : groupID + 8) * 8 + tig * 2 + (i & 0x1)] = d[i];
}

cudaError_t ldmatrix_probe_launch(int variant, const int* offs, uint32_t* out) {
  DCAGEN_LAUNCH(ldmatrix_probe, 1, 32, 0, 0)(variant, offs, out);
  return cudaGetLastError();
}

cudaError_t mma_probe_launch(int variant, const float* A, const float* B, const float* C, float* D) {
  DCAGEN_LAUNCH(mma_probe, 1, 32, 0, 0)(variant, A, B, C, D);
  return cudaGetLastError();
}
