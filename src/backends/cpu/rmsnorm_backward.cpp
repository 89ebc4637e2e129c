#include "backends/cpu/rmsnorm_backward.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"

namespace omni {
namespace {
int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)); }
}  // namespace

template <class T>
void rmsnorm_forward_train(T* y, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, float eps) {
  parallel_for(0, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      T* yr = y + r * dim;
      double ss = 0.0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const T inv = T(1) / std::sqrt(static_cast<T>(ss / static_cast<double>(dim)) + static_cast<T>(eps));
      rstd[r] = inv;
      for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] * inv) * weight[i];
    }
  });
}

template <class T>
void rmsnorm_backward(T* dx, T* dweight, const T* dy, const T* x, const T* weight, const T* rstd, int64_t rows,
                      int64_t dim, bool accumulate_dx) {
  // dweight first, since dx may overwrite dy. A reduction over rows: serial over rows, parallel over the dim.
  if (dweight) {
    parallel_for(0, dim, 256, [&](int64_t i0, int64_t i1) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = i0; i < i1; ++i) dweight[i] += dy[r * dim + i] * x[r * dim + i] * rstd[r];
    });
  }
  parallel_for(0, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      const T* gr = dy + r * dim;
      T* dxr = dx + r * dim;
      const T inv = rstd[r];
      T dot = 0;  // Σ w_j dy_j x_j
      for (int64_t i = 0; i < dim; ++i) dot += weight[i] * gr[i] * xr[i];
      const T c = dot * inv * inv * inv / static_cast<T>(dim);
      for (int64_t i = 0; i < dim; ++i) {
        const T g = inv * weight[i] * gr[i] - xr[i] * c;
        dxr[i] = accumulate_dx ? dxr[i] + g : g;
      }
    }
  });
}

template void rmsnorm_forward_train<float>(float*, float*, const float*, const float*, int64_t, int64_t, float);
template void rmsnorm_forward_train<double>(double*, double*, const double*, const double*, int64_t, int64_t,
                                            float);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*, const float*,
                                      int64_t, int64_t, bool);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*, const double*,
                                       const double*, int64_t, int64_t, bool);

}  // namespace omni
