#include "backends/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// Same f32 steps as PyTorch's `1.0 / (theta ** (arange(0, hd, 2).float() / hd))`.
std::vector<float> inverse_frequencies(int64_t hd, float theta) {
  std::vector<float> inv_freq(static_cast<size_t>(hd / 2));
  for (int64_t i = 0; i < hd / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(hd);
    inv_freq[static_cast<size_t>(i)] = 1.0f / std::pow(theta, exponent);
  }
  return inv_freq;
}

// cos and sin of one position for every frequency, in f32.
void angles(int32_t pos, const std::vector<float>& inv_freq, float* cos_out, float* sin_out) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    cos_out[i] = std::cos(angle);
    sin_out[i] = std::sin(angle);
  }
}

template <class T>
void rotate_heads(T* x, const float* cs, const float* sn, int64_t H, int64_t hd, bool inverse) {
  const int64_t half = hd / 2;
  for (int64_t h = 0; h < H; ++h) {
    T* v = x + h * hd;
    for (int64_t i = 0; i < half; ++i) {
      const T a = v[i], b = v[i + half], c = cs[i], s = sn[i];
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

template <class T>
void rope_rows(T* x, const int32_t* positions, int64_t N, int64_t H, int64_t hd, float theta, bool inverse) {
  if (N == 0) return;
  const int64_t half = hd / 2;
  int32_t max_pos = 0;
  for (int64_t n = 0; n < N; ++n) {
    OMNI_CHECK(positions[n] >= 0, "rope: position ", positions[n], " of row ", n, " is negative");
    max_pos = std::max(max_pos, positions[n]);
  }
  const std::vector<float> inv_freq = inverse_frequencies(hd, theta);
  if (N > static_cast<int64_t>(max_pos) + 1) {  // one table over 0..max_pos, shared by the rows
    const auto P = static_cast<size_t>(max_pos) + 1;
    std::vector<float> cos_t(P * static_cast<size_t>(half)), sin_t(cos_t.size());
    for (size_t p = 0; p < P; ++p)
      angles(static_cast<int32_t>(p), inv_freq, cos_t.data() + p * half, sin_t.data() + p * half);
    parallel_for(0, N, 4, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t t = positions[n];
        rotate_heads(x + n * H * hd, cos_t.data() + t * half, sin_t.data() + t * half, H, hd, inverse);
      }
    });
    return;
  }
  parallel_for(0, N, 1, [&](int64_t n0, int64_t n1) {
    std::vector<float> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
    for (int64_t n = n0; n < n1; ++n) {
      angles(positions[n], inv_freq, cos_t.data(), sin_t.data());
      rotate_heads(x + n * H * hd, cos_t.data(), sin_t.data(), H, hd, inverse);
    }
  });
}

template void rope_rows<float>(float*, const int32_t*, int64_t, int64_t, int64_t, float, bool);
template void rope_rows<double>(double*, const int32_t*, int64_t, int64_t, int64_t, float, bool);

}  // namespace omni
