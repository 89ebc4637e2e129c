// The VAE decoder's image ops on NCHW tensors: the column matrix and the small-Cout direct kernel of conv2d (the
// GEMM is cuBLAS, in cuda_backend_diffusion.cpp), the per-channel bias fill, GroupNorm, nearest ×2 upsampling and
// the transpose of the last two dims. f32 arithmetic, one rounding on store; upsample and transpose move bits.
#include <cstdint>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

template <class T>
struct alignas(16) Vec16 {
  static constexpr int kN = 16 / static_cast<int>(sizeof(T));
  T v[kN];
};

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

unsigned grid_1d(int64_t n, int threads = kThreads) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, 65536));
}

// Threads per block along an output row: the row's width rounded up to a warp, at most 256.
int row_block(int64_t Wo) { return static_cast<int>(std::min<int64_t>(256, (Wo + 31) / 32 * 32)); }

// ---- conv2d ----

// col[(img·K + k)·n + t] for the output pixels t = (r − r0)·Wo + c of rows r0 .. r0 + n/Wo − 1 and k = (ci·kh + i)·kw
// + j: x[img, ci, r + i − pad, c + j − pad], 0 in the padding. Row-major [K, n] per image is the column-major
// [n, K] matrix cuBLAS multiplies by the weights. Consecutive threads take consecutive pixels: the reads (a
// shifted image row) and the writes are coalesced.
template <class T>
__global__ void im2col_kernel(T* col, const T* x, int64_t images, int64_t Cin, int64_t H, int64_t W, int64_t kh,
                              int64_t kw, int64_t pad, int64_t Wo, int64_t r0, int64_t n) {
  const int64_t K = Cin * kh * kw;
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= n) return;
  const int64_t r = r0 + t / Wo, c = t % Wo;
  for (int64_t img = blockIdx.z; img < images; img += gridDim.z)
    for (int64_t k = blockIdx.y; k < K; k += gridDim.y) {
      const int64_t ci = k / (kh * kw), i = (k / kw) % kh, j = k % kw;
      const int64_t xr = r + i - pad, xc = c + j - pad;
      T v = from_f32<T>(0.f);
      if (xr >= 0 && xr < H && xc >= 0 && xc < W) v = x[((img * Cin + ci) * H + xr) * W + xc];
      col[(img * K + k) * n + t] = v;
    }
}

// Direct convolution for few output channels (a VAE's conv_out to 3 channels, where the column matrix would cost
// far more than the arithmetic): one thread per output pixel of row blockIdx.y, image blockIdx.z, all
// Cout ≤ kMaxDirectCout sums in registers. The f32 weights go through shared memory, kDirectTaps taps at a time, as
// [tap][8 channels] (zero past Cout): two 16-byte broadcast reads per tap.
constexpr int kDirectTaps = 256;

template <class T>
__global__ void conv2d_direct_kernel(T* y, const T* x, const float* w, const float* bias, int64_t Cin, int64_t H,
                                     int64_t W, int64_t Cout, int kh, int kw, int pad, int64_t Ho, int64_t Wo) {
  static_assert(kMaxDirectCout == 8, "the weight tile holds 8 channels (two float4) per tap");
  __shared__ float4 ws[kDirectTaps][2];
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x, r = blockIdx.y, b = blockIdx.z;
  const int64_t K = Cin * kh * kw;
  float acc[8];
#pragma unroll
  for (int co = 0; co < 8; ++co) acc[co] = co < Cout && bias ? bias[co] : 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += kDirectTaps) {
    const int nt = static_cast<int>(K - k0 < kDirectTaps ? K - k0 : kDirectTaps);
    __syncthreads();  // the previous taps are consumed
    float* wf = reinterpret_cast<float*>(ws);
    for (int t = threadIdx.x; t < nt * 8; t += blockDim.x) {
      const int tap = t / 8, co = t % 8;
      wf[t] = co < Cout ? w[co * K + k0 + tap] : 0.f;
    }
    __syncthreads();
    if (c >= Wo) continue;
    int64_t ci = k0 / (kh * kw);
    int i = static_cast<int>(k0 / kw % kh), j = static_cast<int>(k0 % kw);
    for (int t = 0; t < nt; ++t) {
      const int64_t xr = r + i - pad, xc = c + j - pad;
      if (xr >= 0 && xr < H && xc >= 0 && xc < W) {
        const float xv = to_f32(x[((b * Cin + ci) * H + xr) * W + xc]);
        const float4 w0 = ws[t][0], w1 = ws[t][1];
        acc[0] += w0.x * xv;
        acc[1] += w0.y * xv;
        acc[2] += w0.z * xv;
        acc[3] += w0.w * xv;
        acc[4] += w1.x * xv;
        acc[5] += w1.y * xv;
        acc[6] += w1.z * xv;
        acc[7] += w1.w * xv;
      }
      if (++j == kw) {
        j = 0;
        if (++i == kh) {
          i = 0;
          ++ci;
        }
      }
    }
  }
  if (c >= Wo) return;
#pragma unroll
  for (int co = 0; co < 8; ++co)
    if (co < Cout) y[((b * Cout + co) * Ho + r) * Wo + c] = from_f32<T>(acc[co]);
}

// y[b, co, p] = bias[co] over [B, Cout, P]: the start the convolution's GEMM accumulates into (beta = 1).
template <class T>
__global__ void fill_channels_kernel(T* y, const float* bias, int64_t Cout, int64_t P, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride)
    y[i] = from_f32<T>(bias[(i / P) % Cout]);
}

// ---- group_norm ----

// Pass 1: block `split` of group bg = b·G + g reduces its slice [split·chunk, min(n, (split + 1)·chunk)) of the
// group's n = (C/G)·S consecutive values to its mean and Σ(x − mean)² (two passes over the slice, the second from
// L2), written as partial[2·(bg·splits + split) + {0, 1}]. Shifting by the slice's own mean keeps the variance
// free of E[x²] − E[x]² cancellation; the slices are merged in double by group_norm_coef_kernel.
template <class T, bool kVec>
__global__ void group_norm_stats_kernel(float* partial, const T* x, int64_t n, int64_t chunk, int64_t splits) {
  const int64_t bg = blockIdx.x / splits, split = blockIdx.x % splits;
  const int64_t lo = split * chunk, hi = lo + chunk < n ? lo + chunk : n;
  const T* xg = x + bg * n;
  constexpr int V = kVec ? Vec16<T>::kN : 1;
  float s = 0.f;
  for (int64_t i = lo + threadIdx.x * V; i < hi; i += blockDim.x * V) {
    if constexpr (kVec) {
      const Vec16<T> a = *reinterpret_cast<const Vec16<T>*>(xg + i);
#pragma unroll
      for (int k = 0; k < V; ++k) s += to_f32(a.v[k]);
    } else {
      s += to_f32(xg[i]);
    }
  }
  const float mean = block_sum(s) / static_cast<float>(hi - lo);
  float ss = 0.f;
  for (int64_t i = lo + threadIdx.x * V; i < hi; i += blockDim.x * V) {
    if constexpr (kVec) {
      const Vec16<T> a = *reinterpret_cast<const Vec16<T>*>(xg + i);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float d = to_f32(a.v[k]) - mean;
        ss += d * d;
      }
    } else {
      const float d = to_f32(xg[i]) - mean;
      ss += d * d;
    }
  }
  ss = block_sum(ss);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = mean;
    partial[2 * blockIdx.x + 1] = ss;
  }
}

__device__ __forceinline__ double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Pass 2, one warp per (b, c): the group's slices merged in double (mean = Σ nᵢ·meanᵢ / n, M2 = Σ M2ᵢ + nᵢ·(meanᵢ −
// mean)²), then the channel's y = x·a + s with a = inv·weight[c], s = bias[c] − mean·a, as the CPU kernel forms
// them (in double, rounded to f32 once): coef[2·(b·C + c) + {0, 1}] = a, s.
__global__ void group_norm_coef_kernel(float* coef, const float* partial, int64_t C, int64_t G, int64_t n,
                                       int64_t chunk, int64_t splits, double eps, const float* weight,
                                       const float* bias) {
  const int64_t bc = blockIdx.x, b = bc / C, c = bc % C, g = c / (C / G), bg = b * G + g;
  const float* p = partial + 2 * bg * splits;
  auto count = [&](int64_t sp) {
    const int64_t lo = sp * chunk;
    return static_cast<double>((lo + chunk < n ? lo + chunk : n) - lo);
  };
  double sum = 0.0;
  for (int64_t sp = threadIdx.x; sp < splits; sp += 32) sum += count(sp) * static_cast<double>(p[2 * sp]);
  const double mean = warp_sum_d(sum) / static_cast<double>(n);
  double m2 = 0.0;
  for (int64_t sp = threadIdx.x; sp < splits; sp += 32) {
    const double d = static_cast<double>(p[2 * sp]) - mean;
    m2 += static_cast<double>(p[2 * sp + 1]) + count(sp) * d * d;
  }
  m2 = warp_sum_d(m2);
  if (threadIdx.x != 0) return;
  const double inv = 1.0 / sqrt(m2 / static_cast<double>(n) + eps);
  const double a = weight ? inv * static_cast<double>(weight[c]) : inv;
  coef[2 * bc] = static_cast<float>(a);
  coef[2 * bc + 1] = static_cast<float>((bias ? static_cast<double>(bias[c]) : 0.0) - mean * a);
}

// Pass 3: y = x·a + s per channel plane of S positions, `per_plane` blocks each. y may alias x (each element is
// read, then written, by one thread).
template <class T, bool kVec>
__global__ void group_norm_apply_kernel(T* y, const T* x, const float* coef, int64_t S, int64_t per_plane) {
  const int64_t plane = blockIdx.x / per_plane, part = blockIdx.x % per_plane;
  const float a = coef[2 * plane], sft = coef[2 * plane + 1];
  const T* xp = x + plane * S;
  T* yp = y + plane * S;
  constexpr int V = kVec ? Vec16<T>::kN : 1;
  for (int64_t i = (part * blockDim.x + threadIdx.x) * V; i < S; i += per_plane * blockDim.x * V) {
    if constexpr (kVec) {
      Vec16<T> v = *reinterpret_cast<const Vec16<T>*>(xp + i);
#pragma unroll
      for (int k = 0; k < V; ++k) v.v[k] = from_f32<T>(to_f32(v.v[k]) * a + sft);
      *reinterpret_cast<Vec16<T>*>(yp + i) = v;
    } else {
      yp[i] = from_f32<T>(to_f32(xp[i]) * a + sft);
    }
  }
}

// ---- upsample_nearest2x, transpose: bits moved, by element size ----

template <class U>
struct alignas(2 * sizeof(U)) Twice {
  U a, b;
};

// One thread per input element (plane, i, j): the 2×2 output block, as one two-element word in each output row.
template <class U>
__global__ void upsample2x_kernel(U* y, const U* x, int64_t H, int64_t W, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n; t += stride) {
    const int64_t row = t / W, j = t % W;  // row = plane·H + i; output rows 2·row, 2·row + 1 of width 2W
    const U v = x[t];
    Twice<U>* out = reinterpret_cast<Twice<U>*>(y + row * 4 * W) + j;
    out[0] = Twice<U>{v, v};
    out[W] = Twice<U>{v, v};  // the next output row, 2W elements = W words further
  }
}

// 32×32 tiles through shared memory (one padding column against bank conflicts): y[b, n, m] = x[b, m, n].
template <class U>
__global__ void transpose_kernel(U* y, const U* x, int64_t batch, int64_t M, int64_t N) {
  __shared__ U tile[32][33];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * 32, n0 = static_cast<int64_t>(blockIdx.x) * 32;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const U* xb = x + b * M * N;
    U* yb = y + b * M * N;
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int64_t m = m0 + r, n = n0 + threadIdx.x;
      if (m < M && n < N) tile[r][threadIdx.x] = xb[m * N + n];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += blockDim.y) {
      const int64_t n = n0 + r, m = m0 + threadIdx.x;
      if (m < M && n < N) yb[n * M + m] = tile[threadIdx.x][r];
    }
    __syncthreads();  // the tile is refilled for the next batch entry
  }
}

template <class F>
void dispatch_bits(size_t elem_size, const char* op, F&& f) {
  switch (elem_size) {
    case 1: f(uint8_t{}); return;
    case 2: f(uint16_t{}); return;
    case 4: f(uint32_t{}); return;
    case 8: f(uint64_t{}); return;
    default: OMNI_FAIL(op, ": no CUDA kernel for ", elem_size, "-byte elements");
  }
}

}  // namespace

void launch_im2col(void* col, const void* x, DType act, int64_t images, int64_t Cin, int64_t H, int64_t W, int64_t kh,
                   int64_t kw, int64_t pad, int64_t Wo, int64_t r0, int64_t rows, cudaStream_t s) {
  const int64_t n = rows * Wo, K = Cin * kh * kw;
  if (n == 0 || K == 0 || images == 0) return;
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(std::min<int64_t>(K, 65535)),
                  static_cast<unsigned>(std::min<int64_t>(images, 65535)));
  OMNI_CHECK((n + kThreads - 1) / kThreads < (int64_t{1} << 31), "conv2d: a band of ", n, " pixels is too large");
  dispatch_float(act, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    im2col_kernel<<<grid, kThreads, 0, s>>>(static_cast<T*>(col), static_cast<const T*>(x), images, Cin, H, W, kh, kw,
                                            pad, Wo, r0, n);
  });
  check_launch("im2col_kernel");
}

void launch_conv2d_direct(void* y, const void* x, DType act, const float* w, const float* bias, int64_t B, int64_t Cin,
                          int64_t H, int64_t W, int64_t Cout, int64_t kh, int64_t kw, int64_t pad, cudaStream_t s) {
  OMNI_CHECK(Cout <= kMaxDirectCout, "conv2d: the direct kernel takes at most ", kMaxDirectCout, " output channels");
  const int64_t Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1;
  if (B * Ho * Wo == 0) return;
  OMNI_CHECK(Ho <= 65535 && B <= 65535, "conv2d: ", B, " images of ", Ho, " rows exceed the CUDA grid (65535 each)");
  const int threads = std::min(128, row_block(Wo));
  const dim3 grid(static_cast<unsigned>((Wo + threads - 1) / threads), static_cast<unsigned>(Ho),
                  static_cast<unsigned>(B));
  dispatch_float(act, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv2d_direct_kernel<<<grid, threads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), w, bias, Cin, H, W,
                                                  Cout, static_cast<int>(kh), static_cast<int>(kw),
                                                  static_cast<int>(pad), Ho, Wo);
  });
  check_launch("conv2d_direct_kernel");
}

void launch_fill_channels(void* y, DType act, const float* bias, int64_t B, int64_t Cout, int64_t P, cudaStream_t s) {
  const int64_t n = B * Cout * P;
  if (n == 0) return;
  dispatch_float(act, "conv2d", [&](auto tag) {
    using T = decltype(tag);
    fill_channels_kernel<<<grid_1d(n), kThreads, 0, s>>>(static_cast<T*>(y), bias, Cout, P, n);
  });
  check_launch("fill_channels_kernel");
}

GroupNormPlan plan_group_norm(int64_t B, int64_t C, int64_t S, int64_t G) {
  GroupNormPlan p;
  p.n = C / G * S;
  // About 16K values per stats block: a 1024² image of 128 channels in 32 groups gives 256 blocks per group.
  constexpr int64_t kTarget = 16384;
  const int64_t want = std::clamp<int64_t>((p.n + kTarget - 1) / kTarget, 1, 4096);
  p.chunk = ((p.n + want - 1) / want + 7) / 8 * 8;  // a multiple of every vector width
  p.splits = (p.n + p.chunk - 1) / p.chunk;
  p.scratch_floats = 2 * B * G * p.splits + 2 * B * C;
  return p;
}

void launch_group_norm(void* y, const void* x, DType act, int64_t B, int64_t C, int64_t S, int64_t G, float eps,
                       const float* weight, const float* bias, const GroupNormPlan& plan, float* scratch,
                       cudaStream_t s) {
  if (B * C * S == 0) return;
  float* partial = scratch;
  float* coef = scratch + 2 * B * G * plan.splits;
  const int64_t stats_blocks = B * G * plan.splits, planes = B * C;
  OMNI_CHECK(stats_blocks < (int64_t{1} << 31) && planes < (int64_t{1} << 31), "group_norm: x of ", B, " x ", C,
             " planes is too large for one launch");
  dispatch_float(act, "group_norm", [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = Vec16<T>::kN;
    if (aligned16(x) && plan.n % V == 0)
      group_norm_stats_kernel<T, true><<<static_cast<unsigned>(stats_blocks), kThreads, 0, s>>>(
          partial, static_cast<const T*>(x), plan.n, plan.chunk, plan.splits);
    else
      group_norm_stats_kernel<T, false><<<static_cast<unsigned>(stats_blocks), kThreads, 0, s>>>(
          partial, static_cast<const T*>(x), plan.n, plan.chunk, plan.splits);
    check_launch("group_norm_stats_kernel");
    group_norm_coef_kernel<<<static_cast<unsigned>(planes), 32, 0, s>>>(coef, partial, C, G, plan.n, plan.chunk,
                                                                        plan.splits, static_cast<double>(eps), weight,
                                                                        bias);
    check_launch("group_norm_coef_kernel");
    const bool vec = aligned16(x) && aligned16(y) && S % V == 0;
    const int64_t per_thread = vec ? V * 4 : 4;  // values a thread handles (4 vectors or 4 scalars)
    const int64_t per_plane =
        std::clamp<int64_t>((S + kThreads * per_thread - 1) / (kThreads * per_thread), 1, (int64_t{1} << 31) / planes);
    const unsigned blocks = static_cast<unsigned>(planes * per_plane);
    if (vec)
      group_norm_apply_kernel<T, true><<<blocks, kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), coef,
                                                                   S, per_plane);
    else
      group_norm_apply_kernel<T, false><<<blocks, kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), coef,
                                                                    S, per_plane);
    check_launch("group_norm_apply_kernel");
  });
}

void launch_upsample_nearest2x(void* y, const void* x, size_t elem_size, int64_t planes, int64_t H, int64_t W,
                               cudaStream_t s) {
  const int64_t n = planes * H * W;
  if (n == 0) return;
  // Each output row is written as two-element words: y must be aligned to one (any whole-plane view is).
  OMNI_CHECK(reinterpret_cast<uintptr_t>(y) % (2 * elem_size) == 0,
             "upsample_nearest2x: y is not aligned to two elements (a view at an odd element offset?)");
  dispatch_bits(elem_size, "upsample_nearest2x", [&](auto tag) {
    using U = decltype(tag);
    upsample2x_kernel<<<grid_1d(n), kThreads, 0, s>>>(static_cast<U*>(y), static_cast<const U*>(x), H, W, n);
  });
  check_launch("upsample2x_kernel");
}

void launch_transpose_last2(void* y, const void* x, size_t elem_size, int64_t batch, int64_t M, int64_t N,
                            cudaStream_t s) {
  if (batch * M * N == 0) return;
  OMNI_CHECK((M + 31) / 32 <= 65535, "transpose: ", M, " rows exceed the CUDA grid (", 65535 * 32, ")");
  const dim3 grid(static_cast<unsigned>((N + 31) / 32), static_cast<unsigned>((M + 31) / 32),
                  static_cast<unsigned>(std::min<int64_t>(batch, 65535)));
  OMNI_CHECK((N + 31) / 32 < (int64_t{1} << 31), "transpose: ", N, " columns exceed the CUDA grid");
  dispatch_bits(elem_size, "transpose", [&](auto tag) {
    using U = decltype(tag);
    transpose_kernel<<<grid, dim3(32, 8), 0, s>>>(static_cast<U*>(y), static_cast<const U*>(x), batch, M, N);
  });
  check_launch("transpose_kernel");
}

}  // namespace omni::cuda
