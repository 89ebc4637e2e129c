#include "backends/cpu/rmsnorm.h"

#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {

void rmsnorm_forward(float* y, const float* x, const float* weight_f32, const uint16_t* weight_bf16, int64_t rows,
                     int64_t dim, float eps) {
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      // Double accumulation: the mean of squares then carries no rounding that depends on dim.
      double ss = 0.0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
      for (int64_t i = 0; i < dim; ++i) {
        const float wi = weight_f32 ? weight_f32[i] : bf16_to_f32(weight_bf16[i]);
        yr[i] = (xr[i] * inv) * wi;
      }
    }
  });
}

}  // namespace omni
