#include "backends/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/rope_backward.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

void rotate_heads(float* x, const float* cs, const float* sn, int64_t H, int64_t hd, bool inverse) {
  const int64_t half = hd / 2;
  for (int64_t h = 0; h < H; ++h) {
    float* v = x + h * hd;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half], c = cs[i], s = sn[i];
      if (inverse) {
        v[i] = a * c + b * s;
        v[i + half] = b * c - a * s;
      } else {
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace

void rope_rows(float* x, const int32_t* positions, int64_t N, int64_t H, int64_t hd, float theta, bool inverse) {
  if (N == 0) return;
  const int64_t half = hd / 2;
  int32_t max_pos = 0;
  for (int64_t n = 0; n < N; ++n) {
    OMNI_CHECK(positions[n] >= 0, "rope: position ", positions[n], " of row ", n, " is negative");
    max_pos = std::max(max_pos, positions[n]);
  }
  if (N > static_cast<int64_t>(max_pos) + 1) {
    const RopeTable tab = make_rope_table(static_cast<int64_t>(max_pos) + 1, hd, theta);
    parallel_for(0, N, 4, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t t = positions[n];
        rotate_heads(x + n * H * hd, tab.cos.data() + t * half, tab.sin.data() + t * half, H, hd, inverse);
      }
    });
    return;
  }
  // Same f32 steps as PyTorch's `1.0 / (theta ** (arange(0, hd, 2).float() / hd))`.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(hd);
    inv_freq[static_cast<size_t>(i)] = 1.0f / std::pow(theta, exponent);
  }
  parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t n = n0; n < n1; ++n) {
      const float pos = static_cast<float>(positions[n]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[static_cast<size_t>(i)];
        cos_t[static_cast<size_t>(i)] = std::cos(angle);
        sin_t[static_cast<size_t>(i)] = std::sin(angle);
      }
      rotate_heads(x + n * H * hd, cos_t.data(), sin_t.data(), H, hd, inverse);
    }
  });
}

}  // namespace omni
