#include "backends/cpu/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backends/cpu/cpu_test_util.h"

namespace omni {
namespace {

// Full causal GQA in double: q [B, T, Hq, hd], k/v [B, S, Hkv, hd], query t at absolute position start + t.
std::vector<double> reference(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                              int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t hd, int64_t start) {
  std::vector<double> out(static_cast<size_t>(B * T * Hq * hd));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t hk = h / (Hq / Hkv), n = start + t + 1;
        std::vector<double> s(static_cast<size_t>(n));
        double mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          double d = 0.0;
          for (int64_t i = 0; i < hd; ++i)
            d += static_cast<double>(q[static_cast<size_t>(((b * T + t) * Hq + h) * hd + i)]) *
                 k[static_cast<size_t>(((b * S + j) * Hkv + hk) * hd + i)];
          s[static_cast<size_t>(j)] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double sum = 0.0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double o = 0.0;
          for (int64_t j = 0; j < n; ++j) o += s[static_cast<size_t>(j)] * v[static_cast<size_t>(((b * S + j) * Hkv + hk) * hd + i)];
          out[static_cast<size_t>(((b * T + t) * Hq + h) * hd + i)] = o / sum;
        }
      }
  return out;
}

TEST(AttentionTest, CausalGqaMatchesReference) {
  test::for_each_cpu_isa([] {
    for (int64_t ratio : {1, 2, 4})
      for (int64_t hd : {64, 13}) {
        SCOPED_TRACE(testing::Message() << "ratio=" << ratio << " hd=" << hd);
        const int64_t B = 2, T = 11, Hkv = 2, Hq = Hkv * ratio, S = T;
        // Scale 3 gives peaked softmax rows, which a missing max subtraction or causal mask would show.
        const auto q = test::random_floats(static_cast<size_t>(B * T * Hq * hd), 41, 3.0f);
        const auto k = test::random_floats(static_cast<size_t>(B * S * Hkv * hd), 42, 3.0f);
        const auto v = test::random_floats(static_cast<size_t>(B * S * Hkv * hd), 43);
        std::vector<float> out(q.size(), std::numeric_limits<float>::quiet_NaN());
        testing_support::attention_forward_batched(out.data(), q.data(), k.data(), v.data(), B, T, S, Hq, Hkv, hd, 0);
        EXPECT_LT(test::relative_error(out.data(), reference(q, k, v, B, T, S, Hq, Hkv, hd, 0)), 1e-5);
      }
  });
}

TEST(AttentionTest, DecodingWithStartPosEqualsRowsOfTheFullPass) {
  const int64_t B = 1, T = 13, Hkv = 2, Hq = 4, hd = 32, S_max = 20;
  // A cache larger than needed: keys past start_pos + t must not be read.
  const auto q = test::random_floats(static_cast<size_t>(B * T * Hq * hd), 51, 2.0f);
  auto k = test::random_floats(static_cast<size_t>(B * S_max * Hkv * hd), 52, 2.0f);
  auto v = test::random_floats(static_cast<size_t>(B * S_max * Hkv * hd), 53);
  std::vector<float> full(q.size());
  testing_support::attention_forward_batched(full.data(), q.data(), k.data(), v.data(), B, T, S_max, Hq, Hkv, hd, 0);
  for (int64_t i = T * Hkv * hd; i < S_max * Hkv * hd; ++i) k[static_cast<size_t>(i)] = v[static_cast<size_t>(i)] = 1e4f;
  for (int64_t start : {1, 6, 12}) {
    const int64_t rows = T - start;  // queries start .. T-1 in one call
    std::vector<float> part(static_cast<size_t>(rows * Hq * hd));
    testing_support::attention_forward_batched(part.data(), q.data() + start * Hq * hd, k.data(), v.data(), B, rows, S_max, Hq, Hkv, hd, start);
    for (size_t i = 0; i < part.size(); ++i)
      ASSERT_NEAR(part[i], full[static_cast<size_t>(start * Hq * hd) + i], 1e-6) << "start " << start << " element " << i;
  }
}

}  // namespace
}  // namespace omni
