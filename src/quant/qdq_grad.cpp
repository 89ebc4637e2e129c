#include "quant/qdq_grad.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace omni {

void fake_quant_backward(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                         const QdqParams& params, const float* grad_w_hat, float* grad_v, float* grad_alpha,
                         float* grad_beta) {
  scheme.validate();
  OMNI_CHECK(rows > 0 && cols > 0, "fake_quant_backward: empty weight [", rows, ", ", cols, "]");
  const int64_t gsize = scheme.group_size_for(cols);
  const int64_t groups = scheme.num_groups_for(cols);
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / cols);
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t k0 = g * gsize, n = std::min(gsize, cols - k0);
        const int64_t gi = r * groups + g;
        const int64_t at = r * cols + k0;
        float da = 0.f, db = 0.f;
        qdq_group_backward(w + at, params.v ? params.v + at : nullptr, grad_w_hat + at, n,
                           params.alpha ? params.alpha[gi] : 1.f, params.beta ? params.beta[gi] : 1.f, scheme,
                           grad_v ? grad_v + at : nullptr, &da, &db);
        if (grad_alpha) grad_alpha[gi] += da;
        if (grad_beta) grad_beta[gi] += db;
      }
    }
  });
}

}  // namespace omni
