#include "backends/cpu/elementwise.h"

#include <cmath>

#include "core/thread_pool.h"

namespace omni {

namespace {
constexpr int64_t kGrain = 1 << 14;
}

void silu_mul_forward(float* y, const float* gate, const float* up, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float g = gate[i];
      y[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void add_forward(float* y, const float* a, const float* b, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = a[i] + b[i];
  });
}

}  // namespace omni
