#include "quant/optimized_rtn.h"

#include <gtest/gtest.h>

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace omni {
namespace {

std::vector<float> random_weights(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& x : w) x = dist(rng);
  w[3] = 0.4f;  // an outlier makes the RTN scale coarse, leaving room for the search
  return w;
}

double total_error(const std::vector<float>& w, const QuantizedMatrix& qm, const std::vector<float>& imp) {
  std::vector<float> deq(w.size());
  dequantize_matrix(qm, deq.data());
  double e = 0;
  for (int64_t r = 0; r < qm.rows; ++r)
    for (int64_t k = 0; k < qm.cols; ++k) {
      const size_t i = static_cast<size_t>(r * qm.cols + k);
      e += imp[static_cast<size_t>(k)] * (deq[i] - w[i]) * (deq[i] - w[i]);
    }
  return e;
}

TEST(OptimizedRtn, NeverWorseThanRtnAndUsuallyBetter) {
  for (const QuantScheme scheme : {QuantScheme{4, 128, true}, QuantScheme{4, 64, false}, QuantScheme{2, 32, true},
                                   QuantScheme{8, -1, true}}) {
    const int64_t rows = 24, cols = 256;
    const std::vector<float> w = random_weights(rows * cols, 11);
    std::vector<float> imp(static_cast<size_t>(cols));
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.01f, 3.f);
    for (auto& x : imp) x = u(rng);
    const QuantizedMatrix rtn = quantize_matrix(w.data(), rows, cols, scheme);
    const QuantizedMatrix opt = quantize_matrix_optimized(w.data(), rows, cols, scheme, imp.data());
    const double e_rtn = total_error(w, rtn, imp), e_opt = total_error(w, opt, imp);
    EXPECT_LE(e_opt, e_rtn) << "bits " << scheme.bits;
    if (scheme.bits <= 4) {
      EXPECT_LT(e_opt, 0.95 * e_rtn) << "bits " << scheme.bits;
    }
    // No group's error is above its RTN error (minimality over the whole grid: ChosenScaleIsMinimalOverTheGrid).
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < opt.num_groups; ++g) {
        const int64_t k0 = g * opt.group_size, n = std::min(opt.group_size, cols - k0);
        const float* wg = w.data() + r * cols + k0;
        EXPECT_LE(weighted_group_error(wg, imp.data() + k0, n, opt.group(r, g), scheme),
                  weighted_group_error(wg, imp.data() + k0, n, rtn.group(r, g), scheme) * (1 + 1e-9));
      }
  }
}

// The search is exhaustive over its documented grid (optimized_rtn.h): for a symmetric scheme, no divisor
// d_rtn · (1 + kOptimizedRtnStep · t), |t| ≤ kOptimizedRtnSteps, gives a group a smaller weighted error than the
// one chosen. The candidates are rebuilt here from that definition (the dominant extreme over d, f16-rounded), not
// taken from the implementation.
TEST(OptimizedRtn, ChosenScaleIsMinimalOverTheGrid) {
  const QuantScheme scheme{4, 32, true};
  const int64_t rows = 6, cols = 96;
  std::vector<float> w(static_cast<size_t>(rows * cols)), imp(static_cast<size_t>(cols));
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 0.05f);
  for (auto& x : w) x = nd(rng);
  std::uniform_real_distribution<float> u(0.01f, 3.f);
  for (auto& x : imp) x = u(rng);
  const QuantizedMatrix opt = quantize_matrix_optimized(w.data(), rows, cols, scheme, imp.data());
  const float d_rtn = static_cast<float>(scheme.sym_zero());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < opt.num_groups; ++g) {
      const int64_t k0 = g * opt.group_size, n = std::min(opt.group_size, cols - k0);
      const float* wg = w.data() + r * cols + k0;
      const double chosen = weighted_group_error(wg, imp.data() + k0, n, opt.group(r, g), scheme);
      float wmin = wg[0], wmax = wg[0];
      for (int64_t j = 1; j < n; ++j) wmin = std::min(wmin, wg[j]), wmax = std::max(wmax, wg[j]);
      for (int t = -kOptimizedRtnSteps; t <= kOptimizedRtnSteps; ++t) {
        GroupScale c = opt.group(r, g);
        const float d = d_rtn * (1.f + kOptimizedRtnStep * static_cast<float>(t));
        c.scale = round_to_f16(!(wmax < -wmin) ? -wmax / d : -wmin / d);
        ASSERT_GT(std::fabs(c.scale), 1e-4f);  // no scale near the floor in this data
        EXPECT_LE(chosen, weighted_group_error(wg, imp.data() + k0, n, c, scheme) * (1 + 1e-12))
            << "row " << r << " group " << g << " t " << t;
      }
    }
}

TEST(OptimizedRtn, ImportanceSteersTheError) {
  const int64_t rows = 16, cols = 128;
  const QuantScheme scheme{4, 128, true};
  const std::vector<float> w = random_weights(rows * cols, 3);
  std::vector<float> flat(cols, 1.f), focused(cols, 0.01f);
  for (int64_t k = 0; k < 16; ++k) focused[static_cast<size_t>(k)] = 100.f;
  const QuantizedMatrix a = quantize_matrix_optimized(w.data(), rows, cols, scheme, flat.data());
  const QuantizedMatrix b = quantize_matrix_optimized(w.data(), rows, cols, scheme, focused.data());
  // The solution tuned for the focused importance is better on it than the flat one, and vice versa.
  EXPECT_LE(total_error(w, b, focused), total_error(w, a, focused));
  EXPECT_LE(total_error(w, a, flat), total_error(w, b, flat));
  const std::vector<float> negative(cols, -1.f);
  EXPECT_THROW(quantize_matrix_optimized(w.data(), rows, cols, scheme, negative.data()), Error);
}

}  // namespace
}  // namespace omni
