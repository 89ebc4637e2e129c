#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/rmsnorm.h"
#include "backends/cpu/rope.h"
#include "core/half.h"

namespace omni {
namespace {

TEST(RmsnormTest, MatchesDoubleReferenceF32AndBf16Weights) {
  for (int64_t rows : {1, 7, 257})
    for (int64_t dim : {1, 33, 128, 1000}) {
      SCOPED_TRACE(testing::Message() << "rows=" << rows << " dim=" << dim);
      const auto x = test::random_floats(static_cast<size_t>(rows * dim), 11, 3.0f);
      auto w = test::random_floats(static_cast<size_t>(dim), 12);
      std::vector<uint16_t> wb(w.size());
      for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]);
      const float eps = 1e-6f;
      for (bool bf16 : {false, true}) {
        std::vector<double> ref(x.size());
        for (int64_t r = 0; r < rows; ++r) {
          double ss = 0.0;
          for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(x[static_cast<size_t>(r * dim + i)]) * x[static_cast<size_t>(r * dim + i)];
          const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + eps);
          for (int64_t i = 0; i < dim; ++i) {
            const double wi = bf16 ? bf16_to_f32(wb[static_cast<size_t>(i)]) : w[static_cast<size_t>(i)];
            ref[static_cast<size_t>(r * dim + i)] = x[static_cast<size_t>(r * dim + i)] * inv * wi;
          }
        }
        std::vector<float> y = x;  // in place: y aliases x
        rmsnorm_forward(y.data(), y.data(), bf16 ? nullptr : w.data(), bf16 ? wb.data() : nullptr, rows, dim, eps);
        EXPECT_LT(test::relative_error(y.data(), ref), 1e-6);
      }
    }
}

// Reference with the angle formed in f32 exactly as PyTorch does, the rest in double.
std::vector<double> rope_reference(const std::vector<float>& x, const std::vector<int32_t>& pos, int64_t H, int64_t hd,
                                   float theta) {
  const int64_t T = static_cast<int64_t>(pos.size()), half = hd / 2;
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const float inv_freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(hd));
        const double angle = static_cast<float>(pos[static_cast<size_t>(t)]) * inv_freq;
        const size_t base = static_cast<size_t>((t * H + h) * hd);
        const double a = x[base + static_cast<size_t>(i)], b = x[base + static_cast<size_t>(i + half)];
        out[base + static_cast<size_t>(i)] = a * std::cos(angle) - b * std::sin(angle);
        out[base + static_cast<size_t>(i + half)] = b * std::cos(angle) + a * std::sin(angle);
      }
  return out;
}

TEST(RopeTest, RotateHalfMatchesReference) {
  for (int64_t hd : {2, 64, 128, 30}) {
    SCOPED_TRACE(testing::Message() << "hd=" << hd);
    const int64_t T = 9, H = 3;
    const std::vector<int32_t> pos = {0, 1, 2, 5, 17, 100, 511, 4095, 30000};
    auto x = test::random_floats(static_cast<size_t>(T * H * hd), 21);
    const auto ref = rope_reference(x, pos, H, hd, 1000000.0f);
    testing_support::rope_forward(x.data(), pos.data(), T, H, hd, 1000000.0f);
    EXPECT_LT(test::relative_error(x.data(), ref), 1e-6);
  }
}

TEST(RopeTest, ScoresDependOnlyOnRelativePosition) {
  // The property attention relies on: <rope(q, p + d), rope(k, p)> is the same for every p.
  const int64_t hd = 64;
  const auto q = test::random_floats(hd, 31), k = test::random_floats(hd, 32);
  double first = 0.0;
  for (int32_t p : {0, 10, 300}) {
    auto qr = q, kr = k;
    const int32_t pq = p + 7;
    testing_support::rope_forward(qr.data(), &pq, 1, 1, hd, 10000.0f);
    testing_support::rope_forward(kr.data(), &p, 1, 1, hd, 10000.0f);
    double dot = 0.0;
    for (int64_t i = 0; i < hd; ++i) dot += static_cast<double>(qr[static_cast<size_t>(i)]) * kr[static_cast<size_t>(i)];
    if (p == 0) first = dot;
    EXPECT_NEAR(dot, first, 1e-4 * std::abs(first) + 1e-5) << "p=" << p;
  }
  auto q0 = q;
  const int32_t zero = 0;
  testing_support::rope_forward(q0.data(), &zero, 1, 1, hd, 10000.0f);
  EXPECT_EQ(q0, q);  // position 0 is the identity
}

}  // namespace
}  // namespace omni
