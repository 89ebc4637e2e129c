// Attention over a KV cache, and the training backward.
//
// Few rows (a decode step; no lse): attention_split_kernel, one block of kSplitWarps warps per (query row, kv
// head, batch of up to kSplitGroup query heads of that kv head's group, key split). The block reads each visible
// key and value of its split once (a warp per key, each lane owning head-dim elements lane, lane+32, ..., so a row
// is one coalesced load) for all its query heads, keeps an online softmax per head in f32, and combines its warps
// in shared memory. With several splits (split-K over the keys: a decode step has one row, so the keys are what
// can be spread over the chip) each split writes its normalised partial output and log-sum-exp to scratch, and
// the last block of a (row, head batch) to finish, found by an atomic counter, combines them and resets the
// counter to zero.
//
// Training (lse saved), and batches with enough (row, head) pairs to fill the chip: attention_kernel, one warp
// per (query row, head): the warp takes the visible keys 32 at a time, one key per lane for the scores (q in
// shared memory), then accumulates the values with each lane owning head-dim elements lane, lane+32, ... Online
// softmax in f32; log-sum-exp saved for the backward.
// Head dims up to kMaxHeadDim.
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

// ---- inference: key-split attention ----
constexpr int kSplitWarps = 4;
constexpr int kSplitGroup = 8;    // query heads per block
constexpr int kMaxSplits = 64;

// PL = head-dim elements per lane (hd <= 32 * PL).
template <class T, int PL>
__global__ void __launch_bounds__(kSplitWarps * 32)
    attention_split_kernel(T* out, const T* q, const T* k, const T* v, const int32_t* slot, const int32_t* position,
                           AttentionShape sh, int splits, int64_t chunk, int batches, float* part_o, float* part_lse,
                           int* counters, DeviceFault* fault) {
  __shared__ float sm_m[kSplitWarps][kSplitGroup], sm_l[kSplitWarps][kSplitGroup];
  __shared__ float sm_acc[kSplitWarps][kSplitGroup][32 * PL];
  __shared__ float sm_w[kSplitGroup][kMaxSplits];
  __shared__ int sm_last;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t unit = blockIdx.y;  // (row, kv head, head batch)
  const int64_t G = sh.Hq / sh.Hkv, hd = sh.hd;
  const int64_t i = unit / (sh.Hkv * batches), hk = (unit / batches) % sh.Hkv, hb = unit % batches;
  const int64_t h0 = hk * G + hb * kSplitGroup;  // first query head of the block
  const int nh = static_cast<int>(G - hb * kSplitGroup < kSplitGroup ? G - hb * kSplitGroup : kSplitGroup);
  const int sp = static_cast<int>(blockIdx.x);
  const int32_t s = slot[i], pos = position[i];
  if (s < 0 || s >= sh.S || pos < 0 || pos >= sh.C) {  // every block of the row returns here: counters untouched
    if (threadIdx.x == 0 && sp == 0 && hk == 0 && hb == 0) {
      if (s < 0 || s >= sh.S)
        report_fault(fault, FaultCode::AttentionSlot, i, s, sh.S);
      else
        report_fault(fault, FaultCode::AttentionPosition, i, pos, sh.C);
    }
    return;
  }
  const int64_t last = sh.causal ? pos : sh.C - 1;  // the last key this row sees
  const int64_t j0 = sp * chunk, j1 = j0 + chunk - 1 < last ? j0 + chunk - 1 : last;  // keys j0..j1
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));

  float qv[kSplitGroup][PL], acc[kSplitGroup][PL], m[kSplitGroup], l[kSplitGroup];
#pragma unroll
  for (int g = 0; g < kSplitGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int t = 0; t < PL; ++t) {
      const int64_t d = lane + 32 * t;
      acc[g][t] = 0.f;
      qv[g][t] = g < nh && d < hd ? to_f32(q[(i * sh.Hq + h0 + g) * hd + d]) : 0.f;
    }
  }
  const int64_t kv_stride = sh.Hkv * hd;  // between consecutive positions
  const T* k0 = k + (static_cast<int64_t>(s) * sh.C * sh.Hkv + hk) * hd;
  const T* v0 = v + (static_cast<int64_t>(s) * sh.C * sh.Hkv + hk) * hd;
  // One key per warp and iteration; the next key's rows are loaded before the current one is used.
  int64_t j = j0 + warp;
  float kn[PL], vn[PL];
  auto load = [&](int64_t jj, float* kr, float* vr) {
#pragma unroll
    for (int t = 0; t < PL; ++t) {
      const int64_t d = lane + 32 * t;
      const bool in = jj <= j1 && d < hd;
      kr[t] = in ? to_f32(k0[jj * kv_stride + d]) : 0.f;
      vr[t] = in ? to_f32(v0[jj * kv_stride + d]) : 0.f;
    }
  };
  load(j, kn, vn);
  for (; j <= j1; j += kSplitWarps) {
    float kc[PL], vc[PL];
#pragma unroll
    for (int t = 0; t < PL; ++t) {
      kc[t] = kn[t];
      vc[t] = vn[t];
    }
    load(j + kSplitWarps, kn, vn);
#pragma unroll
    for (int g = 0; g < kSplitGroup; ++g) {
      if (g >= nh) break;
      float dot = 0.f;
#pragma unroll
      for (int t = 0; t < PL; ++t) dot += qv[g][t] * kc[t];
      const float score = warp_sum(dot) * scale;  // the same value in every lane (xor butterfly)
      // One exponential per key: either the new score or the running maximum is the larger.
      float corr, p;
      if (score > m[g]) {
        corr = expf(m[g] - score);  // 0 on the first key (m = −inf)
        p = 1.f;
        m[g] = score;
      } else {
        corr = 1.f;
        p = expf(score - m[g]);
      }
      l[g] = l[g] * corr + p;
#pragma unroll
      for (int t = 0; t < PL; ++t) acc[g][t] = acc[g][t] * corr + p * vc[t];
    }
  }
  // The block's warps into one (m, l, acc) per head.
#pragma unroll
  for (int g = 0; g < kSplitGroup; ++g) {
    if (g >= nh) break;
    if (lane == 0) {
      sm_m[warp][g] = m[g];
      sm_l[warp][g] = l[g];
    }
#pragma unroll
    for (int t = 0; t < PL; ++t) sm_acc[warp][g][lane + 32 * t] = acc[g][t];
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < nh * hd; e += blockDim.x) {
    const int g = static_cast<int>(e / hd);
    const int64_t d = e % hd;
    float M = -INFINITY;
    for (int w = 0; w < kSplitWarps; ++w) M = fmaxf(M, sm_m[w][g]);
    float L = 0.f, O = 0.f;
    if (M != -INFINITY) {
      for (int w = 0; w < kSplitWarps; ++w) {
        const float c = expf(sm_m[w][g] - M);  // 0 for a warp that saw no key
        L += sm_l[w][g] * c;
        O += sm_acc[w][g][d] * c;
      }
    }
    const int64_t th = i * sh.Hq + h0 + g;  // (row, head)
    if (splits == 1) {
      out[th * hd + d] = from_f32<T>(O / L);
    } else {
      part_o[(th * splits + sp) * hd + d] = L > 0.f ? O / L : 0.f;
      if (d == 0) part_lse[th * splits + sp] = L > 0.f ? M + logf(L) : -INFINITY;
    }
  }
  if (splits == 1) return;
  // The last split block of this unit to get here combines the splits.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    const int done = atomicAdd(&counters[unit], 1);
    sm_last = done == splits - 1;
  }
  __syncthreads();
  if (!sm_last) return;
  __threadfence();
  for (int e = threadIdx.x; e < nh * splits; e += blockDim.x) {
    const int g = e / splits, sx = e % splits;
    sm_w[g][sx] = __ldcg(&part_lse[(i * sh.Hq + h0 + g) * splits + sx]);
  }
  __syncthreads();
  if (threadIdx.x < nh) {  // weights exp(lse_s − max) / Σ; split 0 always holds key 0, so the max is finite
    const int g = threadIdx.x;
    float M = -INFINITY;
    for (int sx = 0; sx < splits; ++sx) M = fmaxf(M, sm_w[g][sx]);
    float sum = 0.f;
    for (int sx = 0; sx < splits; ++sx) {
      const float w = expf(sm_w[g][sx] - M);
      sm_w[g][sx] = w;
      sum += w;
    }
    for (int sx = 0; sx < splits; ++sx) sm_w[g][sx] /= sum;
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < nh * hd; e += blockDim.x) {
    const int g = static_cast<int>(e / hd);
    const int64_t d = e % hd, th = i * sh.Hq + h0 + g;
    float O = 0.f;
    for (int sx = 0; sx < splits; ++sx)
      if (sm_w[g][sx] > 0.f) O += sm_w[g][sx] * __ldcg(&part_o[(th * splits + sx) * hd + d]);
    out[th * hd + d] = from_f32<T>(O);
  }
  if (threadIdx.x == 0) counters[unit] = 0;  // ready for the next launch
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

AttentionSplitPlan plan_attention_split(const AttentionShape& sh, int sm_count) {
  AttentionSplitPlan p;
  const int64_t G = sh.Hq / sh.Hkv;
  p.batches = static_cast<int>((G + kSplitGroup - 1) / kSplitGroup);
  p.units = sh.N * sh.Hkv * p.batches;
  p.splits = 1;
  p.chunk = sh.C;
  // Few units (decode): split the keys so that about two blocks per multiprocessor run, each with at least 32
  // keys (8 per warp), at most kMaxSplits of them. The split depends on the capacity, not on the positions, so a
  // recorded launch serves every step.
  const int64_t target = 2 * static_cast<int64_t>(sm_count);
  if (p.units < target && p.units <= kAttentionCounters && sh.C > 32) {
    int64_t splits = (target + p.units - 1) / p.units;
    splits = std::min<int64_t>({splits, (sh.C + 31) / 32, kMaxSplits});
    if (splits > 1) {
      p.chunk = (sh.C + splits - 1) / splits;
      p.splits = static_cast<int>((sh.C + p.chunk - 1) / p.chunk);
    }
  }
  return p;
}

int64_t attention_split_scratch_floats(const AttentionShape& sh, const AttentionSplitPlan& p) {
  return p.splits == 1 ? 0 : sh.N * sh.Hq * p.splits * (sh.hd + 1);
}

void launch_attention_split(void* out, const void* q, const void* k, const void* v, DType act, const int32_t* slot,
                            const int32_t* position, const AttentionShape& sh, const AttentionSplitPlan& plan,
                            float* scratch, int* counters, DeviceFault* fault, cudaStream_t s) {
  OMNI_CHECK(sh.hd <= kMaxHeadDim, "attention: the CUDA kernel takes head dims up to ", kMaxHeadDim, ", found ",
             sh.hd);
  if (sh.N == 0) return;
  OMNI_CHECK(plan.units <= 65535 && plan.splits >= 1 && plan.splits <= kMaxSplits,
             "attention: too many rows for the key-split kernel: ", sh.N, " rows × ", sh.Hkv, " kv heads");
  OMNI_CHECK(plan.splits == 1 || (scratch && counters && plan.units <= kAttentionCounters),
             "attention: a key-split launch needs scratch and counters");
  float* part_o = scratch;
  float* part_lse = scratch ? scratch + sh.N * sh.Hq * plan.splits * sh.hd : nullptr;
  const dim3 grid(static_cast<unsigned>(plan.splits), static_cast<unsigned>(plan.units));
  dispatch_float(act, "attention", [&](auto tag) {
    using T = decltype(tag);
    auto go = [&](auto kernel) {
      kernel<<<grid, kSplitWarps * 32, 0, s>>>(static_cast<T*>(out), static_cast<const T*>(q),
                                               static_cast<const T*>(k), static_cast<const T*>(v), slot, position, sh,
                                               plan.splits, plan.chunk, plan.batches, part_o, part_lse, counters,
                                               fault);
    };
    if (sh.hd <= 32)
      go(attention_split_kernel<T, 1>);
    else if (sh.hd <= 64)
      go(attention_split_kernel<T, 2>);
    else if (sh.hd <= 128)
      go(attention_split_kernel<T, 4>);
    else
      go(attention_split_kernel<T, 8>);
  });
  check_launch("attention_split_kernel");
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
