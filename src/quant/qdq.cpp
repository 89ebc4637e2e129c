#include "quant/qdq.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace omni {

void QuantScheme::validate() const {
  OMNI_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "quantization bits must be 2, 3, 4 or 8, found ",
             bits);
  OMNI_CHECK(group_size == -1 || group_size > 0, "quantization group_size must be -1 or positive, found ",
             group_size);
}

int64_t QuantScheme::num_groups_for(int64_t in_features) const {
  const int64_t g = group_size_for(in_features);
  return g <= 0 ? 0 : (in_features + g - 1) / g;
}

void group_min_max(const float* w, int64_t n, float* wmin, float* wmax) {
  float lo = 0.f, hi = 0.f;  // starting at 0 includes 0 in the range (§2)
  for (int64_t j = 0; j < n; ++j) {
    lo = std::min(lo, w[j]);
    hi = std::max(hi, w[j]);
  }
  *wmin = lo;
  *wmax = hi;
}

namespace {

// f16 rounding of the scale, then the magnitude floor keeping the sign (a zero or −0 scale becomes +floor, as a
// "s < 0 ? min(s, −floor) : max(s, floor)" clamp gives).
float finish_scale(float raw, bool* floored) {
  const float s = round_to_f16(raw);
  const float floor_f16 = round_to_f16(kScaleFloor);
  *floored = std::fabs(s) < kScaleFloor;
  if (!*floored) return s;
  return s < 0.f ? -floor_f16 : floor_f16;
}

}  // namespace

GroupScale compute_group_scale(float wmin, float wmax, float alpha, float beta, const QuantScheme& scheme) {
  alpha = std::clamp(alpha, 0.f, 1.f);
  beta = std::clamp(beta, 0.f, 1.f);
  GroupScale gs;
  gs.wmin = wmin;
  gs.wmax = wmax;
  if (scheme.sym) {
    const float maxq = static_cast<float>(scheme.sym_zero());
    const float m = -(wmin * beta);  // magnitude of the negative extreme
    const float M = wmax * alpha;    // positive extreme
    // The dominant extreme maps to code −maxq; a tie goes to the positive side (negative scale).
    gs.scale_from_max = !(M < m);
    const float raw = gs.scale_from_max ? -M / maxq : m / maxq;
    gs.scale = finish_scale(raw, &gs.floored);
    gs.zero = scheme.sym_zero();
  } else {
    const float maxq = static_cast<float>(scheme.max_code());
    const float lo = wmin * beta, hi = wmax * alpha;
    const float s = round_to_f16((hi - lo) / maxq);
    gs.floored = s < kScaleFloor;  // asym scales are never negative
    gs.scale = gs.floored ? round_to_f16(kScaleFloor) : s;
    // zp = round(−wmin'/s) lies in [0, maxq] up to the f16 rounding of s; the clamp only guards the u8 storage.
    const float zp = std::nearbyint(-lo / gs.scale);
    gs.zero = static_cast<int>(std::clamp(zp, 0.f, maxq));
  }
  return gs;
}

void quantize_group(const float* w, const float* v, int64_t n, const GroupScale& gs, const QuantScheme& scheme,
                    uint8_t* codes, uint8_t* in_range) {
  const float max_code = static_cast<float>(scheme.max_code());
  const float zero = static_cast<float>(gs.zero);
  if (!v && !in_range) {  // the RTN case, kept branch-free so it vectorises
    for (int64_t j = 0; j < n; ++j)
      codes[j] = static_cast<uint8_t>(std::clamp(std::nearbyint(w[j] / gs.scale) + zero, 0.f, max_code));
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    float x = w[j] / gs.scale;  // a true division, as the reference does, not a multiply by 1/s
    if (v) x += v[j];
    const float u = std::nearbyint(x) + zero;  // round half to even in the default rounding mode
    const bool inside = u >= 0.f && u <= max_code;
    if (in_range) in_range[j] = inside ? 1 : 0;
    codes[j] = static_cast<uint8_t>(std::clamp(u, 0.f, max_code));
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
