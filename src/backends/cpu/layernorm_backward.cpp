#include "backends/cpu/layernorm_backward.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/thread_pool.h"

namespace omni {
namespace {

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)); }

// Mean and 1/std of one row, as layernorm_forward computes them: two passes in double, then r in T (in f32 for
// T = float, where the inference kernel rounds the variance to f32 before adding eps).
template <class T>
void row_stats(const T* xr, int64_t dim, float eps, T& mean, T& inv) {
  double sum = 0.0;
  for (int64_t i = 0; i < dim; ++i) sum += xr[i];
  const double m = sum / static_cast<double>(dim);
  double ss = 0.0;
  for (int64_t i = 0; i < dim; ++i) {
    const double d = xr[i] - m;
    ss += d * d;
  }
  if constexpr (std::is_same_v<T, float>) {
    inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
  } else {
    inv = T(1) / std::sqrt(static_cast<T>(ss / static_cast<double>(dim)) + static_cast<T>(eps));
  }
  mean = static_cast<T>(m);
}

}  // namespace

template <class T>
void layernorm_forward_train(T* y, const T* x, int64_t rows, int64_t dim, float eps) {
  parallel_for(0, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      T* yr = y + r * dim;
      T mean, inv;
      row_stats(xr, dim, eps, mean, inv);
      for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * inv;
    }
  });
}

template <class T>
void layernorm_backward(T* dx, const T* dy, const T* x, int64_t rows, int64_t dim, float eps, bool accumulate_dx) {
  parallel_for(0, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      const T* gr = dy + r * dim;
      T* dr = dx + r * dim;
      T mean, inv;
      row_stats(xr, dim, eps, mean, inv);
      double sum_g = 0.0, sum_gy = 0.0;  // Σ dy and Σ dy · y over the row
      for (int64_t i = 0; i < dim; ++i) {
        sum_g += gr[i];
        sum_gy += static_cast<double>(gr[i]) * ((xr[i] - mean) * inv);
      }
      const T mg = static_cast<T>(sum_g / static_cast<double>(dim));
      const T mgy = static_cast<T>(sum_gy / static_cast<double>(dim));
      // Element i reads dy[i] before writing dx[i]: dx may alias dy.
      for (int64_t i = 0; i < dim; ++i) {
        const T g = inv * (gr[i] - mg - (xr[i] - mean) * inv * mgy);
        dr[i] = accumulate_dx ? dr[i] + g : g;
      }
    }
  });
}

template void layernorm_forward_train<float>(float*, const float*, int64_t, int64_t, float);
template void layernorm_forward_train<double>(double*, const double*, int64_t, int64_t, float);
template void layernorm_backward<float>(float*, const float*, const float*, int64_t, int64_t, float, bool);
template void layernorm_backward<double>(double*, const double*, const double*, int64_t, int64_t, float, bool);

}  // namespace omni
