#include "backends/cpu/conv2d.h"

#include <algorithm>
#include <vector>

#include "backends/cpu/gemm_f32.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// A band's column matrix holds at most this many floats (32 MiB), so a band stays near the cache and the
// scratch stays small whatever the image size.
constexpr int64_t kMaxColumnFloats = int64_t{1} << 23;

// Every output row of y_b [Cout, P] starts as the bias (the GEMM then accumulates into it).
void fill_bias(float* y_b, const float* bias, int64_t Cout, int64_t P) {
  parallel_for(0, Cout, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) std::fill(y_b + c * P, y_b + (c + 1) * P, bias[c]);
  });
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* bias, int64_t B, int64_t Cin, int64_t H,
                    int64_t W, int64_t Cout, int64_t kh, int64_t kw, int64_t pad, int64_t band_rows) {
  const int64_t Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1, P = Ho * Wo;
  const int64_t K = Cin * kh * kw;
  const bool acc = bias != nullptr;
  if (kh == 1 && kw == 1 && pad == 0) {  // y_b [Cout, HW] = w [Cout, Cin] · x_b [Cin, HW]
    for (int64_t b = 0; b < B; ++b) {
      float* y_b = y + b * Cout * P;
      if (acc) fill_bias(y_b, bias, Cout, P);
      gemm_f32(false, false, Cout, P, Cin, w, Cin, x + b * Cin * H * W, P, y_b, P, acc);
    }
    return;
  }
  const int64_t band =
      std::clamp<int64_t>(band_rows > 0 ? band_rows : kMaxColumnFloats / std::max<int64_t>(1, K * Wo), 1, Ho);
  std::vector<float> col(static_cast<size_t>(K * band * Wo));
  for (int64_t b = 0; b < B; ++b) {
    const float* x_b = x + b * Cin * H * W;
    float* y_b = y + b * Cout * P;
    if (acc) fill_bias(y_b, bias, Cout, P);
    for (int64_t r0 = 0; r0 < Ho; r0 += band) {
      const int64_t rows = std::min(band, Ho - r0), n = rows * Wo;
      // col[(ci·kh + i)·kw + j, (r − r0)·Wo + c] = x_b[ci, r + i − pad, c + j − pad], 0 in the padding.
      parallel_for(0, K, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t ci = k / (kh * kw), i = (k / kw) % kh, j = k % kw;
          // Output columns c whose input column c + j − pad lies inside [0, W).
          const int64_t c_lo = std::clamp<int64_t>(pad - j, 0, Wo), c_hi = std::clamp<int64_t>(W + pad - j, c_lo, Wo);
          float* dst = col.data() + k * n;
          for (int64_t r = r0; r < r0 + rows; ++r) {
            float* d = dst + (r - r0) * Wo;
            const int64_t xr = r + i - pad;
            if (xr < 0 || xr >= H) {
              std::fill(d, d + Wo, 0.0f);
              continue;
            }
            const float* src = x_b + (ci * H + xr) * W + (c_lo + j - pad);  // x column of output column c_lo
            std::fill(d, d + c_lo, 0.0f);
            std::copy(src, src + (c_hi - c_lo), d + c_lo);
            std::fill(d + c_hi, d + Wo, 0.0f);
          }
        }
      });
      gemm_f32(false, false, Cout, n, K, w, K, col.data(), n, y_b + r0 * Wo, P, acc);
    }
  }
}

}  // namespace omni
