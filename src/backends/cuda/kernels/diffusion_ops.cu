// The elementwise ops of the diffusion transformer and the text encoders: silu, quick_gelu, mul, the adaLN-Zero
// gated residual and the interleaved (GPT-J / FLUX) rotary embedding. f32 arithmetic with the CPU kernels'
// expressions (cpu/elementwise.cpp), one rounding on store. Bandwidth-bound, so each thread moves 16-byte vectors
// (8 bf16/f16 or 4 f32 values) where the pointers allow it, with a scalar loop for the tail; a misaligned view
// takes the scalar path for the whole tensor.
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

// Grid for n16 vectors (or n scalars): enough blocks to fill the chip several times, the rest by grid stride.
unsigned ew_blocks(int64_t n) { return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 65536)); }

struct SiluOp {
  __device__ float operator()(float x) const { return x / (1.0f + expf(-x)); }
};
struct QuickGeluOp {
  __device__ float operator()(float x) const { return x / (1.0f + expf(-1.702f * x)); }
};
struct MulOp {
  __device__ float operator()(float a, float b) const { return a * b; }
};

// y = f(x); y may alias x (each element is read before it is written, by the same thread).
template <class T, class F, bool kVec>
__global__ void unary_kernel(T* y, const T* x, int64_t n, F f) {
  const int64_t start = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec) {
    constexpr int V = Vec16<T>::kN;
    const int64_t nv = n / V;
    for (int64_t i = start; i < nv; i += stride) {
      Vec16<T> a = reinterpret_cast<const Vec16<T>*>(x)[i];
#pragma unroll
      for (int k = 0; k < V; ++k) a.v[k] = from_f32<T>(f(to_f32(a.v[k])));
      reinterpret_cast<Vec16<T>*>(y)[i] = a;
    }
    done = nv * V;
  }
  for (int64_t i = done + start; i < n; i += stride) y[i] = from_f32<T>(f(to_f32(x[i])));
}

template <class T, class F, bool kVec>
__global__ void binary_kernel(T* y, const T* a, const T* b, int64_t n, F f) {
  const int64_t start = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if constexpr (kVec) {
    constexpr int V = Vec16<T>::kN;
    const int64_t nv = n / V;
    for (int64_t i = start; i < nv; i += stride) {
      const Vec16<T> va = reinterpret_cast<const Vec16<T>*>(a)[i], vb = reinterpret_cast<const Vec16<T>*>(b)[i];
      Vec16<T> r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = from_f32<T>(f(to_f32(va.v[k]), to_f32(vb.v[k])));
      reinterpret_cast<Vec16<T>*>(y)[i] = r;
    }
    done = nv * V;
  }
  for (int64_t i = done + start; i < n; i += stride) y[i] = from_f32<T>(f(to_f32(a[i]), to_f32(b[i])));
}

// y[b, t, d] = x[b, t, d] + gate[b, d] · h[b, t, d]. With kVec, D is a multiple of the vector width, so a vector
// never crosses a row and its gate vector is aligned too.
template <class T, bool kVec>
__global__ void gated_add_kernel(T* y, const T* x, const T* gate, const T* h, int64_t T_, int64_t D, int64_t n) {
  const int64_t start = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if constexpr (kVec) {
    constexpr int V = Vec16<T>::kN;
    for (int64_t i = start; i < n / V; i += stride) {
      const int64_t e = i * V, b = e / (T_ * D), d = e % D;
      const Vec16<T> vx = reinterpret_cast<const Vec16<T>*>(x)[i], vh = reinterpret_cast<const Vec16<T>*>(h)[i];
      const Vec16<T> vg = *reinterpret_cast<const Vec16<T>*>(gate + b * D + d);
      Vec16<T> r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = from_f32<T>(to_f32(vx.v[k]) + to_f32(vg.v[k]) * to_f32(vh.v[k]));
      reinterpret_cast<Vec16<T>*>(y)[i] = r;
    }
  } else {
    for (int64_t i = start; i < n; i += stride) {
      const int64_t b = i / (T_ * D), d = i % D;
      y[i] = from_f32<T>(to_f32(x[i]) + to_f32(gate[b * D + d]) * to_f32(h[i]));
    }
  }
}

template <class T>
struct alignas(2 * sizeof(T)) Pair {
  T a, b;
};

// One thread per rotation pair (2k, 2k+1) of x [N, H, hd]; cos, sin [N, hd] f32 with the pair's two entries.
template <class T>
__global__ void rope_interleaved_kernel(T* x, const float* cos, const float* sin, int64_t H, int64_t hd,
                                        int64_t pairs) {
  const int64_t half = hd / 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pairs; i += stride) {
    const int64_t n = i / (H * half), k = 2 * (i % half);
    Pair<T>* p = reinterpret_cast<Pair<T>*>(x) + i;
    const Pair<T> v = *p;
    const float2 c = *reinterpret_cast<const float2*>(cos + n * hd + k);
    const float2 s = *reinterpret_cast<const float2*>(sin + n * hd + k);
    const float re = to_f32(v.a), im = to_f32(v.b);
    *p = Pair<T>{from_f32<T>(re * c.x - im * s.x), from_f32<T>(im * c.y + re * s.y)};
  }
}

// The same with 16-byte vectors of x (V/2 pairs) and the tables read as float4: hd a multiple of V, so a vector
// stays within one row of its table.
template <class T>
__global__ void rope_interleaved_vec_kernel(T* x, const float* cos, const float* sin, int64_t H, int64_t hd,
                                            int64_t nvec) {
  constexpr int V = Vec16<T>::kN;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < nvec; i += stride) {
    const int64_t e = i * V, n = e / (H * hd), k = e % hd;
    Vec16<T> a = reinterpret_cast<const Vec16<T>*>(x)[i];
    float4 c4[V / 4], s4[V / 4];
#pragma unroll
    for (int q = 0; q < V / 4; ++q) {
      c4[q] = reinterpret_cast<const float4*>(cos + n * hd + k)[q];
      s4[q] = reinterpret_cast<const float4*>(sin + n * hd + k)[q];
    }
    const float* cf = reinterpret_cast<const float*>(c4);
    const float* sf = reinterpret_cast<const float*>(s4);
#pragma unroll
    for (int p = 0; p < V; p += 2) {
      const float re = to_f32(a.v[p]), im = to_f32(a.v[p + 1]);
      a.v[p] = from_f32<T>(re * cf[p] - im * sf[p]);
      a.v[p + 1] = from_f32<T>(im * cf[p + 1] + re * sf[p + 1]);
    }
    reinterpret_cast<Vec16<T>*>(x)[i] = a;
  }
}

template <class F>
void launch_unary(void* y, const void* x, int64_t n, DType act, cudaStream_t s, const char* op, F f) {
  if (n == 0) return;
  dispatch_float(act, op, [&](auto tag) {
    using T = decltype(tag);
    if (aligned16(x) && aligned16(y))
      unary_kernel<T, F, true><<<ew_blocks(n / Vec16<T>::kN), kThreads, 0, s>>>(static_cast<T*>(y),
                                                                                  static_cast<const T*>(x), n, f);
    else
      unary_kernel<T, F, false><<<ew_blocks(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), n, f);
  });
  check_launch(op);
}

}  // namespace

void launch_silu(void* y, const void* x, int64_t n, DType act, cudaStream_t s) {
  launch_unary(y, x, n, act, s, "silu_kernel", SiluOp{});
}

void launch_quick_gelu(void* y, const void* x, int64_t n, DType act, cudaStream_t s) {
  launch_unary(y, x, n, act, s, "quick_gelu_kernel", QuickGeluOp{});
}

void launch_mul(void* y, const void* a, const void* b, int64_t n, DType act, cudaStream_t s) {
  if (n == 0) return;
  dispatch_float(act, "mul", [&](auto tag) {
    using T = decltype(tag);
    if (aligned16(a) && aligned16(b) && aligned16(y))
      binary_kernel<T, MulOp, true><<<ew_blocks(n / Vec16<T>::kN), kThreads, 0, s>>>(
          static_cast<T*>(y), static_cast<const T*>(a), static_cast<const T*>(b), n, MulOp{});
    else
      binary_kernel<T, MulOp, false><<<ew_blocks(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(a),
                                                                         static_cast<const T*>(b), n, MulOp{});
  });
  check_launch("mul_kernel");
}

void launch_gated_add(void* y, const void* x, const void* gate, const void* h, int64_t B, int64_t T, int64_t D,
                      DType act, cudaStream_t s) {
  const int64_t n = B * T * D;
  if (n == 0) return;
  dispatch_float(act, "gated_add", [&](auto tag) {
    using V = decltype(tag);
    const bool vec = D % Vec16<V>::kN == 0 && aligned16(y) && aligned16(x) && aligned16(gate) && aligned16(h);
    if (vec)
      gated_add_kernel<V, true><<<ew_blocks(n / Vec16<V>::kN), kThreads, 0, s>>>(
          static_cast<V*>(y), static_cast<const V*>(x), static_cast<const V*>(gate), static_cast<const V*>(h), T, D,
          n);
    else
      gated_add_kernel<V, false><<<ew_blocks(n), kThreads, 0, s>>>(static_cast<V*>(y), static_cast<const V*>(x),
                                                                     static_cast<const V*>(gate),
                                                                     static_cast<const V*>(h), T, D, n);
  });
  check_launch("gated_add_kernel");
}

void launch_rope_interleaved(void* x, const float* cos, const float* sin, int64_t N, int64_t H, int64_t hd, DType act,
                             cudaStream_t s) {
  const int64_t pairs = N * H * (hd / 2);
  if (pairs == 0) return;
  // Pairs are read and written as one 2-element word, the tables as float2: whole-row views keep that alignment.
  OMNI_CHECK(reinterpret_cast<uintptr_t>(x) % (2 * dtype_size(act)) == 0 && reinterpret_cast<uintptr_t>(cos) % 8 == 0 &&
                 reinterpret_cast<uintptr_t>(sin) % 8 == 0,
             "rope_interleaved: x, cos and sin must be aligned to a rotation pair (a view at an odd element offset?)");
  dispatch_float(act, "rope_interleaved", [&](auto tag) {
    using T = decltype(tag);
    constexpr int V = Vec16<T>::kN;
    if (hd % V == 0 && aligned16(x) && aligned16(cos) && aligned16(sin))
      rope_interleaved_vec_kernel<<<ew_blocks(N * H * hd / V), kThreads, 0, s>>>(static_cast<T*>(x), cos, sin, H, hd,
                                                                                N * H * hd / V);
    else
      rope_interleaved_kernel<<<ew_blocks(pairs), kThreads, 0, s>>>(static_cast<T*>(x), cos, sin, H, hd, pairs);
  });
  check_launch("rope_interleaved_kernel");
}

}  // namespace omni::cuda
