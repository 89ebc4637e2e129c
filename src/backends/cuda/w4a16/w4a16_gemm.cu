// One templated kernel serves every M: a block of 8 warps owns BM rows x WN strips of 64 columns and a run of
// K stages; a multi-stage cp.async pipeline streams the fragment-ordered weights, the x tile
// (ldmatrix from a swizzled tile) and the stage's scales/zeros into shared memory; each warp dequantises its
// 16-byte fragment vectors in registers (magic-number trick) and feeds mma.sync m16n8k16 with F32 accumulators.
// Warps that split K inside the block are reduced through shared memory; blocks that split K (so that small M
// still fills all SMs) write F32 partials and the last block of a tile to arrive sums them in a fixed order.
// Where w4a16_auto_uses_dequant says so (larger M, smaller weights), w4a16_gemm dequantises W and calls cuBLAS
// instead (w4a16_dequant.cu). M <= 16 goes to the decode kernel (w4a16_decode.cu, v4: no workspace, split-K
// reduced through distributed shared memory); this kernel then serves M = 17.. (and W4A16Path::MmaSplitK).
#include "backends/cuda/w4a16/w4a16_gemm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <mutex>

#include "backends/cuda/w4a16/w4a16_paths.h"
#include "core/error.h"

namespace omni::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  OMNI_CHECK(e == cudaSuccess, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}

constexpr int kThreads = 256;

// A block of 8 warps: WM x WN x WK warps over (rows, 64-column strips, K). Each warp owns 16*MB rows, one strip
// and KPW consecutive k16 tiles of every stage (so a stage covers BK = 16*KPW*WK inputs).
template <int MB_, int WM_, int WN_, int WK_, int KPW_, int STAGES_, int MIN_BLOCKS_>
struct Tile {
  static constexpr int MB = MB_, WM = WM_, WN = WN_, WK = WK_, KPW = KPW_, STAGES = STAGES_;
  static constexpr int kMinBlocks = MIN_BLOCKS_;
  static_assert(WM * WN * WK * 32 == kThreads, "8 warps per block");
  static_assert(KPW % 2 == 0, "a warp steps through K in 32-input pairs of k16 tiles (one group each)");
  static constexpr int BM = 16 * MB * WM;
  static constexpr int BN = 64 * WN;
  static constexpr int BK = 16 * KPW * WK;
  static constexpr int kStripKTiles = KPW * WK;  // k16 tiles of one strip in one stage
  static constexpr int kWChunks = WN * kStripKTiles * 32;  // 16-byte chunks of weights per stage
  static constexpr int kWBytes = kWChunks * 16;
  static constexpr int kAChunksPerRow = BK / 8;
  static constexpr int kAChunks = BM * kAChunksPerRow;
  static constexpr int kABytes = kAChunks * 16;
  static constexpr int kGroupRows = BK / 32;  // a stage touches at most this many groups
  static constexpr int kSChunks = kGroupRows * WN * 8;
  static constexpr int kZChunks = kGroupRows * WN * 2;
  static constexpr int kSBytes = kSChunks * 16;
  static constexpr int kZBytes = kZChunks * 16;
  static constexpr int kStageBytes = kWBytes + kABytes + kSBytes + kZBytes;
  static constexpr int kRedBytes = (WK - 1) * WM * WN * MB * 8 * 32 * 16;
  static constexpr int kSmemBytes = STAGES * kStageBytes > kRedBytes ? STAGES * kStageBytes : kRedBytes;
  static constexpr int kPartialFloat2 = WM * WN * MB * 8 * 2 * 32;  // per (tile, split)
  static_assert(kWChunks % kThreads == 0 && kAChunks % kThreads == 0, "whole copy rounds per thread");
};

// M <= 16: 16 rows x 4 strips, K split over 2 warps, 2 blocks per SM. M <= 32: the same with 32 rows.
// M <= 64: 2 x 32 rows x 4 strips. M > 64: 128 x 256 tiles. Every warp takes 4 k16 tiles (2 KB of codes) per
// stage, which amortises the per-stage scale work and barrier over 64 inputs.
using TileM16 = Tile<1, 1, 4, 2, 4, 4, 2>;
using TileM32 = Tile<2, 1, 4, 2, 4, 4, 1>;
using TileM64 = Tile<2, 2, 4, 1, 4, 4, 1>;
using TileLarge = Tile<4, 2, 4, 1, 4, 4, 1>;

struct GemmArgs {
  const uint4* qweight;
  const uint16_t* scales;
  const uint32_t* zeros;  // null: symmetric, zero point 8
  const uint16_t* x;
  uint16_t* y;
  const float* bias;
  float2* partials;
  unsigned* counters;  // one per tile, zeroed on the stream before the launch
  int M, N, K;
  int group_shift;  // group of input k = k >> group_shift (30 for per-channel: always 0)
  int k_iters, splits, n_tiles;
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// cp.async.cg: 16 bytes, bypassing L1. No L2 evict-first hint: with .L2::cache_hint, ptxas 13.0.88 emitted
// LDGSTS whose cache-policy descriptor registers (UR0/UR1) were never set, an "illegal instruction" on the H200
// (seen under compute-sanitizer, 2026-12-01).
__device__ __forceinline__ void cp_async(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_addr(dst)), "l"(src));
}
// Copies 16 bytes, or writes 16 zero bytes when !ok (src is then not read).
__device__ __forceinline__ void cp_async_zfill(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// XOR swizzle of the 16-byte chunks of an x row, so that the 8 rows one ldmatrix phase reads hit 8 distinct
// bank groups.
template <int kChunks>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  if constexpr (kChunks >= 8) return chunk ^ (row & 7);
  else return chunk ^ ((row / (8 / kChunks)) & (kChunks - 1));
}

template <bool kBF16>
struct Act;
template <>
struct Act<true> {
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u;  // bf16 128.0 in both halves: 128 + code is exact
  __device__ static uint16_t from_f16(uint16_t h) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(__half2float(__ushort_as_half(h))));
  }
  __device__ static uint32_t pack(float a, float b) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};
template <>
struct Act<false> {
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u;  // f16 1024.0 in both halves: 1024 + code is exact
  __device__ static uint16_t from_f16(uint16_t h) { return h; }
  __device__ static uint32_t pack(float a, float b) {
    const __half2 v = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
  __device__ static void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// (magic + code - (magic + zero)) * scale: the subtraction is exact, the product rounds once. One lop3 does the
// mask and the OR of the magic exponent.
template <bool kBF16>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t q, int shift, uint32_t zero2, uint32_t scale2) {
  using T2 = typename Act<kBF16>::T2;
  uint32_t v;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(v) : "r"(q >> shift), "n"(0x000f000f), "n"(Act<kBF16>::kMagic));
  const T2 r = __hmul2(__hsub2(*reinterpret_cast<const T2*>(&v), *reinterpret_cast<const T2*>(&zero2)),
                       *reinterpret_cast<const T2*>(&scale2));
  return *reinterpret_cast<const uint32_t*>(&r);
}

// The last of `splits` blocks of a tile to arrive gets true: one atomicAdd per block on a counter that
// w4a16_gemm zeroes on the stream before every launch (v2 used a CAS retry loop with an epoch tag so that the
// counter needed no clearing; all splits of a tile arrive at about the same time, so the retries serialised).
__device__ __forceinline__ bool arrive_last(unsigned* counter, int splits) {
  return atomicAdd(counter, 1u) == static_cast<unsigned>(splits - 1);
}

template <class C, bool kBF16, bool kAsym>
__global__ void __launch_bounds__(kThreads, C::kMinBlocks) w4a16_gemm_kernel(const GemmArgs a) {
  using A = Act<kBF16>;
  constexpr int MB = C::MB, WM = C::WM, WN = C::WN;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int s_last;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % WM, wn = (warp / WM) % WN, wk = warp / (WM * WN);
  const int split = blockIdx.x % a.splits, tile = blockIdx.x / a.splits;
  const int n_tile = tile % a.n_tiles, m_tile = tile / a.n_tiles;
  const int strips = a.N / 64, strip0 = n_tile * WN, k16_tiles = a.K / 16;
  const int it_begin = static_cast<int>(static_cast<int64_t>(split) * a.k_iters / a.splits);
  const int it_end = static_cast<int>(static_cast<int64_t>(split + 1) * a.k_iters / a.splits);

  // Per-thread copy assignments, fixed over the stages (only the K offset moves): chunk i = tid + j * kThreads.
  constexpr int kStripChunks = C::kStripKTiles * 32;
  constexpr int kWPer = C::kWChunks / kThreads, kAPer = C::kAChunks / kThreads;
  const uint4* w_base = a.qweight + static_cast<size_t>(strip0) * k16_tiles * 32;
  int w_off[kWPer], w_kt[kWPer];
  bool w_ok[kWPer];
#pragma unroll
  for (int j = 0; j < kWPer; ++j) {
    const int i = tid + j * kThreads, st = i / kStripChunks, r = i % kStripChunks;
    w_ok[j] = strip0 + st < strips;
    w_kt[j] = r / 32;
    w_off[j] = (st * k16_tiles + r / 32) * 32 + r % 32;  // uint4 units, < 2^31 for supported shapes
  }
  const uint16_t* a_src[kAPer];
  int a_dst[kAPer], a_k[kAPer];
  bool a_ok[kAPer];
#pragma unroll
  for (int j = 0; j < kAPer; ++j) {
    const int i = tid + j * kThreads, r = i / C::kAChunksPerRow, ch = i % C::kAChunksPerRow;
    const int m = m_tile * C::BM + r;
    a_ok[j] = m < a.M;
    a_k[j] = ch * 8;
    a_src[j] = a.x + static_cast<size_t>(a_ok[j] ? m : 0) * a.K + ch * 8;
    a_dst[j] = C::kWBytes + (r * C::kAChunksPerRow + swizzle<C::kAChunksPerRow>(r, ch)) * 16;
  }
  const int s_row = tid / (WN * 8), s_col = tid % (WN * 8);
  const bool s_ok = tid < C::kSChunks && strip0 + s_col / 8 < strips;
  const uint16_t* s_src = a.scales + static_cast<size_t>(strip0) * 64 + s_col * 8;
  const int z_row = tid / (WN * 2), z_col = tid % (WN * 2);
  const bool z_ok = kAsym && tid < C::kZChunks && strip0 + z_col / 2 < strips;
  const uint32_t* z_src = a.zeros + static_cast<size_t>(strip0) * 8 + z_col * 4;
  static_assert(C::kSChunks <= kThreads && C::kZChunks <= kThreads, "one scale/zero chunk per thread at most");

  auto load_stage = [&](int it, int slot) {
    unsigned char* st = smem + slot * C::kStageBytes;
    const int kt0 = it * (C::BK / 16);
#pragma unroll
    for (int j = 0; j < kWPer; ++j)
      if (w_ok[j] && kt0 + w_kt[j] < k16_tiles) cp_async(st + (tid + j * kThreads) * 16, w_base + w_off[j] + kt0 * 32);
    const int k0 = it * C::BK;
#pragma unroll
    for (int j = 0; j < kAPer; ++j) {
      const bool ok = a_ok[j] && k0 + a_k[j] < a.K;
      cp_async_zfill(st + a_dst[j], ok ? a_src[j] + k0 : a.x, ok);
    }
    const int g0 = k0 >> a.group_shift, g_last = (min(k0 + C::BK, a.K) - 1) >> a.group_shift;
    if (s_ok && g0 + s_row <= g_last)
      cp_async(st + C::kWBytes + C::kABytes + tid * 16, s_src + static_cast<size_t>(g0 + s_row) * a.N);
    if (z_ok && g0 + z_row <= g_last)
      cp_async(st + C::kWBytes + C::kABytes + C::kSBytes + tid * 16,
               z_src + static_cast<size_t>(g0 + z_row) * (a.N / 8));
  };

  float acc[MB][8][4];
#pragma unroll
  for (int mb = 0; mb < MB; ++mb)
#pragma unroll
    for (int s = 0; s < 8; ++s)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mb][s][e] = 0.f;

  const bool strip_ok = strip0 + wn < strips;
  // Lane-dependent shared-memory offsets, fixed over the stages.
  const int w_lane_off = (wn * C::kStripKTiles + wk * C::KPW) * 512 + lane * 16;
  const int s_lane_off = C::kWBytes + C::kABytes + wn * 128 + (lane / 4) * 16;
  const int z_lane_off = C::kWBytes + C::kABytes + C::kSBytes + wn * 32 + (lane / 4) * 4;
  int a_row_off[MB];
#pragma unroll
  for (int mb = 0; mb < MB; ++mb) a_row_off[mb] = C::kWBytes + (wm * 16 * MB + mb * 16 + (lane & 15)) * C::kAChunksPerRow * 16;
  const int a_swz = C::kAChunksPerRow >= 8 ? (lane & 7) : ((lane & 15) / (8 / C::kAChunksPerRow)) & (C::kAChunksPerRow - 1);

  auto compute_stage = [&](int it, int slot) {
    const int kt = it * (C::BK / 16) + wk * C::KPW;
    if (!strip_ok || kt >= k16_tiles) return;  // warp-uniform
    const unsigned char* st = smem + slot * C::kStageBytes;
    const int g_stage = (it * C::BK) >> a.group_shift;
    uint32_t scale2[8], zero2[8];
    // Scales and zero points of the group of input k, as the (value, value) pairs dequant_pair takes.
    auto load_group = [&](int k) {
      const int row = (k >> a.group_shift) - g_stage;
      const uint4 sv = *reinterpret_cast<const uint4*>(st + s_lane_off + row * C::BN * 2);
      const uint32_t sw4[4] = {sv.x, sv.y, sv.z, sv.w};
      uint32_t zv = 0x88888888u;
      if constexpr (kAsym) zv = *reinterpret_cast<const uint32_t*>(st + z_lane_off + row * (C::BN / 2));
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint32_t sc = A::from_f16(static_cast<uint16_t>(sw4[i / 2] >> (16 * (i % 2))));
        scale2[i] = sc | (sc << 16);
        const uint32_t z = ((zv >> (4 * i)) & 0xfu) | (A::kMagic & 0xffffu);
        zero2[i] = z | (z << 16);
      }
    };
    load_group(kt * 16);
    uint4 qv[C::KPW];
#pragma unroll
    for (int j = 0; j < C::KPW; ++j) qv[j] = *reinterpret_cast<const uint4*>(st + w_lane_off + j * 512);
#pragma unroll
    for (int j = 0; j < C::KPW; ++j) {
      if (j % 2 == 0 && j > 0) {
        if (kt + j >= k16_tiles) break;  // K ends inside this warp's tiles (warp-uniform)
        // A new group can start only at a 32-input boundary.
        if ((((kt + j) * 16) & ((1 << a.group_shift) - 1)) == 0) load_group((kt + j) * 16);
      }
      uint32_t af[MB][4];
#pragma unroll
      for (int mb = 0; mb < MB; ++mb) {
        const int ch = 2 * (wk * C::KPW + j) + (lane >> 4);
        ldmatrix_x4(af[mb], st + a_row_off[mb] + (ch ^ a_swz) * 16);
      }
      const uint32_t q4[4] = {qv[j].x, qv[j].y, qv[j].z, qv[j].w};
#pragma unroll
      for (int s = 0; s < 8; ++s) {
        const uint32_t q = q4[s / 2];
        const int h = s % 2;
        const uint32_t b0 = dequant_pair<kBF16>(q, 8 * h, zero2[s], scale2[s]);
        const uint32_t b1 = dequant_pair<kBF16>(q, 8 * h + 4, zero2[s], scale2[s]);
#pragma unroll
        for (int mb = 0; mb < MB; ++mb) A::mma(acc[mb][s], af[mb], b0, b1);
      }
    }
  };
  const int n_it = it_end - it_begin;
#pragma unroll 1
  for (int s = 0; s < C::STAGES - 1; ++s) {
    if (s < n_it) load_stage(it_begin + s, s);
    cp_async_commit();
  }
#pragma unroll 1
  for (int i = 0; i < n_it; ++i) {
    cp_async_wait<C::STAGES - 2>();
    __syncthreads();
    const int next = i + C::STAGES - 1;
    if (next < n_it) load_stage(it_begin + next, next % C::STAGES);
    cp_async_commit();
    compute_stage(it_begin + i, i % C::STAGES);
  }
  cp_async_wait<0>();
  __syncthreads();

  if constexpr (C::WK > 1) {
    float4* red = reinterpret_cast<float4*>(smem);
    const int slot_base = (wn * WM + wm) * MB * 8;
    if (wk > 0) {
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
#pragma unroll
        for (int s = 0; s < 8; ++s)
          red[(((wk - 1) * WM * WN * MB * 8) + slot_base + mb * 8 + s) * 32 + lane] =
              make_float4(acc[mb][s][0], acc[mb][s][1], acc[mb][s][2], acc[mb][s][3]);
    }
    __syncthreads();
    if (wk == 0) {
#pragma unroll 1
      for (int w = 1; w < C::WK; ++w)
#pragma unroll
        for (int mb = 0; mb < MB; ++mb)
#pragma unroll
          for (int s = 0; s < 8; ++s) {
            const float4 v = red[(((w - 1) * WM * WN * MB * 8) + slot_base + mb * 8 + s) * 32 + lane];
            acc[mb][s][0] += v.x;
            acc[mb][s][1] += v.y;
            acc[mb][s][2] += v.z;
            acc[mb][s][3] += v.w;
          }
    }
  }

  const bool owner = wk == 0 && strip_ok;
  const int row0 = m_tile * C::BM + wm * 16 * MB + lane / 4;
  const int col0 = (strip0 + wn) * 64 + 2 * (lane % 4);

  if (a.splits > 1) {
    const float2* tile_part = a.partials + static_cast<size_t>(tile) * a.splits * C::kPartialFloat2 +
                              static_cast<size_t>(wn * WM + wm) * (MB * 8 * 2 * 32);
    float2* part = const_cast<float2*>(tile_part) + static_cast<size_t>(split) * C::kPartialFloat2;
    if (owner) {
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
#pragma unroll
        for (int s = 0; s < 8; ++s)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr)
            if (row0 + mb * 16 + 8 * hr < a.M)
              part[((mb * 8 + s) * 2 + hr) * 32 + lane] = make_float2(acc[mb][s][2 * hr], acc[mb][s][2 * hr + 1]);
    }
    // The barrier orders the block's partial stores before thread 0's fence and arrival (fences are cumulative);
    // the last block's thread 0 fences again before the barrier that releases its readers. One fence per block
    // instead of one per thread: a gpu-scope fence costs microseconds under load.
    __syncthreads();
    if (tid == 0) {
      __threadfence();
      s_last = arrive_last(a.counters + tile, a.splits);
      if (s_last) __threadfence();
    }
    __syncthreads();
    if (!s_last) return;
    if (owner) {
      // Fixed order over the splits (the own one re-read too), so the result does not depend on which block
      // came last. Split outer, elements inner and unrolled: all of a split's loads are in flight at once (v2
      // looped over the splits per element, one L2 round trip per load: about 16 x 64 of them per thread).
#pragma unroll
      for (int mb = 0; mb < MB; ++mb)
#pragma unroll
        for (int s = 0; s < 8; ++s)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mb][s][e] = 0.f;
#pragma unroll 1
      for (int sp = 0; sp < a.splits; ++sp) {
        const float2* src = tile_part + static_cast<size_t>(sp) * C::kPartialFloat2;
#pragma unroll
        for (int mb = 0; mb < MB; ++mb)
#pragma unroll
          for (int s = 0; s < 8; ++s)
#pragma unroll
            for (int hr = 0; hr < 2; ++hr) {
              if (row0 + mb * 16 + 8 * hr >= a.M) continue;
              const float2 v = __ldcg(src + ((mb * 8 + s) * 2 + hr) * 32 + lane);
              acc[mb][s][2 * hr] += v.x;
              acc[mb][s][2 * hr + 1] += v.y;
            }
      }
    }
  }

  if (!owner) return;
#pragma unroll
  for (int mb = 0; mb < MB; ++mb)
#pragma unroll
    for (int s = 0; s < 8; ++s) {
      const int col = col0 + 16 * (s / 2) + 8 * (s % 2);
      const float b0 = a.bias ? a.bias[col] : 0.f, b1 = a.bias ? a.bias[col + 1] : 0.f;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int row = row0 + mb * 16 + 8 * hr;
        if (row < a.M)
          *reinterpret_cast<uint32_t*>(a.y + static_cast<size_t>(row) * a.N + col) =
              A::pack(acc[mb][s][2 * hr] + b0, acc[mb][s][2 * hr + 1] + b1);
      }
    }
}

// x'[m, k'] = x[m, perm[k']]: the activations in the sorted-by-group order of an act-order weight.
__global__ void gather_columns_kernel(const uint16_t* x, const int32_t* perm, uint16_t* out, int64_t M, int64_t K) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= M * K) return;
  const int64_t m = i / K, k = i % K;
  out[i] = x[m * K + perm[k]];
}

constexpr int kMaxDevices = 64;

struct DeviceInfo {
  int sms = 0;
};
DeviceInfo device_info() {
  static std::once_flag once[kMaxDevices];
  static DeviceInfo info[kMaxDevices];
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  OMNI_CHECK(dev >= 0 && dev < kMaxDevices, "W4A16 GEMM: device index ", dev, " out of range");
  std::call_once(once[dev], [&] {
    check(cudaDeviceGetAttribute(&info[dev].sms, cudaDevAttrMultiProcessorCount, dev),
          "cudaDeviceGetAttribute(MultiProcessorCount)");
  });
  return info[dev];
}

// Sets the kernel's shared-memory limit once per device and returns its resident blocks per SM.
template <class C, bool kBF16>
int prepare_kernel() {
  static std::once_flag once[kMaxDevices];
  static int blocks_per_sm[kMaxDevices];
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  std::call_once(once[dev], [&] {
    int fewest = 1 << 30;
    for (auto* kernel : {&w4a16_gemm_kernel<C, kBF16, false>, &w4a16_gemm_kernel<C, kBF16, true>}) {
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes),
            "cudaFuncSetAttribute(w4a16_gemm_kernel, MaxDynamicSharedMemorySize)");
      int n = 0;
      check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, C::kSmemBytes),
            "cudaOccupancyMaxActiveBlocksPerMultiprocessor(w4a16_gemm_kernel)");
      fewest = std::min(fewest, n);
    }
    OMNI_CHECK(fewest > 0, "W4A16 GEMM: kernel does not fit on an SM");
    blocks_per_sm[dev] = fewest;
  });
  return blocks_per_sm[dev];
}

// How a call is cut: tiles of the chosen configuration and the number of K splits per tile.
struct Plan {
  int config = 0;  // 0..3: TileM16, TileM32, TileM64, TileLarge
  int bm = 0, bn = 0, bk = 0, partial_float2 = 0;
  int m_tiles = 0, n_tiles = 0, k_iters = 0, splits = 1;
};

template <class C>
void fill_plan(Plan& p, int64_t M, const W4A16DeviceWeights& w, int blocks_per_sm, int sms) {
  p.bm = C::BM;
  p.bn = C::BN;
  p.bk = C::BK;
  p.partial_float2 = C::kPartialFloat2;
  p.m_tiles = static_cast<int>((M + C::BM - 1) / C::BM);
  p.n_tiles = static_cast<int>((w.out_features + C::BN - 1) / C::BN);
  p.k_iters = static_cast<int>((w.in_features + C::BK - 1) / C::BK);
  // Time ~ waves x (stages per block + a fixed cost of about 2 stages for the pipeline's fill and the epilogue)
  // + the split-K reduction: every block writes its partial tile and the last one reads all `s` of them back
  // (from L2, all loads of a split in flight: counted at half the cost of a stage's bytes). Only the rows < M
  // are written and read. Without this term M = 128 chose 16 splits on small N, 2 MB through one SM.
  const int64_t tiles = static_cast<int64_t>(p.m_tiles) * p.n_tiles, slots = static_cast<int64_t>(sms) * blocks_per_sm;
  const double rows_used = static_cast<double>(std::min<int64_t>(M, C::BM)) / C::BM;
  const double partial_stages = rows_used * C::kPartialFloat2 * 8.0 / C::kStageBytes;
  double best = 1e300;
  for (int s = 1; s <= std::min(16, p.k_iters); ++s) {
    const int64_t waves = (tiles * s + slots - 1) / slots;
    const double reduce = s > 1 ? 0.5 * partial_stages * (1 + s) : 0.0;
    const double cost = static_cast<double>(waves) * (static_cast<double>(p.k_iters) / s + 2.0) + reduce;
    if (cost < best - 1e-9) {
      best = cost;
      p.splits = s;
    }
  }
}

template <bool kBF16>
Plan make_plan_for(int64_t M, const W4A16DeviceWeights& w) {
  const int sms = device_info().sms;
  Plan p;
  if (M <= 16) {
    p.config = 0;
    fill_plan<TileM16>(p, M, w, prepare_kernel<TileM16, kBF16>(), sms);
  } else if (M <= 32) {
    p.config = 1;
    fill_plan<TileM32>(p, M, w, prepare_kernel<TileM32, kBF16>(), sms);
  } else if (M <= 64) {
    p.config = 2;
    fill_plan<TileM64>(p, M, w, prepare_kernel<TileM64, kBF16>(), sms);
  } else {
    p.config = 3;
    fill_plan<TileLarge>(p, M, w, prepare_kernel<TileLarge, kBF16>(), sms);
  }
  return p;
}

Plan make_plan(int64_t M, const W4A16DeviceWeights& w, ActDType act) {
  return act == ActDType::BF16 ? make_plan_for<true>(M, w) : make_plan_for<false>(M, w);
}

constexpr size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

struct WorkspaceLayout {
  size_t counters = 0, partials = 0, gathered_x = 0;  // byte offsets
  size_t total = 0;
};
WorkspaceLayout workspace_layout(int64_t M, const W4A16DeviceWeights& w, const Plan& p) {
  WorkspaceLayout l;
  const size_t tiles = static_cast<size_t>(p.m_tiles) * p.n_tiles;
  size_t off = 0;
  if (p.splits > 1) {
    l.counters = off;
    off += align_up(tiles * sizeof(unsigned), 256);
    l.partials = off;
    off += align_up(tiles * p.splits * p.partial_float2 * sizeof(float2), 256);
  }
  if (w.perm) {
    l.gathered_x = off;
    off += align_up(static_cast<size_t>(M) * w.in_features * 2, 256);
  }
  l.total = off;
  return l;
}

template <class C, bool kBF16>
void launch(const GemmArgs& args, const Plan& p, cudaStream_t stream) {
  const int64_t blocks = static_cast<int64_t>(p.m_tiles) * p.n_tiles * p.splits;
  OMNI_CHECK(blocks <= 0x7fffffff, "W4A16 GEMM: grid of ", blocks, " blocks is too large");
  const unsigned grid = static_cast<unsigned>(blocks);
  if (args.zeros) w4a16_gemm_kernel<C, kBF16, true><<<grid, kThreads, C::kSmemBytes, stream>>>(args);
  else w4a16_gemm_kernel<C, kBF16, false><<<grid, kThreads, C::kSmemBytes, stream>>>(args);
  check(cudaGetLastError(), "w4a16_gemm_kernel launch");
}

template <bool kBF16>
void launch_config(const GemmArgs& args, const Plan& p, cudaStream_t stream) {
  switch (p.config) {
    case 0: launch<TileM16, kBF16>(args, p, stream); break;
    case 1: launch<TileM32, kBF16>(args, p, stream); break;
    case 2: launch<TileM64, kBF16>(args, p, stream); break;
    default: launch<TileLarge, kBF16>(args, p, stream); break;
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }


}  // namespace

W4A16DeviceSizes w4a16_device_sizes(const W4A16Repacked& w) {
  W4A16DeviceSizes s;
  s.qweight = w.qweight.size() * sizeof(uint32_t);
  s.scales = w.scales.size() * sizeof(uint16_t);
  s.zeros = w.zeros.size() * sizeof(uint32_t);
  s.perm = w.perm.size() * sizeof(int32_t);
  return s;
}

W4A16DeviceWeights w4a16_upload(const W4A16Repacked& w, void* qweight, void* scales, void* zeros, void* perm,
                                cudaStream_t stream) {
  const W4A16DeviceSizes s = w4a16_device_sizes(w);
  auto copy = [&](void* dst, const void* src, size_t bytes, const char* name) {
    if (bytes == 0) return;
    OMNI_CHECK(dst != nullptr && aligned16(dst), "w4a16_upload: the ", name, " buffer must be 16-byte aligned device memory");
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync (w4a16_upload)");
  };
  copy(qweight, w.qweight.data(), s.qweight, "qweight");
  copy(scales, w.scales.data(), s.scales, "scales");
  copy(zeros, w.zeros.data(), s.zeros, "zeros");
  copy(perm, w.perm.data(), s.perm, "perm");
  W4A16DeviceWeights d;
  d.in_features = w.in_features;
  d.out_features = w.out_features;
  d.group_size = w.group_size;
  d.num_groups = w.num_groups;
  d.qweight = static_cast<const uint32_t*>(qweight);
  d.scales = static_cast<const uint16_t*>(scales);
  d.zeros = s.zeros ? static_cast<const uint32_t*>(zeros) : nullptr;
  d.perm = s.perm ? static_cast<const int32_t*>(perm) : nullptr;
  return d;
}

// Where dequantise + cuBLAS beats the fused kernel, read off the Mma and DequantBlas columns of one bench run
// (H200, docs/benchmarks.md "W4A16 GEMM"): the dequantisation writes the whole weight once in 16 bits, so the
// larger the weight the more rows it takes to pay for it. Crossovers measured: 768x2048 and 1024x4096 from
// M = 16, 4096x4096 from 64, 12288x3072 and 12288x4096 from 128 (4096x12288 still fused at 128), every layer
// by 256. M <= 16 (the decode kernel, v4) never takes dequantise + cuBLAS: at M = 16 the v3 table had dequantise
// + cuBLAS ahead on 768x2048 and 1024x4096 only against the v3 split-K kernel (not yet measured against v4).
bool w4a16_auto_uses_dequant(int64_t M, const W4A16DeviceWeights& w) {
  const int64_t weights = w.in_features * w.out_features;
  constexpr int64_t kMi = int64_t{1} << 20;
  return M >= 256 || (M >= 128 && weights <= 40 * kMi) || (M >= 64 && weights <= 20 * kMi) ||
         (M >= 16 && weights <= 5 * kMi && !(M <= kW4DecodeAutoMaxM && w4a16_decode_supports(M, w)));
}

namespace {

bool use_dequant(int64_t M, const W4A16DeviceWeights& w, W4A16Path path) {
  return path == W4A16Path::DequantBlas || (path == W4A16Path::Auto && w4a16_auto_uses_dequant(M, w));
}
bool use_decode(int64_t M, const W4A16DeviceWeights& w, W4A16Path path) {
  return (path == W4A16Path::Mma || (path == W4A16Path::Auto && M <= kW4DecodeAutoMaxM)) &&
         !use_dequant(M, w, path) && w4a16_decode_supports(M, w);
}

// The gathered x (act-order) first, then the path's own scratch.
size_t gathered_bytes(int64_t M, const W4A16DeviceWeights& w) {
  return w.perm ? align_up(static_cast<size_t>(M) * w.in_features * 2, 256) : 0;
}

}  // namespace

size_t w4a16_workspace_bytes_for(int64_t M, const W4A16DeviceWeights& w, W4A16Path path) {
  OMNI_CHECK(M > 0, "w4a16_workspace_bytes: M must be positive, found ", M);
  if (use_dequant(M, w, path)) return gathered_bytes(M, w) + w4a16_dequant_blas_workspace_bytes(M, w);
  if (use_decode(M, w, path)) return gathered_bytes(M, w);
  // The plan does not depend on the activation dtype (both kernels have the same resources by construction,
  // but take the larger to be safe).
  return std::max(workspace_layout(M, w, make_plan(M, w, ActDType::BF16)).total,
                  workspace_layout(M, w, make_plan(M, w, ActDType::F16)).total);
}

size_t w4a16_workspace_bytes(int64_t M, const W4A16DeviceWeights& w) {
  return w4a16_workspace_bytes_for(M, w, W4A16Path::Auto);
}

void w4a16_gemm(const W4A16DeviceWeights& w, const void* x, void* y, int64_t M, ActDType act,
                const float* bias_or_null, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  w4a16_gemm_path(w, x, y, M, act, bias_or_null, workspace, workspace_bytes, stream, W4A16Path::Auto);
}

void w4a16_gemm_path(const W4A16DeviceWeights& w, const void* x, void* y, int64_t M, ActDType act,
                     const float* bias_or_null, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                     W4A16Path path) {
  const int64_t K = w.in_features, N = w.out_features;
  OMNI_CHECK(M > 0 && M <= 0x7fffffff, "w4a16_gemm: M = ", M, " out of range");
  OMNI_CHECK(K > 0 && N > 0 && N % kW4StripN == 0 && K % kW4GroupQuantum == 0 && K <= (int64_t{1} << 24) &&
                 N <= (int64_t{1} << 24),
             "w4a16_gemm: unsupported shape K = ", K, ", N = ", N);
  const bool pow2_group = w.group_size >= kW4GroupQuantum && (w.group_size & (w.group_size - 1)) == 0;
  OMNI_CHECK(w.group_size == K || (pow2_group && w.group_size <= K), "w4a16_gemm: unsupported group_size ",
             w.group_size);
  int group_shift = 30;  // per channel: k >> 30 == 0 for every supported K
  if (w.group_size != K) {
    group_shift = 0;
    while ((int64_t{1} << group_shift) < w.group_size) ++group_shift;
  }
  OMNI_CHECK(w.qweight && w.scales, "w4a16_gemm: weight buffers are missing");
  OMNI_CHECK(x && y && aligned16(x) && aligned16(y), "w4a16_gemm: x and y must be 16-byte aligned device pointers");
  const bool dequant = use_dequant(M, w, path);
  const bool decode = use_decode(M, w, path);
  const Plan p = dequant || decode ? Plan{} : make_plan(M, w, act);
  const WorkspaceLayout l = dequant || decode ? WorkspaceLayout{} : workspace_layout(M, w, p);
  const size_t needed = dequant  ? gathered_bytes(M, w) + w4a16_dequant_blas_workspace_bytes(M, w)
                        : decode ? gathered_bytes(M, w)
                                 : l.total;
  OMNI_CHECK(needed == 0 || (workspace && workspace_bytes >= needed && aligned16(workspace)),
             "w4a16_gemm: workspace of ", workspace_bytes, " bytes is too small, ", needed,
             " needed (w4a16_workspace_bytes)");
  auto* ws = static_cast<unsigned char*>(workspace);

  const void* xin = x;
  if (w.perm) {
    auto* gathered = reinterpret_cast<uint16_t*>(ws + (dequant || decode ? 0 : l.gathered_x));
    const int64_t total = M * K;
    const int threads = 256;
    gather_columns_kernel<<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, stream>>>(
        static_cast<const uint16_t*>(x), w.perm, gathered, M, K);
    check(cudaGetLastError(), "gather_columns_kernel launch");
    xin = gathered;
  }
  if (dequant) {
    const size_t g = gathered_bytes(M, w);
    w4a16_dequant_blas_gemm(w, group_shift, xin, y, M, act, bias_or_null, ws + g, workspace_bytes - g, stream);
    return;
  }
  if (decode) {
    w4a16_decode_gemm(w, group_shift, xin, y, M, act, bias_or_null, stream);
    return;
  }

  GemmArgs args{};
  args.qweight = reinterpret_cast<const uint4*>(w.qweight);
  args.scales = w.scales;
  args.zeros = w.zeros;
  args.x = static_cast<const uint16_t*>(xin);
  args.y = static_cast<uint16_t*>(y);
  args.bias = bias_or_null;
  args.partials = p.splits > 1 ? reinterpret_cast<float2*>(ws + l.partials) : nullptr;
  args.counters = p.splits > 1 ? reinterpret_cast<unsigned*>(ws + l.counters) : nullptr;
  if (p.splits > 1) {
    // The arrival counters start from zero on every call (the workspace may hold anything).
    check(cudaMemsetAsync(args.counters, 0, static_cast<size_t>(p.m_tiles) * p.n_tiles * sizeof(unsigned), stream),
          "cudaMemsetAsync (w4a16 split-K counters)");
  }
  args.M = static_cast<int>(M);
  args.N = static_cast<int>(N);
  args.K = static_cast<int>(K);
  args.group_shift = group_shift;
  args.k_iters = p.k_iters;
  args.splits = p.splits;
  args.n_tiles = p.n_tiles;
  if (act == ActDType::BF16) launch_config<true>(args, p, stream);
  else launch_config<false>(args, p, stream);
}

}  // namespace omni::cuda
