#include "quant/qdq.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {

void quantize_group(const float* w, const float* v, int64_t n, const GroupScale& gs, const QuantScheme& scheme,
                    uint8_t* codes, uint8_t* in_range) {
  for (int64_t j = 0; j < n; ++j) {
    bool inside = false;
    codes[j] = static_cast<uint8_t>(qdq_code(w[j], v ? v[j] : 0.f, gs, scheme, &inside));
    if (in_range) in_range[j] = inside ? 1 : 0;
  }
}

QuantizedMatrix allocate_quantized_matrix(int64_t rows, int64_t cols, const QuantScheme& scheme, const char* what) {
  scheme.validate();
  OMNI_CHECK(rows > 0 && cols > 0, what, ": empty weight [", rows, ", ", cols, "]");
  QuantizedMatrix qm;
  qm.scheme = scheme;
  qm.rows = rows;
  qm.cols = cols;
  qm.group_size = scheme.group_size_for(cols);
  qm.num_groups = scheme.num_groups_for(cols);
  qm.codes.resize(static_cast<size_t>(rows * cols));
  qm.groups.resize(static_cast<size_t>(rows * qm.num_groups));
  return qm;
}

QuantizedMatrix quantize_matrix(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                const QdqParams& params) {
  QuantizedMatrix qm = allocate_quantized_matrix(rows, cols, scheme, "quantize_matrix");
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / cols);
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t g = 0; g < qm.num_groups; ++g) {
        const int64_t k0 = g * qm.group_size;
        const int64_t n = std::min(qm.group_size, cols - k0);
        const float* wg = w + r * cols + k0;
        const int64_t gi = r * qm.num_groups + g;
        float wmin, wmax;
        group_min_max(wg, n, &wmin, &wmax);
        const float alpha = params.alpha ? params.alpha[gi] : 1.f;
        const float beta = params.beta ? params.beta[gi] : 1.f;
        GroupScale& gs = qm.groups[static_cast<size_t>(gi)];
        gs = compute_group_scale(wmin, wmax, alpha, beta, scheme);
        quantize_group(wg, params.v ? params.v + r * cols + k0 : nullptr, n, gs, scheme,
                       qm.codes.data() + r * cols + k0);
      }
    }
  });
  return qm;
}

void dequantize_matrix(const QuantizedMatrix& qm, float* out) {
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / qm.cols);
  parallel_for(0, qm.rows, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t k = 0; k < qm.cols; ++k) {
        const size_t i = static_cast<size_t>(r * qm.cols + k);
        out[i] = dequantize_code(qm.codes[i], qm.group(r, k / qm.group_size));
      }
    }
  });
}

std::vector<float> fake_quantize(const float* w, int64_t rows, int64_t cols, const QuantScheme& scheme,
                                 const QdqParams& params) {
  const QuantizedMatrix qm = quantize_matrix(w, rows, cols, scheme, params);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  dequantize_matrix(qm, out.data());
  return out;
}

}  // namespace omni
