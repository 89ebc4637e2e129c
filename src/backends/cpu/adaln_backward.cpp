#include "backends/cpu/adaln_backward.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"

namespace omni {
namespace {

constexpr int64_t kGrain = 1 << 14;
constexpr int64_t kColumns = 64;  // features per task of the per-sample reductions

// The shared shape of both backwards: out = dy · (plus_one + f[b]) and sum_xy[b] = Σ_t dy ⊙ x (and sum_y[b] = Σ_t dy
// when given), tasks over (sample, block of columns) so that no two write the same sums. Element (t, d) reads dy
// and x before writing out: out may alias dy.
template <class T>
void per_sample_backward(T* out, T* sum_xy, T* sum_y, const T* dy, const T* x, const T* f, T plus_one, int64_t B,
                         int64_t T_, int64_t D) {
  const int64_t blocks = (D + kColumns - 1) / kColumns;
  parallel_for(0, B * blocks, 1, [&](int64_t i0, int64_t i1) {
    double axy[kColumns], ay[kColumns];
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / blocks, d0 = (i % blocks) * kColumns, n = std::min(kColumns, D - d0);
      std::fill(axy, axy + n, 0.0);
      std::fill(ay, ay + n, 0.0);
      const T* fb = f + b * D + d0;
      for (int64_t t = 0; t < T_; ++t) {
        const int64_t row = (b * T_ + t) * D + d0;
        for (int64_t d = 0; d < n; ++d) {
          const T g = dy[row + d];
          axy[d] += static_cast<double>(g) * x[row + d];
          ay[d] += g;
          out[row + d] = g * (plus_one + fb[d]);
        }
      }
      for (int64_t d = 0; d < n; ++d) {
        sum_xy[b * D + d0 + d] = static_cast<T>(axy[d]);
        if (sum_y) sum_y[b * D + d0 + d] = static_cast<T>(ay[d]);
      }
    }
  });
}

template <class T>
constexpr T kSqrt2OverPi = T(0.7978845608028654);

}  // namespace

template <class T>
void modulate_forward_train(T* y, const T* x, const T* scale, const T* shift, int64_t B, int64_t T_, int64_t D) {
  parallel_for(0, B * T_, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* sc = scale + (r / T_) * D;
      const T* sh = shift + (r / T_) * D;
      for (int64_t d = 0; d < D; ++d) y[r * D + d] = x[r * D + d] * (T(1) + sc[d]) + sh[d];
    }
  });
}

template <class T>
void modulate_backward(T* dx, T* dscale, T* dshift, const T* dy, const T* x, const T* scale, int64_t B, int64_t T_,
                       int64_t D) {
  per_sample_backward(dx, dscale, dshift, dy, x, scale, T(1), B, T_, D);
}

template <class T>
void gated_add_forward_train(T* y, const T* x, const T* gate, const T* h, int64_t B, int64_t T_, int64_t D) {
  parallel_for(0, B * T_, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* g = gate + (r / T_) * D;
      for (int64_t d = 0; d < D; ++d) y[r * D + d] = x[r * D + d] + g[d] * h[r * D + d];
    }
  });
}

template <class T>
void gated_add_backward(T* dgate, T* dh, const T* dy, const T* gate, const T* h, int64_t B, int64_t T_, int64_t D) {
  per_sample_backward(dh, dgate, static_cast<T*>(nullptr), dy, h, gate, T(0), B, T_, D);
}

template <class T>
void gelu_tanh_forward_train(T* y, const T* x, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T v = x[i];
      y[i] = T(0.5) * v * (T(1) + std::tanh(kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v)));
    }
  });
}

template <class T>
void gelu_tanh_backward(T* dx, const T* dy, const T* x, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T v = x[i];
      const T th = std::tanh(kSqrt2OverPi<T> * (v + T(0.044715) * v * v * v));
      const T du = kSqrt2OverPi<T> * (T(1) + T(3 * 0.044715) * v * v);
      dx[i] = dy[i] * (T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * du);
    }
  });
}

template void modulate_forward_train<float>(float*, const float*, const float*, const float*, int64_t, int64_t,
                                            int64_t);
template void modulate_forward_train<double>(double*, const double*, const double*, const double*, int64_t, int64_t,
                                             int64_t);
template void modulate_backward<float>(float*, float*, float*, const float*, const float*, const float*, int64_t,
                                       int64_t, int64_t);
template void modulate_backward<double>(double*, double*, double*, const double*, const double*, const double*,
                                        int64_t, int64_t, int64_t);
template void gated_add_forward_train<float>(float*, const float*, const float*, const float*, int64_t, int64_t,
                                             int64_t);
template void gated_add_forward_train<double>(double*, const double*, const double*, const double*, int64_t, int64_t,
                                              int64_t);
template void gated_add_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                        int64_t);
template void gated_add_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                         int64_t, int64_t);
template void gelu_tanh_forward_train<float>(float*, const float*, int64_t);
template void gelu_tanh_forward_train<double>(double*, const double*, int64_t);
template void gelu_tanh_backward<float>(float*, const float*, const float*, int64_t);
template void gelu_tanh_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace omni
