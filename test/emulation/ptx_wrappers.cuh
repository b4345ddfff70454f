// ptx_wrappers.cuh: the PTX wrappers of the emulator's test kernels, in the
// form dcagen's emitted .cu files use: inline asm on the GPU, the dcagen_emu::
// equivalent when compiled with -DDCAGEN_EMULATE (runtime/emulation/).
#pragma once

#ifndef DCAGEN_EMULATE
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>
#define DCAGEN_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define DCAGEN_DYNAMIC_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

__device__ __forceinline__ unsigned smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16
__device__ __forceinline__ void ldsm_x1(uint32_t* r, const void* p) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x1(r, p);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(smem_u32(p)));
#endif
}
__device__ __forceinline__ void ldsm_x2(uint32_t* r, const void* p) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x2(r, p);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_u32(p)));
#endif
}
__device__ __forceinline__ void ldsm_x4(uint32_t* r, const void* p) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x4(r, p);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
#endif
}
__device__ __forceinline__ void ldsm_x1_trans(uint32_t* r, const void* p) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x1_trans(r, p);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(smem_u32(p)));
#endif
}
__device__ __forceinline__ void ldsm_x2_trans(uint32_t* r, const void* p) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x2_trans(r, p);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_u32(p)));
#endif
}
// Takes a 32-bit shared address, the other form the emulator accepts.
__device__ __forceinline__ void ldsm_x4_trans(uint32_t* r, unsigned smem_addr) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x4_trans(r, smem_addr);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
#endif
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32
__device__ __forceinline__ void mma_16816_f16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::mma_m16n8k16_f32_f16(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}
__device__ __forceinline__ void mma_16816_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::mma_m16n8k16_f32_bf16(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}
// mma.sync.aligned.m16n8k8.row.col.f32.{f16,bf16,tf32}...f32
__device__ __forceinline__ void mma_1688_f16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::mma_m16n8k8_f32_f16(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}
__device__ __forceinline__ void mma_1688_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::mma_m16n8k8_f32_bf16(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}
__device__ __forceinline__ void mma_1688_tf32(float* d, const uint32_t* a, const uint32_t* b, const float* c) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::mma_m16n8k8_f32_tf32(d, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#endif
}

// cp.async.cg.shared.global [dst], [src], 16, src_bytes (zero-fills the rest)
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes = 16) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::cp_async_cg_16(smem, gmem, src_bytes);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem), "r"(src_bytes));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef DCAGEN_EMULATE
  dcagen_emu::cp_async_commit_group();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef DCAGEN_EMULATE
  dcagen_emu::cp_async_wait_group(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
