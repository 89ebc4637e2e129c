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
  const float maxq = static_cast<float>(scheme.sym ? scheme.sym_zero() : scheme.max_code());
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / cols);
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> codes(static_cast<size_t>(gsize)), inside(static_cast<size_t>(gsize));
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t k0 = g * gsize, n = std::min(gsize, cols - k0);
        const int64_t gi = r * groups + g;
        const float* wg = w + r * cols + k0;
        const float* gw = grad_w_hat + r * cols + k0;
        const float alpha = std::clamp(params.alpha ? params.alpha[gi] : 1.f, 0.f, 1.f);
        const float beta = std::clamp(params.beta ? params.beta[gi] : 1.f, 0.f, 1.f);
        float wmin, wmax;
        group_min_max(wg, n, &wmin, &wmax);
        const GroupScale gs = compute_group_scale(wmin, wmax, alpha, beta, scheme);
        quantize_group(wg, params.v ? params.v + r * cols + k0 : nullptr, n, gs, scheme, codes.data(),
                       inside.data());
        const float s = gs.scale;
        const float lo = wmin * beta;  // the shrunk minimum (asym)
        float ds = 0.f, g_clamped = 0.f;
        for (int64_t j = 0; j < n; ++j) {
          const float G = gw[j];
          const float q = static_cast<float>(static_cast<int>(codes[static_cast<size_t>(j)]) - gs.zero);
          if (inside[static_cast<size_t>(j)]) {
            if (grad_v) grad_v[r * cols + k0 + j] += G * s;
            ds += G * (q - wg[j] / s);
          } else if (scheme.sym) {
            ds += G * q;
          } else {
            ds += G * (q - lo / s);
            g_clamped += G;
          }
        }
        if (gs.floored) ds = 0.f;
        float da = 0.f, db = 0.f;
        if (scheme.sym) {
          if (gs.scale_from_max)
            da = ds * (-wmax / maxq);
          else
            db = ds * (-wmin / maxq);
        } else {
          da = ds * (wmax / maxq);
          db = ds * (-wmin / maxq);
          const float zp_raw = std::nearbyint(-lo / s);
          if (zp_raw >= 0.f && zp_raw <= maxq) db += wmin * g_clamped;
        }
        if (grad_alpha) grad_alpha[gi] += da;
        if (grad_beta) grad_beta[gi] += db;
      }
    }
  });
}

}  // namespace omni
