// The wgmma flash-attention kernel (sm_90a), included by flash_attention.cu alone.
//
// One warpgroup (4 warps) per 64 query rows, NWG of them per block sharing the K/V tiles. S = Q·Kᵀ is one chain
// of wgmma m64nBNk16 with both operands in shared memory; P stays in registers (the accumulator layout of S is
// the register-operand layout of the next product) and O += P·V is wgmma m64nHDk16 with A from registers and V
// read transposed from shared memory. Tiles are stored in the 128-byte-swizzle layout the descriptors name:
// 64-element column blocks of 128-byte rows, 16-byte chunk c of row r at chunk c ^ (r % 8), blocks 1024-aligned.
// cp.async writes them (the generic proxy), so each thread fences the async proxy before the barrier that
// publishes a tile to the tensor cores. Rows, passes and the softmax are flash_attention_common.cuh's, as in the
// mma.sync kernel.
#pragma once

#include <type_traits>

#include "backends/cuda/kernels/flash_attention_common.cuh"

namespace omni::cuda::flash {

__device__ __forceinline__ uint64_t wgmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32) | (uint64_t{1} << 62);  // 128-byte swizzle
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void wgmma_wait_all() { wgmma_wait<0>(); }
__device__ __forceinline__ void fence_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Pins a register's value to this point: accumulators (and register operands) of an asynchronous wgmma must not be
// read (or reused) by code the compiler moves above the wait.
__device__ __forceinline__ void pin(float& x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void pin(uint32_t& x) { asm volatile("" : "+r"(x)::"memory"); }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The wgmma instructions, one macro per shape and operand source (TY: "bf16" or "f16"). The accumulators d are
// N/2 f32 registers per thread; scale-d goes through a predicate (0: d is overwritten, not accumulated).
#define OMNI_WGMMA_SS_64(TY)                                                                                    \
  asm volatile(                                                                                                 \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                              \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " {"                                              \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                  \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                          \
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"                                                                        \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])  \
      : "l"(da), "l"(db), "r"(scale_d))
#define OMNI_WGMMA_RS_64(TY)                                                                                    \
  asm volatile(                                                                                                 \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                              \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " {"                                              \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                  \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                          \
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                                          \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))
#define OMNI_WGMMA_SS_128(TY)                                                                                   \
  asm volatile(                                                                                                 \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                              \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {"                                             \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                  \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                        \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                        \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"                          \
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"                                                                        \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])  \
      : "l"(da), "l"(db), "r"(scale_d))
#define OMNI_WGMMA_RS_128(TY)                                                                                   \
  asm volatile(                                                                                                 \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                                              \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {"                                             \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                  \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                        \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                        \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"                          \
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                                          \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),         \
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),   \
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))
#endif

// d[N/2] (+)= A·B: A 64×16 and B 16×N both from shared memory (K-major), d zeroed first unless scale_d.
template <class T, int N>
__device__ __forceinline__ void wgmma_ss(float* d, uint64_t da, uint64_t db, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr bool bf = std::is_same_v<T, __nv_bfloat16>;
  if constexpr (N == 64 && bf) OMNI_WGMMA_SS_64("bf16");
  else if constexpr (N == 64) OMNI_WGMMA_SS_64("f16");
  else if constexpr (N == 128 && bf) OMNI_WGMMA_SS_128("bf16");
  else OMNI_WGMMA_SS_128("f16");
#else
  __trap();
#endif
}
// d[N/2] += A·B: A 64×16 from registers (a), B 16×N from shared memory, MN-major (transposed).
template <class T, int N>
__device__ __forceinline__ void wgmma_rs(float* d, const uint32_t (&a)[4], uint64_t db) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr bool bf = std::is_same_v<T, __nv_bfloat16>;
  if constexpr (N == 64 && bf) OMNI_WGMMA_RS_64("bf16");
  else if constexpr (N == 64) OMNI_WGMMA_RS_64("f16");
  else if constexpr (N == 128 && bf) OMNI_WGMMA_RS_128("bf16");
  else OMNI_WGMMA_RS_128("f16");
#else
  __trap();
#endif
}

// Byte offset of 16-byte chunk c of row r in a [HD/64][ROWS][64] tile in the 128-byte-swizzle layout.
template <int ROWS>
__device__ __forceinline__ uint32_t sw128(int r, int c) {
  return static_cast<uint32_t>((c >> 3) * (ROWS * 128) + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

template <int HD, int BN, int NWG, bool PIPE>
struct WgmmaConfig {
  static constexpr int kBM = 64 * NWG;
  static constexpr int kThreads = 128 * NWG;
  static constexpr int kStages = PIPE ? 3 : 2;  // K/V tiles in shared memory
  static constexpr int kQBytes = kBM * HD * 2;
  static constexpr int kKVBytes = BN * HD * 2;
  static constexpr int kSmem = 1024 + kQBytes + 2 * kStages * kKVBytes + 2 * kBM * 4;  // + 1024: aligning the base
};

// NWG warpgroups per block, MINB blocks per multiprocessor (2 caps the registers at 128 a thread: four warpgroups
// per multiprocessor then hide one another's softmax behind their products). PIPE: each warpgroup issues the
// products of key tile kt (S) and kt − 1 (O += P·V) together and runs tile kt's softmax while the second one
// computes, over three K/V stages (the FlashAttention-3 schedule within a warpgroup).
template <class T, int HD, int BN, int NWG, int MINB, bool PIPE>
__global__ void __launch_bounds__(NWG * 128, MINB) flash_attention_wgmma_kernel(FlashArgs a) {
  using Cfg = WgmmaConfig<HD, BN, NWG, PIPE>;
  constexpr int ST = Cfg::kStages;
  constexpr int BM = Cfg::kBM, NT = Cfg::kThreads, CH = HD / 8;
  constexpr int NB = BN / 8, DT = HD / 8;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t raw = smem_addr(smem_raw);
  unsigned char* base = smem_raw + ((1024 - (raw & 1023)) & 1023);  // the swizzle needs 1024-byte blocks
  unsigned char* q_s = base;
  int* row_slot = reinterpret_cast<int*>(base + Cfg::kQBytes + 2 * ST * Cfg::kKVBytes);
  int* row_lim = row_slot + BM;
  const uint32_t q_base = smem_addr(q_s), kv_base = q_base + Cfg::kQBytes;  // K stages, then V stages

  const AttentionShape& sh = a.sh;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, wg = warp / 4;
  const int64_t tile = sh.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int64_t i0 = tile * BM, h = blockIdx.y, hk = h / (sh.Hq / sh.Hkv);
  const T* q = static_cast<const T*>(a.q);
  const T* kg = static_cast<const T*>(a.k);
  const T* vg = static_cast<const T*>(a.v);

  load_rows<BM, NT>(a, i0, h, row_slot, row_lim);
  for (int c = tid; c < BM * CH; c += NT) {
    const int r = c / CH, ch = c % CH;
    const int64_t i = i0 + r;
    const bool ok = i < sh.N;
    cp_async16(q_base + sw128<BM>(r, ch), q + ((ok ? i : 0) * sh.Hq + h) * HD + ch * 8, ok);
  }
  cp_async_commit();

  const int g = lane / 4, t4 = lane % 4;
  float o[DT][4], s[NB][4];
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int d = 0; d < DT; ++d)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[d][e] = 0.f;
#pragma unroll
  for (int n = 0; n < NB; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = 0.f;
  cp_async_wait<0>();
  __syncthreads();  // row_slot / row_lim; Q is published with the first key tile's fence and barrier

  const int64_t kv_stride = sh.Hkv * HD;
  // V is read MN-major (the head dim contiguous): LBO steps between its 64-column blocks, SBO between 8-key groups
  // (the other order reads garbage: measured).
  constexpr uint32_t v_lbo = BN * 128, v_sbo = 1024;
  Pass ps;
  for (int done = -1; next_pass<BM>(row_slot, row_lim, done, ps); done = ps.slot) {
    int lim[2];
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp * 16 + g + hh * 8;
      lim[hh] = row_slot[r] == ps.slot ? row_lim[r] : -1;
    }
    const T* k0 = kg + (static_cast<int64_t>(ps.slot) * sh.C * sh.Hkv + hk) * HD;
    const T* v0 = vg + (static_cast<int64_t>(ps.slot) * sh.C * sh.Hkv + hk) * HD;
    const int tiles = ps.kmax / BN + 1, kmax = ps.kmax;
    const auto k_stage = [&](int st) { return kv_base + st * Cfg::kKVBytes; };
    const auto v_stage = [&](int st) { return kv_base + (ST + st) * Cfg::kKVBytes; };
    auto load_kv = [&](int kt, int stage) {
      const uint32_t kb = k_stage(stage), vb = v_stage(stage);
      for (int c = tid; c < BN * CH; c += NT) {
        const int r = c / CH, ch = c % CH;
        const int j = kt * BN + r;
        const bool ok = j <= kmax;
        const int64_t off = (ok ? j : 0) * kv_stride + ch * 8;
        cp_async16(kb + sw128<BN>(r, ch), k0 + off, ok);
        cp_async16(vb + sw128<BN>(r, ch), v0 + off, ok);
      }
    };
    // S = Q · Kᵀ: HD/16 wgmma steps along the head dim (32 bytes each inside a 128-byte row). Not waited for.
    const auto issue_s = [&](uint32_t kb) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        const uint32_t qa = q_base + (kk / 4) * (BM * 128) + wg * (64 * 128) + (kk % 4) * 32;
        const uint32_t ka = kb + (kk / 4) * (BN * 128) + (kk % 4) * 32;
        wgmma_ss<T, BN>(&s[0][0], wgmma_desc(qa, 16, 1024), wgmma_desc(ka, 16, 1024), kk > 0);
      }
      wgmma_commit();
    };
    // O += P · V: BN/16 wgmma steps along the keys (16 rows of V each). Not waited for.
    const auto issue_pv = [&](const uint32_t (&pf)[BN / 16][4], uint32_t vb) {
#pragma unroll
      for (int kb16 = 0; kb16 < BN / 16; ++kb16)
        wgmma_rs<T, HD>(&o[0][0], pf[kb16], wgmma_desc(vb + kb16 * 16 * 128, v_lbo, v_sbo));
      wgmma_commit();
    };
    load_kv(0, 0);
    cp_async_commit();
    if constexpr (PIPE) {
      uint32_t pf[BN / 16][4];  // P of the previous tile, read by its P·V product while this tile's softmax runs
      const auto pin_s = [&] {
#pragma unroll
        for (int n = 0; n < NB; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) pin(s[n][e]);
      };
      const auto pin_o_pf = [&] {
#pragma unroll
        for (int d = 0; d < DT; ++d)
#pragma unroll
          for (int e = 0; e < 4; ++e) pin(o[d][e]);
#pragma unroll
        for (int kb16 = 0; kb16 < BN / 16; ++kb16)
#pragma unroll
          for (int e = 0; e < 4; ++e) pin(pf[kb16][e]);
      };
      // Tile kt arrives: publish it and, every warpgroup being past tile kt − 2's products, refill that stage.
      const auto next_tile = [&](int kt) {
        cp_async_wait<0>();
        fence_async_smem();
        __syncthreads();
        if (kt + 1 < tiles) {
          load_kv(kt + 1, (kt + 1) % ST);
          cp_async_commit();
        }
      };
      // After S of tile kt (and the previous P·V) completed: O rescaled, P into pf.
      const auto finish = [&](const float (&corr)[2]) {
#pragma unroll
        for (int kb16 = 0; kb16 < BN / 16; ++kb16) p_fragment<T, NB>(pf[kb16], s, kb16);
#pragma unroll
        for (int d = 0; d < DT; ++d)
#pragma unroll
          for (int e = 0; e < 4; ++e) o[d][e] *= corr[e / 2];
      };
      float corr[2];
      next_tile(0);
      wgmma_fence();
      issue_s(k_stage(0));
      wgmma_wait<0>();
      pin_s();
      softmax_tile<NB>(s, m, l, corr, lim, !ps.all || BN - 1 > ps.kmin, 0, t4, a.scale_log2);
      finish(corr);
      for (int kt = 1; kt < tiles; ++kt) {
        next_tile(kt);
        wgmma_fence();
        issue_s(k_stage(kt % ST));
        issue_pv(pf, v_stage((kt - 1) % ST));
        wgmma_wait<1>();  // S done; P·V runs on under the softmax
        pin_s();
        const int j0 = kt * BN;
        softmax_tile<NB>(s, m, l, corr, lim, !ps.all || j0 + BN - 1 > ps.kmin, j0, t4, a.scale_log2);
        wgmma_wait<0>();
        pin_o_pf();
        finish(corr);
      }
      wgmma_fence();
      issue_pv(pf, v_stage((tiles - 1) % ST));
      wgmma_wait<0>();
      pin_o_pf();
      __syncthreads();  // the next pass loads into stage 0
    } else {
    for (int kt = 0; kt < tiles; ++kt) {
      const int stage = kt & 1;
      if (kt + 1 < tiles) load_kv(kt + 1, stage ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
      fence_async_smem();
      __syncthreads();
      const uint32_t kb = k_stage(stage), vb = v_stage(stage);

      wgmma_fence();
      issue_s(kb);
      wgmma_wait_all();
#pragma unroll
      for (int n = 0; n < NB; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) pin(s[n][e]);

      const int j0 = kt * BN;
      const bool masked = !ps.all || j0 + BN - 1 > ps.kmin;
      float corr[2];
      softmax_tile<NB>(s, m, l, corr, lim, masked, j0, t4, a.scale_log2);
#pragma unroll
      for (int d = 0; d < DT; ++d)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[d][e] *= corr[e / 2];

      uint32_t pf[BN / 16][4];
#pragma unroll
      for (int kb16 = 0; kb16 < BN / 16; ++kb16) p_fragment<T, NB>(pf[kb16], s, kb16);
      wgmma_fence();
      issue_pv(pf, vb);
      wgmma_wait_all();
#pragma unroll
      for (int d = 0; d < DT; ++d)
#pragma unroll
        for (int e = 0; e < 4; ++e) pin(o[d][e]);
#pragma unroll
      for (int kb16 = 0; kb16 < BN / 16; ++kb16)
#pragma unroll
        for (int e = 0; e < 4; ++e) pin(pf[kb16][e]);
      __syncthreads();  // the stage just read is the next prefetch's target
    }
    }
  }

  __syncthreads();
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float sum = l[hh];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    const int r = warp * 16 + g + hh * 8;
#pragma unroll
    for (int d = 0; d < DT; ++d) {
      const uint32_t packed = pack2<T>(o[d][2 * hh] * inv, o[d][2 * hh + 1] * inv);
      *reinterpret_cast<uint32_t*>(q_s + swz<CH>(r, d) + t4 * 4) = packed;
    }
  }
  __syncthreads();
  T* out = static_cast<T*>(a.out);
  for (int c = tid; c < BM * CH; c += NT) {
    const int r = c / CH, ch = c % CH;
    const int64_t i = i0 + r;
    if (i < sh.N && row_slot[r] >= 0)
      *reinterpret_cast<uint4*>(out + (i * sh.Hq + h) * HD + ch * 8) =
          *reinterpret_cast<const uint4*>(q_s + swz<CH>(r, ch));
  }
}

}  // namespace omni::cuda::flash
