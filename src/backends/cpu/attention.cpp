#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/vector_ops.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {

void attention_forward_rows(float* out, const float* q, const float* k, const float* v, int64_t N, int64_t Hq,
                            int64_t Hkv, int64_t hd, int64_t S, int64_t C, const int32_t* slot,
                            const int32_t* position, bool causal) {
  int64_t max_keys = 0;
  for (int64_t n = 0; n < N; ++n) {
    OMNI_CHECK(slot[n] >= 0 && slot[n] < S, "attention: row ", n, " reads slot ", slot[n], ", the cache has ", S);
    OMNI_CHECK(position[n] >= 0 && position[n] < C, "attention: row ", n, " is at position ", position[n],
               ", the cache holds ", C);
    max_keys = std::max<int64_t>(max_keys, causal ? position[n] + 1 : C);
  }
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One task per (row, head): each reads its keys once and writes its own output row.
  parallel_for(0, N * Hq, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(max_keys));
    std::vector<float> acc(static_cast<size_t>(hd));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i % Hq, n = i / Hq;
      const int64_t hk = h / group;
      const int64_t keys = causal ? position[n] + 1 : C;
      const float* kb = k + slot[n] * C * Hkv * hd;
      const float* vb = v + slot[n] * C * Hkv * hd;
      const float* qv = q + (n * Hq + h) * hd;
      float max_score = -INFINITY;
      for (int64_t j = 0; j < keys; ++j) {
        const float s = dot_f32(qv, kb + (j * Hkv + hk) * hd, hd) * scale;
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
        axpy_f32(acc.data(), scores[static_cast<size_t>(j)], vb + (j * Hkv + hk) * hd, hd);
      float* o = out + (n * Hq + h) * hd;
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[static_cast<size_t>(d)] * inv;
    }
  });
}

}  // namespace omni
