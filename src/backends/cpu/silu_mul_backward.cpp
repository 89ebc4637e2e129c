#include "backends/cpu/silu_mul_backward.h"

#include <cmath>

#include "core/thread_pool.h"

namespace omni {
namespace {
constexpr int64_t kGrain = 1 << 14;
}

template <class T>
void silu_mul_forward_train(T* y, const T* gate, const T* up, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T g = gate[i];
      y[i] = g / (T(1) + std::exp(-g)) * up[i];  // the inference kernel's expression (elementwise.cpp)
    }
  });
}

template <class T>
void silu_mul_backward(T* dgate, T* dup, const T* dy, const T* gate, const T* up, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T g = gate[i], u = up[i], d = dy[i];
      const T sig = T(1) / (T(1) + std::exp(-g));
      dgate[i] = d * u * sig * (T(1) + g * (T(1) - sig));
      dup[i] = d * g * sig;
    }
  });
}

template void silu_mul_forward_train<float>(float*, const float*, const float*, int64_t);
template void silu_mul_forward_train<double>(double*, const double*, const double*, int64_t);
template void silu_mul_backward<float>(float*, float*, const float*, const float*, const float*, int64_t);
template void silu_mul_backward<double>(double*, double*, const double*, const double*, const double*, int64_t);

}  // namespace omni
