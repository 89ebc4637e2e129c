#include "quant/optimized_rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {
namespace {

// The scale for divisor d, finished like every scale of §2: f16 rounding, then the 1e-5 floor keeping the sign.
GroupScale scale_for_divisor(float wmin, float wmax, float d, const QuantScheme& scheme) {
  GroupScale gs;
  gs.wmin = wmin;
  gs.wmax = wmax;
  float raw;
  if (scheme.sym) {
    gs.scale_from_max = !(wmax < -wmin);  // the dominant extreme maps to −maxq, as in compute_group_scale
    raw = gs.scale_from_max ? -wmax / d : -wmin / d;
    gs.zero = scheme.sym_zero();
  } else {
    raw = (wmax - wmin) / d;
  }
  float s = round_to_f16(raw);
  gs.floored = std::fabs(s) < kScaleFloor;
  if (gs.floored) s = (s < 0.f ? -1.f : 1.f) * round_to_f16(kScaleFloor);
  gs.scale = s;
  if (!scheme.sym) {
    const float max_code = static_cast<float>(scheme.max_code());
    gs.zero = static_cast<int>(std::clamp(std::nearbyint(-wmin / s), 0.f, max_code));
  }
  return gs;
}

}  // namespace

double weighted_group_error(const float* w, const float* imp, int64_t n, const GroupScale& gs,
                            const QuantScheme& scheme) {
  const float max_code = static_cast<float>(scheme.max_code());
  const float zero = static_cast<float>(gs.zero);
  double err = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float u = std::clamp(std::nearbyint(w[j] / gs.scale) + zero, 0.f, max_code);
    const double d = static_cast<double>(gs.scale) * (u - zero) - w[j];
    err += (imp ? imp[j] : 1.0) * d * d;
  }
  return err;
}

QuantizedMatrix quantize_matrix_optimized(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                          const float* importance) {
  QuantizedMatrix qm = allocate_quantized_matrix(rows, cols, scheme, "quantize_matrix_optimized");
  if (importance)
    for (int64_t k = 0; k < cols; ++k)
      OMNI_CHECK(importance[k] >= 0.f && std::isfinite(importance[k]), "importance[", k,
                 "] must be finite and non-negative, found ", importance[k]);
  const float d_rtn = static_cast<float>(scheme.sym ? scheme.sym_zero() : scheme.max_code());

  parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < qm.num_groups; ++g) {
        const int64_t k0 = g * qm.group_size;
        const int64_t n = std::min(qm.group_size, cols - k0);
        const float* wg = w + r * cols + k0;
        const float* ig = importance ? importance + k0 : nullptr;
        float wmin, wmax;
        group_min_max(wg, n, &wmin, &wmax);
        // t = 0 (plain RTN) first, so ties keep the RTN scale.
        GroupScale best = scale_for_divisor(wmin, wmax, d_rtn, scheme);
        double best_err = weighted_group_error(wg, ig, n, best, scheme);
        for (int t = -kOptimizedRtnSteps; t <= kOptimizedRtnSteps; ++t) {
          if (t == 0) continue;
          const float d = d_rtn * (1.f + kOptimizedRtnStep * static_cast<float>(t));
          const GroupScale gs = scale_for_divisor(wmin, wmax, d, scheme);
          const double e = weighted_group_error(wg, ig, n, gs, scheme);
          if (e < best_err) {
            best_err = e;
            best = gs;
          }
        }
        qm.groups[static_cast<size_t>(r * qm.num_groups + g)] = best;
        quantize_group(wg, nullptr, n, best, scheme, qm.codes.data() + r * cols + k0);
      }
    }
  });
  return qm;
}

}  // namespace omni
