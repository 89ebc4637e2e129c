#include "backends/cpu/layernorm.h"

#include <algorithm>
#include <cmath>

#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {

void layernorm_forward(float* y, const float* x, int64_t rows, int64_t dim, float eps, const LayerNormAffine& a) {
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      // Two passes in double: the mean first, then the squared deviations (no cancellation from E[x²] − E[x]²).
      double sum = 0.0;
      for (int64_t i = 0; i < dim; ++i) sum += xr[i];
      const double mean = sum / static_cast<double>(dim);
      double ss = 0.0;
      for (int64_t i = 0; i < dim; ++i) {
        const double d = xr[i] - mean;
        ss += d * d;
      }
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(dim)) + eps);
      const float m = static_cast<float>(mean);
      for (int64_t i = 0; i < dim; ++i) {
        float v = (xr[i] - m) * inv;
        if (a.weight_f32) v *= a.weight_f32[i];
        if (a.weight_bf16) v *= bf16_to_f32(a.weight_bf16[i]);
        if (a.bias_f32) v += a.bias_f32[i];
        if (a.bias_bf16) v += bf16_to_f32(a.bias_bf16[i]);
        yr[i] = v;
      }
    }
  });
}

}  // namespace omni
