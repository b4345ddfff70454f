// warp_shuffle.cu: warp-shuffle idioms (butterfly and tree reductions, an
// inclusive scan, a segmented broadcast, a ballot) and a block reduction that
// combines warp totals through shared memory.
#include "ptx_wrappers.cuh"

constexpr unsigned FULL = 0xffffffffu;
constexpr int WS_THREADS = 128;

__global__ void warp_ops(const float* __restrict__ x, float* __restrict__ xor_sum, float* __restrict__ down_sum,
                         float* __restrict__ scan, float* __restrict__ bcast, unsigned* __restrict__ ballot,
                         float* __restrict__ block_sum) {
  __shared__ float warp_total[WS_THREADS / 32];
  const int gid = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int gwarp = gid / 32;
  const float v = x[gid];

  float s = v;  // butterfly: every lane ends with the total
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
  xor_sum[gid] = s;

  float d = v;  // tree: lane 0 ends with the total
  for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(FULL, d, o);
  if (lane == 0) down_sum[gwarp] = d;

  float c = v;  // inclusive prefix sum
  for (int o = 1; o < 32; o <<= 1) {
    float n = __shfl_up_sync(FULL, c, o);
    if (lane >= o) c += n;
  }
  scan[gid] = c;

  bcast[gid] = __shfl_sync(FULL, v, 3, 16);  // lane 3 of each half-warp
  unsigned b = __ballot_sync(FULL, v > 4.0f);
  if (lane == 0) ballot[gwarp] = b;

  if (lane == 0) warp_total[warp] = s;
  __syncthreads();
  if (warp == 0) {
    float t = lane < WS_THREADS / 32 ? warp_total[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) t += __shfl_down_sync(FULL, t, o);
    if (lane == 0) block_sum[blockIdx.x] = t;
  }
}

cudaError_t warp_ops_launch(const float* x, float* xor_sum, float* down_sum, float* scan, float* bcast,
                            unsigned* ballot, float* block_sum, int blocks, cudaStream_t stream) {
  DCAGEN_LAUNCH(warp_ops, blocks, WS_THREADS, 0, stream)(x, xor_sum, down_sum, scan, bcast, ballot, block_sum);
  return cudaGetLastError();
}
