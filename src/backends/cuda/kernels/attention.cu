// Causal attention over a KV cache, and the training backward. One warp per (query row, head): the warp takes
// the visible keys 32 at a time, one key per lane for the scores (q in shared memory), then accumulates the
// values with each lane owning head-dim elements lane, lane+32, ... (coalesced loads of the value rows).
// Online softmax in f32; log-sum-exp saved for the backward. Head dims up to kMaxHeadDim.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;
constexpr int kWarps = 4;  // warps (rows × heads) per block

template <class T>
__device__ float dot_row(const float* a, const T* b, int64_t hd) {
  float acc = 0.f;
  for (int64_t d = 0; d < hd; ++d) acc += a[d] * to_f32(b[d]);
  return acc;
}

template <class T>
__global__ void attention_kernel(T* out, const T* q, const T* k, const T* v, const int32_t* slot,
                                 const int32_t* position, AttentionShape sh, float* lse, DeviceFault* fault) {
  __shared__ float q_s[kWarps][kMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t task = blockIdx.x * static_cast<int64_t>(kWarps) + warp;  // row * Hq + head
  if (task >= sh.N * sh.Hq) return;
  const int64_t i = task / sh.Hq, h = task % sh.Hq, hk = h / (sh.Hq / sh.Hkv), hd = sh.hd;
  const int32_t s = slot[i], pos = position[i];
  if (s < 0 || s >= sh.S || pos < 0 || pos >= sh.C) {
    if (lane == 0) {
      if (s < 0 || s >= sh.S)
        report_fault(fault, FaultCode::AttentionSlot, i, s, sh.S);
      else
        report_fault(fault, FaultCode::AttentionPosition, i, pos, sh.C);
    }
    return;
  }
  const int64_t p = sh.causal ? pos : sh.C - 1;  // the last key this row sees
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const T* qi = q + task * hd;
  for (int64_t d = lane; d < hd; d += 32) q_s[warp][d] = to_f32(qi[d]);
  __syncwarp();
  const int64_t kv_stride = sh.Hkv * hd;  // between consecutive positions
  const T* k0 = k + (static_cast<int64_t>(s) * sh.C * sh.Hkv + hk) * hd;
  const T* v0 = v + (static_cast<int64_t>(s) * sh.C * sh.Hkv + hk) * hd;
  float m = -INFINITY, l = 0.f, acc[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) acc[t] = 0.f;
  for (int64_t base = 0; base <= p; base += 32) {
    const int64_t j = base + lane;
    const float score = j <= p ? dot_row(q_s[warp], k0 + j * kv_stride, hd) * scale : -INFINITY;
    const float m_new = fmaxf(m, warp_max(score));
    const float e = j <= p ? expf(score - m_new) : 0.f;
    const float corr = expf(m - m_new);  // 0 on the first chunk (m = −inf)
    l = l * corr + warp_sum(e);
#pragma unroll
    for (int t = 0; t < kPerLane; ++t) acc[t] *= corr;
    const int64_t last = p - base < 31 ? p - base : 31;
    for (int64_t jj = 0; jj <= last; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, e, static_cast<int>(jj));
      const T* vr = v0 + (base + jj) * kv_stride;
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        if (d < hd) acc[t] += pj * to_f32(vr[d]);
      }
    }
    m = m_new;
  }
  T* o = out + task * hd;
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < hd) o[d] = from_f32<T>(acc[t] / l);
  }
  if (lse && lane == 0) lse[task] = m + logf(l);
}

// delta[i, h] = Σ_d dout · out (the softmax backward's row term).
__global__ void attention_delta_kernel(float* delta, const float* dout, const float* out, int64_t tasks, int64_t hd) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t task = blockIdx.x * static_cast<int64_t>(kWarps) + warp;
  if (task >= tasks) return;
  float acc = 0.f;
  for (int64_t d = lane; d < hd; d += 32) acc += dout[task * hd + d] * out[task * hd + d];
  acc = warp_sum(acc);
  if (lane == 0) delta[task] = acc;
}

// dq for one (row, head): Σ_j ds_ij · k_j · scale with ds = p (dout·v_j − delta), p = exp(s − lse).
__global__ void attention_dq_kernel(float* dq, const float* dout, const float* q, const float* k, const float* v,
                                    const float* lse, const float* delta, AttentionShape sh) {
  __shared__ float q_s[kWarps][kMaxHeadDim], g_s[kWarps][kMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t task = blockIdx.x * static_cast<int64_t>(kWarps) + warp;
  if (task >= sh.N * sh.Hq) return;
  const int64_t i = task / sh.Hq, h = task % sh.Hq, hk = h / (sh.Hq / sh.Hkv), hd = sh.hd;
  const int64_t s = i / sh.C, p = i % sh.C;  // whole sequences: rows are slots × positions in order
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  for (int64_t d = lane; d < hd; d += 32) {
    q_s[warp][d] = q[task * hd + d];
    g_s[warp][d] = dout[task * hd + d];
  }
  __syncwarp();
  const float L = lse[task], D = delta[task];
  const int64_t kv_stride = sh.Hkv * hd;
  const float* k0 = k + (s * sh.C * sh.Hkv + hk) * hd;
  const float* v0 = v + (s * sh.C * sh.Hkv + hk) * hd;
  float acc[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) acc[t] = 0.f;
  for (int64_t base = 0; base <= p; base += 32) {
    const int64_t j = base + lane;
    float ds = 0.f;
    if (j <= p) {
      const float pr = expf(dot_row(q_s[warp], k0 + j * kv_stride, hd) * scale - L);
      ds = pr * (dot_row(g_s[warp], v0 + j * kv_stride, hd) - D);
    }
    const int64_t last = p - base < 31 ? p - base : 31;
    for (int64_t jj = 0; jj <= last; ++jj) {
      const float dsj = __shfl_sync(0xffffffffu, ds, static_cast<int>(jj));
      const float* kr = k0 + (base + jj) * kv_stride;
#pragma unroll
      for (int t = 0; t < kPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        if (d < hd) acc[t] += dsj * kr[d];
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < hd) dq[task * hd + d] = acc[t] * scale;
  }
}

// dk, dv for one (key row, kv head): sums over the query heads of its group and the rows at or after it.
__global__ void attention_dkdv_kernel(float* dk, float* dv, const float* dout, const float* q, const float* k,
                                      const float* v, const float* lse, const float* delta, AttentionShape sh) {
  __shared__ float k_s[kWarps][kMaxHeadDim], v_s[kWarps][kMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t task = blockIdx.x * static_cast<int64_t>(kWarps) + warp;  // key row * Hkv + kv head
  if (task >= sh.N * sh.Hkv) return;
  const int64_t j = task / sh.Hkv, hk = task % sh.Hkv, hd = sh.hd, group = sh.Hq / sh.Hkv;
  const int64_t s = j / sh.C, pj = j % sh.C;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  for (int64_t d = lane; d < hd; d += 32) {
    k_s[warp][d] = k[task * hd + d];
    v_s[warp][d] = v[task * hd + d];
  }
  __syncwarp();
  float dk_acc[kPerLane], dv_acc[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) dk_acc[t] = dv_acc[t] = 0.f;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    for (int64_t base = pj; base < sh.C; base += 32) {
      const int64_t pi = base + lane, i = s * sh.C + pi;
      float pr = 0.f, ds = 0.f;
      if (pi < sh.C) {
        const int64_t qt = i * sh.Hq + h;
        pr = expf(dot_row(k_s[warp], q + qt * hd, hd) * scale - lse[qt]);
        ds = pr * (dot_row(v_s[warp], dout + qt * hd, hd) - delta[qt]);
      }
      const int64_t last = sh.C - 1 - base < 31 ? sh.C - 1 - base : 31;
      for (int64_t ii = 0; ii <= last; ++ii) {
        const float pi_r = __shfl_sync(0xffffffffu, pr, static_cast<int>(ii));
        const float ds_r = __shfl_sync(0xffffffffu, ds, static_cast<int>(ii));
        const int64_t qt = (s * sh.C + base + ii) * sh.Hq + h;
        const float *qr = q + qt * hd, *gr = dout + qt * hd;
#pragma unroll
        for (int t = 0; t < kPerLane; ++t) {
          const int64_t d = lane + 32 * t;
          if (d < hd) {
            dv_acc[t] += pi_r * gr[d];
            dk_acc[t] += ds_r * qr[d];
          }
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < hd) {
      dk[task * hd + d] = dk_acc[t] * scale;
      dv[task * hd + d] = dv_acc[t];
    }
  }
}

unsigned warp_blocks(int64_t tasks) {
  const int64_t b = (tasks + kWarps - 1) / kWarps;
  OMNI_CHECK(b < (int64_t{1} << 31), "attention: too many rows for one launch: ", tasks);
  return static_cast<unsigned>(b);
}

}  // namespace

void launch_attention(void* out, const void* q, const void* k, const void* v, DType act, const int32_t* slot,
                      const int32_t* position, const AttentionShape& sh, float* lse, DeviceFault* fault,
                      cudaStream_t s) {
  OMNI_CHECK(sh.hd <= kMaxHeadDim, "attention: the CUDA kernel takes head dims up to ", kMaxHeadDim, ", found ",
             sh.hd);
  if (sh.N == 0) return;
  dispatch_float(act, "attention", [&](auto tag) {
    using T = decltype(tag);
    attention_kernel<<<warp_blocks(sh.N * sh.Hq), kWarps * 32, 0, s>>>(
        static_cast<T*>(out), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), slot,
        position, sh, lse, fault);
  });
  check_launch("attention_kernel");
}

void launch_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                               const float* v, const float* out, const float* lse, float* delta,
                               const AttentionShape& sh, cudaStream_t s) {
  OMNI_CHECK(sh.hd <= kMaxHeadDim, "attention_backward: the CUDA kernel takes head dims up to ", kMaxHeadDim,
             ", found ", sh.hd);
  if (sh.N == 0) return;
  attention_delta_kernel<<<warp_blocks(sh.N * sh.Hq), kWarps * 32, 0, s>>>(delta, dout, out, sh.N * sh.Hq, sh.hd);
  check_launch("attention_delta_kernel");
  attention_dq_kernel<<<warp_blocks(sh.N * sh.Hq), kWarps * 32, 0, s>>>(dq, dout, q, k, v, lse, delta, sh);
  check_launch("attention_dq_kernel");
  attention_dkdv_kernel<<<warp_blocks(sh.N * sh.Hkv), kWarps * 32, 0, s>>>(dk, dv, dout, q, k, v, lse, delta, sh);
  check_launch("attention_dkdv_kernel");
}

}  // namespace omni::cuda
