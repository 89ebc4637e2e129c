#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/vector_ops.h"
#include "core/thread_pool.h"

namespace omni {

void attention_forward(float* out, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t S, int64_t Hq, int64_t Hkv, int64_t hd, int64_t start_pos) {
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One task per (b, t, h): each reads its keys once and writes its own output row.
  parallel_for(0, B * T * Hq, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(start_pos + T));
    std::vector<float> acc(static_cast<size_t>(hd));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i % Hq, t = (i / Hq) % T, b = i / (Hq * T);
      const int64_t hk = h / group;
      const int64_t keys = start_pos + t + 1;
      const float* qv = q + ((b * T + t) * Hq + h) * hd;
      float max_score = -INFINITY;
      for (int64_t j = 0; j < keys; ++j) {
        const float s = dot_f32(qv, k + ((b * S + j) * Hkv + hk) * hd, hd) * scale;
        scores[static_cast<size_t>(j)] = s;
        max_score = std::max(max_score, s);
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < keys; ++j) {
        const float e = std::exp(scores[static_cast<size_t>(j)] - max_score);
        scores[static_cast<size_t>(j)] = e;
        sum += e;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < keys; ++j)
        axpy_f32(acc.data(), scores[static_cast<size_t>(j)], v + ((b * S + j) * Hkv + hk) * hd, hd);
      float* o = out + ((b * T + t) * Hq + h) * hd;
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[static_cast<size_t>(d)] * inv;
    }
  });
}

}  // namespace omni
