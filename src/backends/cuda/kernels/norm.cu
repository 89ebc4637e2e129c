// Row reductions: RMSNorm (forward with optional saved rstd, and its f32 backward; fused with the residual add
// before it, or with the rotary embedding after it), softmax, layer norm, and the rotary embedding. One block per
// row; f32 arithmetic with the CPU kernels' expressions, one rounding on store.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

// Threads per row block: enough for the row, a multiple of 32.
int row_threads(int64_t D) { return D >= 1024 ? 512 : D >= 256 ? 256 : D >= 64 ? 64 : 32; }

template <class T, class W>
__global__ void rms_norm_kernel(T* y, const T* x, const W* weight, int64_t D, float eps, float* rstd) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * D;
  float ss = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float v = to_f32(xr[d]);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  if (rstd && threadIdx.x == 0) rstd[r] = inv;
  T* yr = y + r * D;  // may alias x: each element is read before it is written, by the same thread
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) yr[d] = from_f32<T>((to_f32(xr[d]) * inv) * to_f32(weight[d]));
}

// The residual add and the norm after it: sum = a + b rounded to T, then the norm of that rounded sum (what
// add_kernel then rms_norm_kernel compute, in one pass). sum may alias a or b: each element is read and written
// by the same thread.
template <class T, class W>
__global__ void add_rms_norm_kernel(T* sum, T* y, const T* a, const T* b, const W* weight, int64_t D, float eps) {
  const int64_t r = blockIdx.x;
  float ss = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const T t = from_f32<T>(to_f32(a[r * D + d]) + to_f32(b[r * D + d]));
    sum[r * D + d] = t;
    const float v = to_f32(t);
    ss += v * v;
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    y[r * D + d] = from_f32<T>((to_f32(sum[r * D + d]) * inv) * to_f32(weight[d]));
}

// Per-head RMSNorm then RoPE (rotate-half): one block per (row, head), thread j owns the rotation pair
// (j, j + hd/2). The normed values are rounded to T before the rotation, as rms_norm then rope would. Row n
// goes to y row rows[n] when rows is given (a KV cache), else to row n; y may alias x (reads come before the
// block reduction, writes after it).
// 1 / theta^(2j / hd) as the CPU backend computes it (cpu/rope.cpp: the exponent in f32, std::pow in f32, which
// glibc rounds correctly): CUDA's powf may be 2 ulp off, and at positions in the thousands an angle error of that
// size moves the rotated values by 1e-5 relative. pow in double, rounded once to f32, is the correctly rounded
// powf.
__device__ inline float rope_inv_freq(float theta, int64_t j, int64_t hd) {
  const float exponent = static_cast<float>(2 * j) / static_cast<float>(hd);
  return 1.0f / static_cast<float>(pow(static_cast<double>(theta), static_cast<double>(exponent)));
}

template <class T, class W>
__global__ void rms_norm_rope_kernel(T* y, const T* x, const W* weight, const int32_t* positions, const int32_t* rows,
                                     int64_t R, int64_t H, int64_t hd, float eps, float theta, DeviceFault* fault) {
  const int64_t task = blockIdx.x, n = task / H, h = task % H, half = hd / 2;
  const int64_t j = threadIdx.x;
  const int32_t pos = positions[n];
  const int64_t dst = rows ? rows[n] : n;
  if (pos < 0 || (rows && (dst < 0 || dst >= R))) {  // the whole block leaves: no one reaches the reduction
    if (threadIdx.x == 0 && h == 0) {
      if (pos < 0)
        report_fault(fault, FaultCode::NegativePosition, n, pos, 0);
      else
        report_fault(fault, FaultCode::CopyRowsIndex, n, dst, R);
    }
    return;
  }
  const T* xr = x + task * hd;
  const float a = j < half ? to_f32(xr[j]) : 0.f, b = j < half ? to_f32(xr[j + half]) : 0.f;
  const float ss = block_sum(a * a + b * b);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + eps);
  if (j >= half) return;
  const float na = to_f32(from_f32<T>((a * inv) * to_f32(weight[j])));
  const float nb = to_f32(from_f32<T>((b * inv) * to_f32(weight[j + half])));
  const float inv_freq = rope_inv_freq(theta, j, hd);
  const float angle = static_cast<float>(pos) * inv_freq;
  const float c = cosf(angle), sn = sinf(angle);
  T* yr = y + (dst * H + h) * hd;
  yr[j] = from_f32<T>(na * c - nb * sn);
  yr[j + half] = from_f32<T>(nb * c + na * sn);
}

// Two block reductions: the mean, then the mean squared deviation (no E[x²] − E[x]² cancellation).
template <class T, class A>
__global__ void layer_norm_kernel(T* y, const T* x, const A* weight, const A* bias, int64_t D, float eps) {
  const int64_t r = blockIdx.x;
  const T* xr = x + r * D;
  float sum = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) sum += to_f32(xr[d]);
  const float mean = block_sum(sum) / static_cast<float>(D);
  float ss = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float v = to_f32(xr[d]) - mean;
    ss += v * v;
  }
  const float inv = 1.0f / sqrtf(block_sum(ss) / static_cast<float>(D) + eps);
  T* yr = y + r * D;  // may alias x: each element is read before it is written, by the same thread
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float v = (to_f32(xr[d]) - mean) * inv;
    if (weight) v = v * to_f32(weight[d]) + to_f32(bias[d]);
    yr[d] = from_f32<T>(v);
  }
}

// dx (+)= rstd · w ∘ dy − x · rstd³ · (Σ w dy x) / D, per row.
__global__ void rms_norm_backward_kernel(float* dx, const float* dy, const float* x, const float* weight,
                                         const float* rstd, int64_t D, bool accumulate) {
  const int64_t r = blockIdx.x;
  const float *xr = x + r * D, *gr = dy + r * D;
  float dot = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) dot += weight[d] * gr[d] * xr[d];
  dot = block_sum(dot);
  const float inv = rstd[r], c = dot * inv * inv * inv / static_cast<float>(D);
  float* dxr = dx + r * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float g = inv * weight[d] * gr[d] - xr[d] * c;
    dxr[d] = accumulate ? dxr[d] + g : g;
  }
}

// dweight[d] += Σ_r dy · x · rstd: one thread per column, rows in order (a fixed summation order).
__global__ void rms_norm_dweight_kernel(float* dweight, const float* dy, const float* x, const float* rstd,
                                        int64_t rows, int64_t D) {
  const int64_t d = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (d >= D) return;
  float acc = 0.f;
  for (int64_t r = 0; r < rows; ++r) acc += dy[r * D + d] * x[r * D + d] * rstd[r];
  dweight[d] += acc;
}

template <class T>
__global__ void softmax_kernel(T* x, int64_t D) {
  T* row = x + blockIdx.x * D;
  float mx = -INFINITY;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) mx = fmaxf(mx, to_f32(row[d]));
  mx = block_max(mx);
  float sum = 0.f;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) sum += expf(to_f32(row[d]) - mx);
  sum = block_sum(sum);
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) row[d] = from_f32<T>(expf(to_f32(row[d]) - mx) / sum);
}

// One thread per (row, head, rotation pair): the rotate-half (NeoX) layout, f32 angles as PyTorch computes them.
template <class T>
__global__ void rope_kernel(T* x, const int32_t* positions, int64_t N, int64_t H, int64_t hd, float theta,
                            bool inverse, DeviceFault* fault) {
  const int64_t half = hd / 2;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= N * H * half) return;
  const int64_t n = i / (H * half), h = (i / half) % H, j = i % half;
  const int32_t pos = positions[n];
  if (pos < 0) {
    report_fault(fault, FaultCode::NegativePosition, n, pos, 0);
    return;
  }
  const float inv_freq = rope_inv_freq(theta, j, hd);
  const float angle = static_cast<float>(pos) * inv_freq;
  const float c = cosf(angle), sn = sinf(angle);
  T* v = x + (n * H + h) * hd;
  const float a = to_f32(v[j]), b = to_f32(v[j + half]);
  if (inverse) {
    v[j] = from_f32<T>(a * c + b * sn);
    v[j + half] = from_f32<T>(b * c - a * sn);
  } else {
    v[j] = from_f32<T>(a * c - b * sn);
    v[j + half] = from_f32<T>(b * c + a * sn);
  }
}

unsigned row_grid(int64_t rows) {
  OMNI_CHECK(rows < (int64_t{1} << 31), "too many rows for one launch: ", rows);
  return static_cast<unsigned>(rows);
}

}  // namespace

void launch_rms_norm(void* y, const void* x, DType act, const void* weight, DType weight_dtype, int64_t rows,
                     int64_t D, float eps, float* rstd, cudaStream_t s) {
  if (rows == 0) return;
  dispatch_float(act, "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    if (weight_dtype == DType::F32)
      rms_norm_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x),
                                                                static_cast<const float*>(weight), D, eps, rstd);
    else if (weight_dtype == DType::BF16)
      rms_norm_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(
          static_cast<T*>(y), static_cast<const T*>(x), static_cast<const __nv_bfloat16*>(weight), D, eps, rstd);
    else
      OMNI_FAIL("rms_norm: weight must be F32 or BF16, found ", dtype_name(weight_dtype));
  });
  check_launch("rms_norm_kernel");
}

void launch_add_rms_norm(void* sum, void* y, const void* a, const void* b, DType act, const void* weight,
                         DType weight_dtype, int64_t rows, int64_t D, float eps, cudaStream_t s) {
  if (rows == 0) return;
  dispatch_float(act, "add_rms_norm", [&](auto tag) {
    using T = decltype(tag);
    auto go = [&](auto w) {
      add_rms_norm_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(
          static_cast<T*>(sum), static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b), w, D, eps);
    };
    if (weight_dtype == DType::F32)
      go(static_cast<const float*>(weight));
    else if (weight_dtype == DType::BF16)
      go(static_cast<const __nv_bfloat16*>(weight));
    else
      OMNI_FAIL("add_rms_norm: weight must be F32 or BF16, found ", dtype_name(weight_dtype));
  });
  check_launch("add_rms_norm_kernel");
}

void launch_rms_norm_rope(void* y, const void* x, DType act, const void* weight, DType weight_dtype,
                          const int32_t* positions, const int32_t* rows, int64_t R, int64_t N, int64_t H, int64_t hd,
                          float eps, float theta, DeviceFault* fault, cudaStream_t s) {
  if (N * H == 0) return;
  const int threads = static_cast<int>(std::max<int64_t>(32, (hd / 2 + 31) / 32 * 32));
  OMNI_CHECK(threads <= 1024, "rms_norm_rope: head dim ", hd, " is too large for one block");
  dispatch_float(act, "rms_norm_rope", [&](auto tag) {
    using T = decltype(tag);
    auto go = [&](auto w) {
      rms_norm_rope_kernel<<<row_grid(N * H), threads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), w,
                                                               positions, rows, R, H, hd, eps, theta, fault);
    };
    if (weight_dtype == DType::F32)
      go(static_cast<const float*>(weight));
    else if (weight_dtype == DType::BF16)
      go(static_cast<const __nv_bfloat16*>(weight));
    else
      OMNI_FAIL("rms_norm_rope: weight must be F32 or BF16, found ", dtype_name(weight_dtype));
  });
  check_launch("rms_norm_rope_kernel");
}

void launch_layer_norm(void* y, const void* x, DType act, const void* weight, const void* bias, DType affine_dtype,
                       int64_t rows, int64_t D, float eps, cudaStream_t s) {
  if (rows == 0) return;
  dispatch_float(act, "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    if (!weight || affine_dtype == DType::F32)
      layer_norm_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(
          static_cast<T*>(y), static_cast<const T*>(x), static_cast<const float*>(weight),
          static_cast<const float*>(bias), D, eps);
    else
      layer_norm_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(
          static_cast<T*>(y), static_cast<const T*>(x), static_cast<const __nv_bfloat16*>(weight),
          static_cast<const __nv_bfloat16*>(bias), D, eps);
  });
  check_launch("layer_norm_kernel");
}

void launch_rms_norm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight,
                              const float* rstd, int64_t rows, int64_t D, bool accumulate_dx, cudaStream_t s) {
  if (rows == 0) return;
  if (dweight) {  // first: dx may overwrite dy
    rms_norm_dweight_kernel<<<blocks_for(D), kThreads, 0, s>>>(dweight, dy, x, rstd, rows, D);
    check_launch("rms_norm_dweight_kernel");
  }
  rms_norm_backward_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(dx, dy, x, weight, rstd, D, accumulate_dx);
  check_launch("rms_norm_backward_kernel");
}

void launch_softmax(void* x, DType act, int64_t rows, int64_t D, cudaStream_t s) {
  if (rows == 0) return;
  dispatch_float(act, "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<<<row_grid(rows), row_threads(D), 0, s>>>(static_cast<T*>(x), D);
  });
  check_launch("softmax_kernel");
}

void launch_rope(void* x, DType act, const int32_t* positions, int64_t N, int64_t H, int64_t hd, float theta,
                 bool inverse, DeviceFault* fault, cudaStream_t s) {
  const int64_t n = N * H * (hd / 2);
  if (n == 0) return;
  dispatch_float(act, "rope", [&](auto tag) {
    using T = decltype(tag);
    rope_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(x), positions, N, H, hd, theta, inverse, fault);
  });
  check_launch("rope_kernel");
}

}  // namespace omni::cuda
