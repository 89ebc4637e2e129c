#include "backends/cpu/group_norm.h"

#include <cmath>

#include "core/thread_pool.h"

namespace omni {

void group_norm_forward(float* y, const float* x, int64_t B, int64_t C, int64_t S, int64_t G, float eps,
                        const float* weight, const float* bias) {
  const int64_t cg = C / G, n = cg * S;
  parallel_for(0, B * G, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / G, g = t % G;
      const float* xg = x + (b * C + g * cg) * S;
      float* yg = y + (b * C + g * cg) * S;
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += xg[i];
      const double mean = sum / static_cast<double>(n);
      double ss = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const double d = xg[i] - mean;
        ss += d * d;
      }
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps));
      for (int64_t c = 0; c < cg; ++c) {
        const int64_t ch = g * cg + c;
        // y = x · a + s with a = inv · w and s = bias − mean · a, per channel.
        const double a = weight ? inv * weight[ch] : inv;
        const float af = static_cast<float>(a);
        const float sf = static_cast<float>((bias ? bias[ch] : 0.0) - mean * a);
        const float* xc = xg + c * S;
        float* yc = yg + c * S;
        for (int64_t i = 0; i < S; ++i) yc[i] = xc[i] * af + sf;
      }
    }
  });
}

}  // namespace omni
