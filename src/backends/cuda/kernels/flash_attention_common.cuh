// Device pieces of the flash-attention kernels (flash_attention.cu, flash_attention_wgmma.cuh): the PTX wrappers
// (cp.async, ldmatrix, mma.sync), the kernels' argument block, the tile's rows and the per-slot passes over the keys,
// and the online-softmax step on accumulator fragments. Included by flash_attention.cu alone.
#pragma once

#include <climits>
#include <cstdint>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda::flash {

// ---- PTX wrappers ----
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared; with valid false the destination is zero-filled and nothing is read.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c += a · b for a 16×16 A tile (row-major fragments) and a 16×8 B tile, f32 accumulators.
template <class T>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two f32 values as one 32-bit register of two 16-bit values, the lower index in the low half.
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float fast_exp2(float x) {  // exp2(−inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a tile whose rows hold CH chunks (CH ≥ 8): the chunk index
// is XORed with the row's low three bits, so the 8 rows an ldmatrix phase reads fall in distinct banks.
template <int CH>
__device__ __forceinline__ uint32_t swz(int row, int chunk) {
  return static_cast<uint32_t>((row * CH + (chunk ^ (row & 7))) * 16);
}

struct FlashArgs {
  void* out;
  const void *q, *k, *v;
  const int32_t *slot, *position;
  AttentionShape sh;
  float scale_log2;  // log2(e) / sqrt(hd)
  DeviceFault* fault;
};

// ---- pieces both kernels share ----

// The tile's rows into shared memory: slot (−1: no row, or a bad one, reported) and last visible key.
template <int BM, int NT>
__device__ __forceinline__ void load_rows(const FlashArgs& a, int64_t i0, int64_t h, int* row_slot, int* row_lim) {
  const AttentionShape& sh = a.sh;
  for (int r = threadIdx.x; r < BM; r += NT) {
    const int64_t i = i0 + r;
    int sl = -1, lim = -1;
    if (i < sh.N) {
      const int32_t s = a.slot[i], pos = a.position[i];
      if (s < 0 || s >= sh.S) {
        if (h == 0) report_fault(a.fault, FaultCode::AttentionSlot, i, s, sh.S);
      } else if (pos < 0 || pos >= sh.C) {
        if (h == 0) report_fault(a.fault, FaultCode::AttentionPosition, i, pos, sh.C);
      } else {
        sl = s;
        lim = sh.causal ? pos : static_cast<int>(sh.C - 1);
      }
    }
    row_slot[r] = sl;
    row_lim[r] = lim;
  }
}

// One pass over the keys of one slot: the slot, its rows' largest and smallest last visible key, and whether
// every real row of the tile is in it (else the rows of other slots are masked on every key tile).
struct Pass {
  int slot, kmax, kmin;
  bool all;
};
// The pass after slot `done` (passes go by increasing slot); false when none is left. Every thread computes the
// same answer from shared memory.
template <int BM>
__device__ __forceinline__ bool next_pass(const int* row_slot, const int* row_lim, int done, Pass& p) {
  int cur = INT_MAX;
  for (int r = 0; r < BM; ++r) {
    const int sl = row_slot[r];
    if (sl > done && sl < cur) cur = sl;
  }
  if (cur == INT_MAX) return false;
  p = Pass{cur, -1, INT_MAX, true};
  for (int r = 0; r < BM; ++r) {
    const int sl = row_slot[r];
    if (sl == cur) {
      p.kmax = max(p.kmax, row_lim[r]);
      p.kmin = min(p.kmin, row_lim[r]);
    } else if (sl >= 0) {
      p.all = false;
    }
  }
  return true;
}

// The online softmax over one key tile for a thread's two rows (g and g + 8 of an m16 tile): s holds the scores of
// columns 8n + 2·t4 + {0, 1} (e = 0, 1 row g; e = 2, 3 row g + 8), as the mma accumulators hold them. Masks keys
// past each row's limit when `masked`, updates the running max m and this thread's part of the sum l (the quad's
// parts meet at the end), turns s into the probabilities and returns the factor the row's output must be scaled by.
template <int NB>
__device__ __forceinline__ void softmax_tile(float (&s)[NB][4], float (&m)[2], float (&l)[2], float (&corr)[2],
                                             const int (&lim)[2], bool masked, int j0, int t4, float scale_log2) {
  if (masked) {
#pragma unroll
    for (int n = 0; n < NB; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (j0 + n * 8 + 2 * t4 + (e & 1) > lim[e / 2]) s[n][e] = -INFINITY;
  }
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float mx = -INFINITY;
#pragma unroll
    for (int n = 0; n < NB; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * hh], s[n][2 * hh + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(m[hh], mx * scale_log2);
    const float base = m_new == -INFINITY ? 0.f : m_new;  // a row with no visible key yet stays at zero
    corr[hh] = fast_exp2(m[hh] - base);
    m[hh] = m_new;
    float sum = 0.f;
#pragma unroll
    for (int n = 0; n < NB; ++n)
#pragma unroll
      for (int e = 2 * hh; e < 2 * hh + 2; ++e) {
        const float p = fast_exp2(fmaf(s[n][e], scale_log2, -base));
        s[n][e] = p;
        sum += p;
      }
    l[hh] = l[hh] * corr[hh] + sum;
  }
}

// P for keys 16·kb .. 16·kb + 15 as the A fragment of an m16n8k16 product (and of wgmma with A in registers).
template <class T, int NB>
__device__ __forceinline__ void p_fragment(uint32_t (&pf)[4], const float (&s)[NB][4], int kb) {
  pf[0] = pack2<T>(s[2 * kb][0], s[2 * kb][1]);
  pf[1] = pack2<T>(s[2 * kb][2], s[2 * kb][3]);
  pf[2] = pack2<T>(s[2 * kb + 1][0], s[2 * kb + 1][1]);
  pf[3] = pack2<T>(s[2 * kb + 1][2], s[2 * kb + 1][3]);
}

}  // namespace omni::cuda::flash
