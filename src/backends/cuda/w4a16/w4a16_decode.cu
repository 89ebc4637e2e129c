// The small-M (decode) W4A16 kernel, M <= 16 (v4, docs/benchmarks/w4a16_cuda_notes.md).
//
// Roles are swapped against the split-K kernel of w4a16_gemm.cu: the weight is the A operand of mma.sync
// m16n8k16 (16 output columns x 16 inputs) and x the B operand (16 inputs x 8 rows of M), so M = 1..8 costs one
// mma per 16 x 16 weight tile, not two. The repacked layout needs no change for this: word j of lane L's 16-byte
// vector of a (strip, k16 tile) already holds, nibble pair by nibble pair, the A fragment of the 16 x 16 tile of
// n16 slice j (w4a16_layout.h: nibbles 0/4 -> a0, 1/5 -> a2, 2/6 -> a1, 3/7 -> a3).
//
// Work: a cluster of `cs` blocks owns one 64-column strip per round (strip = cluster + round * clusters), the K
// chunks (8 k16 tiles, 128 inputs) split over its cs x 8 warps; every warp streams its weights straight from
// global memory into registers (16-byte loads, one chunk ahead, no shared memory) and keeps the same K range in
// every round, so each block stages its K range of x into shared memory once, in fragment order.
// Dequantisation in registers, two variants: folded (default) feeds the mma (128 + q) as the lop3 leaves it
// (1024 + q for f16) and subtracts (128 + z) * sum(x) per output element at the group's flush; unfolded subtracts
// (128 + z) per weight pair first (q - z exactly). Either way the scale is applied after the mma, in F32, once per
// group. The partial sums of the strip are reduced in a fixed order: the 8 warps of a block through shared memory,
// then the cs blocks of the cluster through distributed shared memory (a cluster barrier; no global workspace, no
// counters, no memset), and y is written. Launched with programmatic dependent launch: the first chunk's weight
// loads are issued before griddepcontrol.wait, so they overlap the previous kernel's tail; x is read and y
// written after it. The index arithmetic lives in w4a16_decode_math.h, which the test's host model of this
// kernel shares.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "backends/cuda/w4a16/w4a16_decode_math.h"
#include "backends/cuda/w4a16/w4a16_paths.h"
#include "core/error.h"

namespace omni::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  OMNI_CHECK(e == cudaSuccess, "CUDA error in ", what, ": ", cudaGetErrorString(e));
}

using w4dec::kChunkTiles;
using w4dec::kMaxCluster;
using w4dec::kThreads;
using w4dec::kWarps;
constexpr size_t kSmemLimit = 227 * 1024;

struct DecodeArgs {
  const uint4* qweight;
  const uint16_t* scales;
  const uint32_t* zeros;  // null: symmetric
  const uint16_t* x;
  uint16_t* y;
  const float* bias;
  int M, N, K, G;
  int group_shift;
  int strips, k_tiles, nch;  // nch: chunks along K (the last may be partial)
  int cs, clusters;
  int block_tiles;  // x tiles staged per block (the most any block has)
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// Weights: read once, 16 bytes per lane, not kept in L1 (.L2::evict_first exists on ld only for 32-byte
// vectors on sm_90; the cache-policy form hit a ptxas bug in v1).
__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ uint4 ldg_nc4(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t ldg_nc1(const void* p) {
  uint32_t v;
  asm volatile("ld.global.nc.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t cluster_id() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(r));
  return r;
}
// Every thread of every block of the cluster; release/acquire: shared-memory writes before it are visible to
// distributed shared-memory reads after it.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ float ld_cluster_f32(uint32_t local_addr, uint32_t rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(local_addr), "r"(rank));
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
  return v;
}
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

__device__ __forceinline__ uint32_t lop3_mask_magic(uint32_t q, uint32_t magic) {
  uint32_t v;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(v) : "r"(q), "n"(0x000f000f), "r"(magic));  // (q & mask) | magic
  return v;
}
__device__ __forceinline__ uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t sel) {
  uint32_t v;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(v) : "r"(a), "r"(b), "r"(sel));
  return v;
}

template <bool kBF16>
struct DAct;
template <>
struct DAct<true> {
  __device__ static uint32_t sub2(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  __device__ static void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                             uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  __device__ static uint16_t round(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
};
template <>
struct DAct<false> {
  __device__ static uint32_t sub2(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
  }
  __device__ static void mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                             uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
  __device__ static uint16_t round(float v) { return __half_as_ushort(__float2half_rn(v)); }
};


// NB: n8 tiles of rows (M <= 8 * NB). kGT: k16 tiles per scale flush, 8 for group_size >= 128 (a chunk lies in one
// group; the flush waits for the group's or the range's end), 2 for group sizes 32 and 64 (a flush per 32 inputs).
// kFold: see the top of the file.
template <int NB, bool kBF16, bool kAsym, int kGT, bool kFold>
__global__ void __launch_bounds__(kThreads, 2) w4a16_decode_kernel(const DecodeArgs a) {
  using A = DAct<kBF16>;
  using namespace w4dec;
  constexpr int kGPC = kChunkTiles / kGT;  // scale flushes per chunk
  constexpr uint32_t kMagic = magic2(kBF16);
  extern __shared__ __align__(16) unsigned char smem[];
  uint32_t* xs = reinterpret_cast<uint32_t*>(smem);
  float* red = reinterpret_cast<float*>(smem + smem_x_bytes(a.block_tiles, NB));
  float* bsum = red + kWarps * 512 * NB;
  float* xsum = bsum + 2 * 512 * NB;

  pdl_launch_dependents();  // the next kernel may start its own weight loads while this one finishes

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int rank = static_cast<int>(cluster_rank()), cid = static_cast<int>(cluster_id());
  const Span wch = warp_chunks(rank, warp, a.cs, a.nch), bch = block_chunks(rank, a.cs, a.nch);
  const int c_begin = wch.begin, tc = wch.end - wch.begin;  // this warp's chunks, the same in every round
  const int bt0 = bch.begin * kChunkTiles, b_tiles = (bch.end - bch.begin) * kChunkTiles;
  const int rounds = cluster_rounds(cid, a.strips, a.clusters);
  const int total = rounds * tc;  // chunks of this warp over all rounds
  const int lc = lane >> 2;       // lane set: the 8 columns of the lane's scale vector

  // Registers of the chunk in flight: its 8 weight vectors, the scale vector and zero word of each flush.
  uint4 qv[kChunkTiles];
  uint32_t sv[kGPC][4];
  uint32_t zw[kGPC];
#pragma unroll
  for (int p = 0; p < kChunkTiles; ++p) qv[p] = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int i = 0; i < kGPC; ++i) {
    sv[i][0] = sv[i][1] = sv[i][2] = sv[i][3] = 0;
    zw[i] = 0x88888888u;
  }
  // Scale vector / zero word of flush i of chunk c of strip s (zero when that part of the chunk is past K).
  auto load_sv = [&](int s, int c, int i) {
    const int k = flush_k0(c, i, kGT);
    uint4 v = make_uint4(0, 0, 0, 0);
    if (k < a.K) v = ldg_nc4(a.scales + scale_offset(k >> a.group_shift, a.N, s, lc));
    sv[i][0] = v.x;
    sv[i][1] = v.y;
    sv[i][2] = v.z;
    sv[i][3] = v.w;
  };
  auto load_zw = [&](int s, int c, int i) {
    const int k = flush_k0(c, i, kGT);
    uint32_t v = 0x88888888u;
    if (k < a.K) v = ldg_nc1(a.zeros + zero_offset(k >> a.group_shift, a.N, s, lc));
    zw[i] = v;
  };

  if (total > 0) {
    const int s = cid, c = c_begin;
    const int nvalid = min(kChunkTiles, a.k_tiles - c * kChunkTiles);
#pragma unroll
    for (int p = 0; p < kChunkTiles; ++p)
      if (p < nvalid) qv[p] = ldg_stream(a.qweight + weight_index(s, c, p, lane, a.k_tiles));
#pragma unroll
    for (int i = 0; i < kGPC; ++i) {
      load_sv(s, c, i);
      if constexpr (kAsym) load_zw(s, c, i);
    }
  }

  // x is the previous kernel's output: wait for it (a no-op without programmatic launch).
  pdl_wait();
  {
    const int per_row = b_tiles * 8;  // 32-bit pairs of one row in the block's range
    const int items = 8 * NB * per_row;
    for (int i = tid; i < items; i += kThreads) {
      const XItem it = x_item(i, per_row, bt0, NB);
      uint32_t v = 0;
      if (it.row < a.M && it.k < a.K)
        v = *reinterpret_cast<const uint32_t*>(a.x + static_cast<size_t>(it.row) * a.K + it.k);
      xs[it.word] = v;
    }
  }
  if constexpr (kFold) {
    // Sum of x over each unit of 16 * kGT inputs per row: a warp per (row, unit), fixed order (lane strides, then
    // a butterfly), so the result does not depend on the schedule.
    const int units = b_tiles / kGT;
    for (int it = warp; it < 8 * NB * units; it += kWarps) {
      const int row = it / units, u = it - row * units;
      float v = 0.f;
      if (row < a.M) {
        const int k0 = (bt0 + u * kGT) * 16;
#pragma unroll
        for (int e = 0; e < kGT / 2; ++e) {
          const int k = k0 + e * 32 + lane;
          if (k < a.K) {
            const uint16_t h = a.x[static_cast<size_t>(row) * a.K + k];
            v += kBF16 ? __bfloat162float(__ushort_as_bfloat16(h)) : __half2float(__ushort_as_half(h));
          }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      }
      if (lane == 0) xsum[u * 8 * NB + row] = v;
    }
  }
  __syncthreads();

  float acc[4][NB][4], tmp[4][NB][4], xr[NB][2];
  uint32_t z2[8];  // unfolded: (magic + z) in both halves per scale position
  auto zero_tmp = [&] {
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) tmp[j][nb][e] = 0.f;
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) xr[nb][0] = xr[nb][1] = 0.f;
  };
  // (magic + z) in both halves per position, from a zero word: prmt takes the position's byte (of the even or the
  // odd nibbles) and the magic exponent byte.
  auto expand_zeros = [&](uint32_t w) {
    const uint32_t even = w & 0x0f0f0f0fu, odd = (w >> 4) & 0x0f0f0f0fu;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      z2[2 * j] = byte_perm(even, magic_bytes(kBF16), dup_byte_selector(j));
      z2[2 * j + 1] = byte_perm(odd, magic_bytes(kBF16), dup_byte_selector(j));
    }
  };
#pragma unroll
  for (int i = 0; i < 8; ++i) z2[i] = magic_plus_8(kBF16);
  const int t2 = 2 * (lane & 3);  // the lane's first row in each n8 tile of the accumulators

  int f = 0;  // flattened chunk index of this warp
#pragma unroll 1
  for (int r = 0; r < rounds; ++r) {
    const int strip = cid + r * a.clusters;
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[j][nb][e] = 0.f;
    zero_tmp();
#pragma unroll 1
    for (int cc = 0; cc < tc; ++cc, ++f) {
      const int c = c_begin + cc;
      // The chunk after this one (possibly in the next round): its loads are issued while this one is computed.
      const bool has_next = f + 1 < total;
      const int ns = cc + 1 < tc ? strip : strip + a.clusters;
      const int nc = cc + 1 < tc ? c + 1 : c_begin;
      const uint4* nwp = a.qweight + weight_index(ns, nc, 0, lane, a.k_tiles);
      const int nvalid = has_next ? min(kChunkTiles, a.k_tiles - nc * kChunkTiles) : 0;
      const bool flush8 = chunk_closes_group(c, cc + 1 == tc, a.group_shift);
      const int u0 = c * kChunkTiles - bt0;  // the chunk's first tile in the block's x range
#pragma unroll
      for (int i = 0; i < kGPC; ++i) {
        if constexpr (kAsym && !kFold) {
          expand_zeros(zw[i]);
          if (has_next) load_zw(ns, nc, i);
        }
        if constexpr (kFold) {
          const float* xsu = xsum + ((u0 / kGT) + i) * 8 * NB + t2;
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            const float2 v = *reinterpret_cast<const float2*>(xsu + nb * 8);
            xr[nb][0] += v.x;
            xr[nb][1] += v.y;
          }
        }
#pragma unroll
        for (int pp = 0; pp < kGT; ++pp) {
          const int p = i * kGT + pp;
          uint32_t b[NB][2];
          const uint32_t* xw = xs + x_word(u0 + p, lane, 0, 0, NB);
          if constexpr (NB == 1) {
            const uint2 v = *reinterpret_cast<const uint2*>(xw);
            b[0][0] = v.x;
            b[0][1] = v.y;
          } else {
            static_assert(NB == 2, "one 16-byte load holds both n8 tiles");
            const uint4 v = *reinterpret_cast<const uint4*>(xw);
            b[0][0] = v.x;
            b[0][1] = v.y;
            b[1][0] = v.z;
            b[1][1] = v.w;
          }
          const uint32_t w4[4] = {qv[p].x, qv[p].y, qv[p].z, qv[p].w};
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            uint32_t af[4];
#pragma unroll
            for (int rr = 0; rr < 4; ++rr) {
              af[rr] = lop3_mask_magic(w4[j] >> a_shift(rr), kMagic);
              if constexpr (!kFold) af[rr] = A::sub2(af[rr], z2[a_position(j, rr)]);
            }
#pragma unroll
            for (int nb = 0; nb < NB; ++nb) A::mma(tmp[j][nb], af[0], af[1], af[2], af[3], b[nb][0], b[nb][1]);
          }
          if (p < nvalid) qv[p] = ldg_stream(nwp + p * 32);
        }
        if (kGT != 8 || flush8) {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float lo = __half2float(__ushort_as_half(scale_bits_at(sv[i], 2 * j)));
            const float hi = __half2float(__ushort_as_half(scale_bits_at(sv[i], 2 * j + 1)));
            if constexpr (kFold) {
              const float zlo = magic_value(kBF16) + static_cast<float>(zero_at(zw[i], 2 * j));
              const float zhi = magic_value(kBF16) + static_cast<float>(zero_at(zw[i], 2 * j + 1));
#pragma unroll
              for (int nb = 0; nb < NB; ++nb) {
                acc[j][nb][0] = flush_folded(acc[j][nb][0], lo, zlo, xr[nb][0], tmp[j][nb][0]);
                acc[j][nb][1] = flush_folded(acc[j][nb][1], lo, zlo, xr[nb][1], tmp[j][nb][1]);
                acc[j][nb][2] = flush_folded(acc[j][nb][2], hi, zhi, xr[nb][0], tmp[j][nb][2]);
                acc[j][nb][3] = flush_folded(acc[j][nb][3], hi, zhi, xr[nb][1], tmp[j][nb][3]);
              }
            } else {
#pragma unroll
              for (int nb = 0; nb < NB; ++nb)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[j][nb][e] = flush_plain(acc[j][nb][e], e < 2 ? lo : hi, tmp[j][nb][e]);
            }
          }
          zero_tmp();
          if (has_next) {
            load_sv(ns, nc, i);
            if constexpr (kAsym && kFold) load_zw(ns, nc, i);
          }
        }
      }
    }

    // Round epilogue: the warps' sums -> the block's sum -> the cluster's sum, fixed order at each level.
    float* my_red = red + warp * 512 * NB;
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) my_red[acc_index(j, nb, e, lane, NB)] = acc[j][nb][e];
    __syncthreads();
    float* bs = bsum + (r & 1) * 512 * NB;
    for (int idx = tid; idx < 512 * NB; idx += kThreads) {
      if (acc_row(idx, NB) < a.M) {
        float v = 0.f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) v += red[w * 512 * NB + idx];
        bs[idx] = v;
      }
    }
    cluster_sync();
    const int elems = min(a.M, 8 * NB) * 64;
    const uint32_t bs_addr = smem_u32(bs);
    for (int e2 = rank + a.cs * tid; e2 < elems; e2 += a.cs * kThreads) {
      const int row = e2 >> 6, col = e2 & 63;
      const int idx = acc_index_of(row, col, NB);
      float v = 0.f;
      for (int rk = 0; rk < a.cs; ++rk) v += ld_cluster_f32(bs_addr + idx * 4, static_cast<uint32_t>(rk));
      const int n = strip * 64 + col;
      if (a.bias) v += a.bias[n];
      a.y[static_cast<size_t>(row) * a.N + n] = A::round(v);
    }
  }
  // No block may leave while another block of its cluster can still read its shared memory.
  cluster_sync();
}

using KernelFn = void (*)(DecodeArgs);

template <int NB, bool kBF16>
KernelFn pick_kernel_t(bool asym, int gt, bool fold) {
  if (gt == 8) {
    if (fold) return asym ? &w4a16_decode_kernel<NB, kBF16, true, 8, true> : &w4a16_decode_kernel<NB, kBF16, false, 8, true>;
    return asym ? &w4a16_decode_kernel<NB, kBF16, true, 8, false> : &w4a16_decode_kernel<NB, kBF16, false, 8, false>;
  }
  if (fold) return asym ? &w4a16_decode_kernel<NB, kBF16, true, 2, true> : &w4a16_decode_kernel<NB, kBF16, false, 2, true>;
  return asym ? &w4a16_decode_kernel<NB, kBF16, true, 2, false> : &w4a16_decode_kernel<NB, kBF16, false, 2, false>;
}

KernelFn pick_kernel(int nb, bool bf16, bool asym, int gt, bool fold) {
  if (nb == 1) return bf16 ? pick_kernel_t<1, true>(asym, gt, fold) : pick_kernel_t<1, false>(asym, gt, fold);
  return bf16 ? pick_kernel_t<2, true>(asym, gt, fold) : pick_kernel_t<2, false>(asym, gt, fold);
}

int current_device() {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  return dev;
}

// Clusters of `cs` blocks with `smem` bytes each that fit on the device at once (0: none), cached.
int resident_clusters(KernelFn fn, int cs, size_t smem) {
  static std::mutex mu;
  static std::map<std::tuple<int, const void*, int, size_t>, int> cache;
  const int dev = current_device();
  const auto key = std::make_tuple(dev, reinterpret_cast<const void*>(fn), cs, smem);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  check(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemLimit)),
        "cudaFuncSetAttribute(w4a16_decode_kernel, MaxDynamicSharedMemorySize)");
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(cs) * 64u);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = static_cast<unsigned>(cs);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int n = 0;
  check(cudaOccupancyMaxActiveClusters(&n, fn, &cfg), "cudaOccupancyMaxActiveClusters(w4a16_decode_kernel)");
  cache.emplace(key, n);
  return n;
}

std::atomic<bool> g_pdl{true};
// Off by default: the per-pair q − z dequantisation measured faster than the folded one at every M = 1..8 layer
// of the first v4 run (H200, docs/benchmarks/w4a16_cuda_notes.md "v4 measured").
std::atomic<bool> g_fold{false};

struct Plan {
  int nb = 1, gt = 8, cs = 1, clusters = 1, nch = 0, block_tiles = 0, rounds = 0;
  bool fold = true;
  size_t smem = 0;
  KernelFn fn = nullptr;
};

Plan make_plan(int64_t M, const W4A16DeviceWeights& w, ActDType act) {
  Plan p;
  p.nb = M <= 8 ? 1 : 2;
  p.gt = w.group_size >= 128 ? 8 : 2;
  p.fold = g_fold.load();
  p.fn = pick_kernel(p.nb, act == ActDType::BF16, w.zeros != nullptr, p.gt, p.fold);
  const int64_t strips = w.out_features / 64;
  p.nch = static_cast<int>((w.in_features + 127) / 128);
  // Time ~ rounds x (chunks per warp + the round's epilogue, counted as about a third of a chunk); all chunks of
  // a round are in flight together, so fewer, fuller rounds win; ties go to the smaller cluster.
  double best = 1e300;
  for (int cs = 1; cs <= kMaxCluster; ++cs) {
    const int block_chunks = (p.nch + cs - 1) / cs;
    const int block_tiles = block_chunks * kChunkTiles;
    const size_t smem = w4dec::smem_bytes(block_tiles, p.nb);
    if (smem > kSmemLimit) continue;
    const int res = resident_clusters(p.fn, cs, smem);
    if (res <= 0) continue;
    const int64_t clusters = std::min<int64_t>(res, strips);
    const int64_t rounds = (strips + clusters - 1) / clusters;
    const int cpw = (p.nch + cs * kWarps - 1) / (cs * kWarps);
    const double cost = static_cast<double>(rounds) * (cpw + 0.35);
    if (cost < best - 1e-9) {
      best = cost;
      p.cs = cs;
      p.clusters = static_cast<int>(clusters);
      p.rounds = static_cast<int>(rounds);
      p.block_tiles = block_tiles;
      p.smem = smem;
    }
  }
  OMNI_CHECK(best < 1e299, "w4a16 decode kernel: no cluster size fits (K = ", w.in_features, ")");
  return p;
}

}  // namespace

bool w4a16_decode_supports(int64_t M, const W4A16DeviceWeights& w) {
  // OMNI_W4A16_DECODE=0 sends M <= 16 to the v3 split-K kernel again (a switch while v4 is new).
  static const bool enabled = [] {
    const char* e = std::getenv("OMNI_W4A16_DECODE");
    return !(e && std::string(e) == "0");
  }();
  if (!enabled || M < 1 || M > kW4DecodeMaxM) return false;
  // The block's K range of x in shared memory: K up to 8 clusters x 227 KB.
  const int64_t nch = (w.in_features + 127) / 128;
  const int nb = M <= 8 ? 1 : 2;
  const int block_tiles = static_cast<int>((nch + kMaxCluster - 1) / kMaxCluster) * kChunkTiles;
  const size_t smem = w4dec::smem_bytes(block_tiles, nb);
  return smem <= kSmemLimit;
}

void w4a16_set_pdl(bool on) { g_pdl.store(on); }
void w4a16_set_decode_fold(bool on) { g_fold.store(on); }

std::string w4a16_decode_plan(int64_t M, const W4A16DeviceWeights& w) {
  const Plan p = make_plan(M, w, ActDType::BF16);
  return str_cat("cs ", p.cs, " x ", p.clusters, " clusters, ", p.rounds, " rounds, ",
                 (p.nch + p.cs * kWarps - 1) / (p.cs * kWarps), " chunks/warp, smem ", p.smem / 1024, " KB");
}

void w4a16_decode_gemm(const W4A16DeviceWeights& w, int group_shift, const void* x, void* y, int64_t M,
                       ActDType act, const float* bias_or_null, cudaStream_t stream) {
  OMNI_CHECK(w4a16_decode_supports(M, w), "w4a16 decode kernel: M = ", M, ", K = ", w.in_features, " not supported");
  const Plan p = make_plan(M, w, act);
  DecodeArgs args{};
  args.qweight = reinterpret_cast<const uint4*>(w.qweight);
  args.scales = w.scales;
  args.zeros = w.zeros;
  args.x = static_cast<const uint16_t*>(x);
  args.y = static_cast<uint16_t*>(y);
  args.bias = bias_or_null;
  args.M = static_cast<int>(M);
  args.N = static_cast<int>(w.out_features);
  args.K = static_cast<int>(w.in_features);
  args.G = static_cast<int>(w.num_groups);
  args.group_shift = group_shift;
  args.strips = static_cast<int>(w.out_features / 64);
  args.k_tiles = static_cast<int>(w.in_features / 16);
  args.nch = p.nch;
  args.cs = p.cs;
  args.clusters = p.clusters;
  args.block_tiles = p.block_tiles;

  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(p.clusters) * static_cast<unsigned>(p.cs));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = p.smem;
  cfg.stream = stream;
  cudaLaunchAttribute attrs[2]{};
  attrs[0].id = cudaLaunchAttributeClusterDimension;
  attrs[0].val.clusterDim.x = static_cast<unsigned>(p.cs);
  attrs[0].val.clusterDim.y = 1;
  attrs[0].val.clusterDim.z = 1;
  attrs[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attrs[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attrs;
  cfg.numAttrs = g_pdl.load() ? 2 : 1;
  check(cudaLaunchKernelEx(&cfg, p.fn, args), "cudaLaunchKernelEx(w4a16_decode_kernel)");
}

}  // namespace omni::cuda
