#include "backends/cpu/rope.h"

#include <cmath>
#include <vector>

#include "core/thread_pool.h"

namespace omni {

void rope_forward(float* x, const int32_t* positions, int64_t T, int64_t H, int64_t hd, float theta) {
  const int64_t half = hd / 2;
  // Same f32 steps as PyTorch's `1.0 / (theta ** (arange(0, hd, 2).float() / hd))`.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(hd);
    inv_freq[static_cast<size_t>(i)] = 1.0f / std::pow(theta, exponent);
  }
  parallel_for(0, T, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t t = t0; t < t1; ++t) {
      const float pos = static_cast<float>(positions[t]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[static_cast<size_t>(i)];
        cos_t[static_cast<size_t>(i)] = std::cos(angle);
        sin_t[static_cast<size_t>(i)] = std::sin(angle);
      }
      for (int64_t h = 0; h < H; ++h) {
        float* v = x + (t * H + h) * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          const float c = cos_t[static_cast<size_t>(i)], s = sin_t[static_cast<size_t>(i)];
          v[i] = a * c - b * s;
          v[i + half] = b * c + a * s;
        }
      }
    }
  });
}

}  // namespace omni
