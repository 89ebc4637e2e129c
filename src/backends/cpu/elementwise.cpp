#include "backends/cpu/elementwise.h"

#include <algorithm>
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

void gelu_tanh_forward(float* y, const float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
    }
  });
}

void modulate_forward(float* y, const float* x, const float* scale, const float* shift, int64_t B, int64_t T,
                      int64_t D) {
  parallel_for(0, B * T, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* sc = scale + (r / T) * D;
      const float* sh = shift + (r / T) * D;
      for (int64_t d = 0; d < D; ++d) y[r * D + d] = x[r * D + d] * (1.0f + sc[d]) + sh[d];
    }
  });
}

void silu_forward(float* y, const float* x, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
  });
}

void gated_add_forward(float* y, const float* x, const float* gate, const float* h, int64_t B, int64_t T, int64_t D) {
  parallel_for(0, B * T, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, D)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gate + (r / T) * D;
      for (int64_t d = 0; d < D; ++d) y[r * D + d] = x[r * D + d] + g[d] * h[r * D + d];
    }
  });
}

void rope_interleaved_forward(float* x, const float* cos, const float* sin, int64_t N, int64_t H, int64_t hd) {
  parallel_for(0, N, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, H * hd)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* c = cos + n * hd;
      const float* s = sin + n * hd;
      for (int64_t h = 0; h < H; ++h) {
        float* v = x + (n * H + h) * hd;
        for (int64_t k = 0; k < hd; k += 2) {
          const float re = v[k], im = v[k + 1];
          v[k] = re * c[k] - im * s[k];
          v[k + 1] = im * c[k + 1] + re * s[k + 1];
        }
      }
    }
  });
}

void quick_gelu_forward(float* y, const float* x, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
  });
}

void mul_forward(float* y, const float* a, const float* b, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = a[i] * b[i];
  });
}

}  // namespace omni
