#include "backends/cpu/attention_bias.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/vector_ops.h"
#include "core/thread_pool.h"

namespace omni {

void attention_with_bias_forward(float* out, const float* q, const float* k, const float* v, const float* bias,
                                 int64_t B, int64_t Lq, int64_t Lk, int64_t H, int64_t hd, bool bias_per_sample,
                                 float scale) {
  // One task per (sample, query row, head): it reads that head's keys once and writes its own output row.
  parallel_for(0, B * Lq * H, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(Lk));
    std::vector<float> acc(static_cast<size_t>(hd));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t h = i % H, row = (i / H) % Lq, b = i / (H * Lq);
      const float* qv = q + i * hd;  // [b, row, h] is row-major index i
      const float* kb = k + b * Lk * H * hd + h * hd;
      const float* vb = v + b * Lk * H * hd + h * hd;
      const float* bias_row = bias + ((bias_per_sample ? b * H : 0) + h) * Lq * Lk + row * Lk;
      float max_score = -INFINITY;
      for (int64_t j = 0; j < Lk; ++j) {
        const float s = scale * dot_f32(qv, kb + j * H * hd, hd) + bias_row[j];
        scores[static_cast<size_t>(j)] = s;
        max_score = std::max(max_score, s);
      }
      float* o = out + i * hd;
      if (max_score == -INFINITY) {  // every key masked: no distribution to take
        std::fill(o, o + hd, 0.0f);
        continue;
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < Lk; ++j) {
        const float e = std::exp(scores[static_cast<size_t>(j)] - max_score);
        scores[static_cast<size_t>(j)] = e;
        sum += e;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < Lk; ++j) axpy_f32(acc.data(), scores[static_cast<size_t>(j)], vb + j * H * hd, hd);
      const float inv = 1.0f / sum;
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[static_cast<size_t>(d)] * inv;
    }
  });
}

}  // namespace omni
