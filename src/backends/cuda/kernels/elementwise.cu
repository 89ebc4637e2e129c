// Elementwise kernels: grid-stride loops, f32 arithmetic, one rounding on store (as the CPU backend does for
// 16-bit activations).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"
#include "backends/qdq_formula.h"

namespace omni::cuda {
namespace {

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <class T>
__global__ void silu_mul_kernel(T* y, const T* gate, const T* up, int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = to_f32(gate[i]);
    y[i] = from_f32<T>(g / (1.0f + expf(-g)) * to_f32(up[i]));
  }
}

template <class T>
__global__ void add_kernel(T* y, const T* a, const T* b, int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}

template <class T>
__global__ void gelu_tanh_kernel(T* y, const T* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  GRID_STRIDE(i, n) {
    const float v = to_f32(x[i]);
    y[i] = from_f32<T>(0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v))));
  }
}

template <class T>
__global__ void modulate_kernel(T* y, const T* x, const T* scale, const T* shift, int64_t T_, int64_t D, int64_t n) {
  GRID_STRIDE(i, n) {
    const int64_t b = i / (T_ * D), d = i % D;
    y[i] = from_f32<T>(to_f32(x[i]) * (1.0f + to_f32(scale[b * D + d])) + to_f32(shift[b * D + d]));
  }
}

template <class T>
__global__ void add_bias_kernel(T* y, const float* bias, int64_t rows, int64_t cols) {
  GRID_STRIDE(i, rows * cols) y[i] = from_f32<T>(to_f32(y[i]) + bias[i % cols]);
}

template <class To, class From>
__global__ void convert_kernel(To* dst, const From* src, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = from_f32<To>(to_f32(src[i]));
}

__global__ void fill_kernel(float* x, float value, int64_t n) {
  GRID_STRIDE(i, n) x[i] = value;
}

__global__ void clamp_kernel(float* x, float lo, float hi, int64_t n) {
  GRID_STRIDE(i, n) x[i] = qdq::clamp(x[i], lo, hi);
}

__global__ void sign_step_kernel(float* p, const float* g, float lr, int64_t n) {
  GRID_STRIDE(i, n) p[i] -= lr * static_cast<float>((g[i] > 0.f) - (g[i] < 0.f));
}

__global__ void silu_mul_backward_kernel(float* dgate, float* dup, const float* dy, const float* gate,
                                         const float* up, int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = gate[i], u = up[i], d = dy[i];  // read before writing: dgate or dup may alias dy
    const float sig = 1.0f / (1.0f + expf(-g));
    dgate[i] = d * u * sig * (1.0f + g * (1.0f - sig));
    dup[i] = d * g * sig;
  }
}

}  // namespace

void launch_silu_mul(void* y, const void* gate, const void* up, int64_t n, DType act, cudaStream_t s) {
  dispatch_float(act, "silu_mul", [&](auto tag) {
    using T = decltype(tag);
    silu_mul_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(gate),
                                                         static_cast<const T*>(up), n);
  });
  check_launch("silu_mul_kernel");
}

void launch_add(void* y, const void* a, const void* b, int64_t n, DType act, cudaStream_t s) {
  dispatch_float(act, "add", [&](auto tag) {
    using T = decltype(tag);
    add_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(a),
                                                    static_cast<const T*>(b), n);
  });
  check_launch("add_kernel");
}

void launch_add_bias(void* y, const float* bias, int64_t rows, int64_t cols, DType act, cudaStream_t s) {
  dispatch_float(act, "linear bias", [&](auto tag) {
    using T = decltype(tag);
    add_bias_kernel<<<blocks_for(rows * cols), kThreads, 0, s>>>(static_cast<T*>(y), bias, rows, cols);
  });
  check_launch("add_bias_kernel");
}

void launch_convert(void* dst, DType to, const void* src, DType from, int64_t n, cudaStream_t s) {
  dispatch_float(to, "convert", [&](auto to_tag) {
    dispatch_float(from, "convert", [&](auto from_tag) {
      using To = decltype(to_tag);
      using From = decltype(from_tag);
      convert_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<To*>(dst), static_cast<const From*>(src), n);
    });
  });
  check_launch("convert_kernel");
}

void launch_gelu_tanh(void* y, const void* x, int64_t n, DType act, cudaStream_t s) {
  dispatch_float(act, "gelu_tanh", [&](auto tag) {
    using T = decltype(tag);
    gelu_tanh_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), n);
  });
  check_launch("gelu_tanh_kernel");
}

void launch_modulate(void* y, const void* x, const void* scale, const void* shift, int64_t B, int64_t T, int64_t D,
                     DType act, cudaStream_t s) {
  const int64_t n = B * T * D;
  dispatch_float(act, "modulate", [&](auto tag) {
    using V = decltype(tag);
    modulate_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<V*>(y), static_cast<const V*>(x),
                                                       static_cast<const V*>(scale), static_cast<const V*>(shift), T,
                                                       D, n);
  });
  check_launch("modulate_kernel");
}

void launch_fill(float* x, float value, int64_t n, cudaStream_t s) {
  fill_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, value, n);
  check_launch("fill_kernel");
}

void launch_clamp(float* x, float lo, float hi, int64_t n, cudaStream_t s) {
  clamp_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, lo, hi, n);
  check_launch("clamp_kernel");
}

void launch_sign_step(float* p, const float* g, float lr, int64_t n, cudaStream_t s) {
  sign_step_kernel<<<blocks_for(n), kThreads, 0, s>>>(p, g, lr, n);
  check_launch("sign_step_kernel");
}

void launch_silu_mul_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up,
                              int64_t n, cudaStream_t s) {
  silu_mul_backward_kernel<<<blocks_for(n), kThreads, 0, s>>>(dgate, dup, dy, gate, up, n);
  check_launch("silu_mul_backward_kernel");
}

}  // namespace omni::cuda
