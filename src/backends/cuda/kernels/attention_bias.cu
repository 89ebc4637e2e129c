// Attention with an additive score bias and an explicit scale (T5's relative position bias, CLIP's causal mask as
// −inf entries), forward only, inference: out = softmax(scale · q·kᵀ + bias) · v per sample and head.
//
// One warp per query row (four rows per warp in the tiled kernel), keys in chunks of 32: lane j scores key c + j
// (its dot product over the head dim with the row's q), the chunk's scores update an online softmax (running max
// and sum, the accumulated output rescaled when the max grows), then the warp adds the chunk's p · v with each lane
// owning head dims lane, lane + 32, ... Keys the bias hides (−inf) skip their dot product; a row with none visible
// gives zeros, as the contract says. The sizes it serves are small (T5-XXL: 512 tokens, 64 heads of 64; CLIP: 77
// tokens), so no tensor cores:
//   - tiled (head dims up to 128): a block of 4 warps × 4 query rows of one (sample, head) stages each chunk's keys
//     and values in shared memory (coalesced loads, the key rows padded against bank conflicts) and all 16 rows use
//     it; the outputs accumulate in registers.
//   - plain (larger head dims): one row per warp, keys read from global memory (L1), the output accumulated in
//     shared memory, whatever the head dim.
#include <cstdint>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per block, one query row each

template <class T>
__global__ void attention_bias_kernel(T* out, const T* q, const T* k, const T* v, const float* bias, int64_t Lq,
                                      int64_t Lk, int64_t H, int64_t hd, bool per_sample, float scale) {
  extern __shared__ float smem[];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t b = blockIdx.z, h = blockIdx.y, row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp;
  if (row >= Lq) return;  // the whole warp leaves; nothing below synchronises the block
  float* qs = smem + warp * (2 * hd + 32);
  float* acc = qs + hd;
  float* ps = acc + hd;
  const int64_t qoff = ((b * Lq + row) * H + h) * hd;
  for (int64_t d = lane; d < hd; d += 32) {
    qs[d] = to_f32(q[qoff + d]);
    acc[d] = 0.f;
  }
  __syncwarp();
  const int64_t key_stride = H * hd;  // between consecutive keys of one head
  const T* kb = k + b * Lk * key_stride + h * hd;
  const T* vb = v + b * Lk * key_stride + h * hd;
  // No bias (nullptr): every key visible, the plain full-mask attention of heads too wide for the flash kernel.
  const float* brow = bias ? bias + (((per_sample ? b * H : 0) + h) * Lq + row) * Lk : nullptr;
  float m = -INFINITY, l = 0.f;
  for (int64_t c = 0; c < Lk; c += 32) {
    const int64_t j = c + lane;
    float sc = -INFINITY;
    if (j < Lk) {
      const float bj = brow ? brow[j] : 0.f;
      if (bj != -INFINITY) {
        const T* kj = kb + j * key_stride;
        float dot = 0.f;
        for (int64_t d = 0; d < hd; ++d) dot += qs[d] * to_f32(kj[d]);
        sc = scale * dot + bj;
      }
    }
    const float nm = fmaxf(m, warp_max(sc));
    if (nm == -INFINITY) continue;  // every key so far hidden (the same answer in every lane)
    const float corr = expf(m - nm);  // 0 while m is still −inf
    const float p = expf(sc - nm);    // 0 for hidden keys and lanes past Lk
    l = l * corr + warp_sum(p);
    m = nm;
    ps[lane] = p;
    __syncwarp();
    const int cnt = static_cast<int>(Lk - c < 32 ? Lk - c : 32);
    for (int64_t d = lane; d < hd; d += 32) {
      float a = acc[d] * corr;
      for (int jj = 0; jj < cnt; ++jj) a += ps[jj] * to_f32(vb[(c + jj) * key_stride + d]);
      acc[d] = a;
    }
    __syncwarp();  // ps is rewritten by the next chunk
  }
  T* o = out + qoff;
  const float inv = m == -INFINITY ? 0.f : 1.0f / l;
  for (int64_t d = lane; d < hd; d += 32) o[d] = from_f32<T>(m == -INFINITY ? 0.f : acc[d] * inv);
}

constexpr int kTiledWarps = 4, kTiledRows = 4;  // rows per warp
constexpr int kTiledMaxHd = 128, kTiledDimsPerLane = kTiledMaxHd / 32;

template <class T>
__global__ void attention_bias_tiled_kernel(T* out, const T* q, const T* k, const T* v, const float* bias,
                                            int64_t Lq, int64_t Lk, int64_t H, int64_t hd, bool per_sample,
                                            float scale) {
  extern __shared__ float smem[];
  float* ks = smem;                         // [32][hd + 1]
  float* vs = ks + 32 * (hd + 1);           // [32][hd]
  float* qs = vs + 32 * hd;                 // [warps · rows][hd]
  float* ps = qs + kTiledWarps * kTiledRows * hd;  // [warps][32]
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t b = blockIdx.z, h = blockIdx.y;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * (kTiledWarps * kTiledRows) + warp * kTiledRows;
  const int64_t key_stride = H * hd;
  for (int rr = 0; rr < kTiledRows; ++rr) {
    const int64_t row = row0 + rr;
    for (int64_t d = lane; d < hd; d += 32)
      qs[(warp * kTiledRows + rr) * hd + d] = row < Lq ? to_f32(q[((b * Lq + row) * H + h) * hd + d]) : 0.f;
  }
  float m[kTiledRows], l[kTiledRows], acc[kTiledRows][kTiledDimsPerLane];
#pragma unroll
  for (int rr = 0; rr < kTiledRows; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int t = 0; t < kTiledDimsPerLane; ++t) acc[rr][t] = 0.f;
  }
  const T* kb = k + b * Lk * key_stride + h * hd;
  const T* vb = v + b * Lk * key_stride + h * hd;
  const float* bias_bh = bias ? bias + ((per_sample ? b * H : 0) + h) * Lq * Lk : nullptr;
  for (int64_t c = 0; c < Lk; c += 32) {
    const int cnt = static_cast<int>(Lk - c < 32 ? Lk - c : 32);
    __syncthreads();  // the previous chunk is consumed (and, the first time, q is staged)
    for (int64_t e = threadIdx.x; e < cnt * hd; e += blockDim.x) {
      const int64_t jj = e / hd, d = e % hd;
      ks[jj * (hd + 1) + d] = to_f32(kb[(c + jj) * key_stride + d]);
      vs[jj * hd + d] = to_f32(vb[(c + jj) * key_stride + d]);
    }
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < kTiledRows; ++rr) {
      const int64_t row = row0 + rr;
      if (row >= Lq) break;  // the same in every lane
      const float* qr = qs + (warp * kTiledRows + rr) * hd;
      float sc = -INFINITY;
      if (lane < cnt) {
        const float bj = bias_bh ? bias_bh[row * Lk + c + lane] : 0.f;
        if (bj != -INFINITY) {
          const float* kr = ks + lane * (hd + 1);
          float dot = 0.f;
          for (int64_t d = 0; d < hd; ++d) dot += qr[d] * kr[d];
          sc = scale * dot + bj;
        }
      }
      const float nm = fmaxf(m[rr], warp_max(sc));
      if (nm == -INFINITY) continue;  // every key so far hidden
      const float corr = expf(m[rr] - nm), p = expf(sc - nm);
      l[rr] = l[rr] * corr + warp_sum(p);
      m[rr] = nm;
      ps[warp * 32 + lane] = p;
      __syncwarp();
#pragma unroll
      for (int t = 0; t < kTiledDimsPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        if (d >= hd) break;
        float a = acc[rr][t] * corr;
        for (int jj = 0; jj < cnt; ++jj) a += ps[warp * 32 + jj] * vs[jj * hd + d];
        acc[rr][t] = a;
      }
      __syncwarp();  // ps is rewritten by the next row
    }
  }
#pragma unroll
  for (int rr = 0; rr < kTiledRows; ++rr) {
    const int64_t row = row0 + rr;
    if (row >= Lq) break;
    T* o = out + ((b * Lq + row) * H + h) * hd;
    const bool none = m[rr] == -INFINITY;
    const float inv = none ? 0.f : 1.0f / l[rr];
#pragma unroll
    for (int t = 0; t < kTiledDimsPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < hd) o[d] = from_f32<T>(none ? 0.f : acc[rr][t] * inv);
    }
  }
}

}  // namespace

void launch_attention_with_bias(void* out, const void* q, const void* k, const void* v, const float* bias, int64_t B,
                                int64_t Lq, int64_t Lk, int64_t H, int64_t hd, bool bias_per_sample, float scale,
                                DType act, cudaStream_t s) {
  if (B * Lq * H * hd == 0) return;
  OMNI_CHECK(H <= 65535 && B <= 65535, "attention_with_bias: ", B, " samples of ", H,
             " heads exceed the CUDA grid (65535 each)");
  if (hd <= kTiledMaxHd) {
    const size_t smem =
        static_cast<size_t>(32 * (hd + 1) + 32 * hd + kTiledWarps * kTiledRows * hd + kTiledWarps * 32) * sizeof(float);
    const int64_t rows = kTiledWarps * kTiledRows;
    const dim3 grid(static_cast<unsigned>((Lq + rows - 1) / rows), static_cast<unsigned>(H), static_cast<unsigned>(B));
    dispatch_float(act, "attention_with_bias", [&](auto tag) {
      using T = decltype(tag);
      attention_bias_tiled_kernel<<<grid, kTiledWarps * 32, smem, s>>>(
          static_cast<T*>(out), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), bias, Lq,
          Lk, H, hd, bias_per_sample, scale);
    });
    check_launch("attention_bias_tiled_kernel");
    return;
  }
  const size_t smem = static_cast<size_t>(kRowsPerBlock) * static_cast<size_t>(2 * hd + 32) * sizeof(float);
  OMNI_CHECK(smem <= 48 * 1024, "attention_with_bias: head dim ", hd, " is too large for the CUDA kernel (at most ",
             (48 * 1024 / (kRowsPerBlock * 4) - 32) / 2, ")");
  const dim3 grid(static_cast<unsigned>((Lq + kRowsPerBlock - 1) / kRowsPerBlock), static_cast<unsigned>(H),
                  static_cast<unsigned>(B));
  dispatch_float(act, "attention_with_bias", [&](auto tag) {
    using T = decltype(tag);
    attention_bias_kernel<<<grid, kRowsPerBlock * 32, smem, s>>>(static_cast<T*>(out), static_cast<const T*>(q),
                                                                 static_cast<const T*>(k), static_cast<const T*>(v),
                                                                 bias, Lq, Lk, H, hd, bias_per_sample, scale);
  });
  check_launch("attention_bias_kernel");
}

}  // namespace omni::cuda
