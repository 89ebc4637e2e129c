#include "backends/cpu/matmul.h"

#include <gtest/gtest.h>

#include <limits>

#include "backends/cpu/cpu_test_util.h"
#include "core/half.h"

namespace omni {
namespace {

struct Case {
  int64_t M, K, N;
  bool bias;
};

// Odd sizes on purpose: K and N not multiples of 8/16, M past the 4-row blocks.
const Case kCases[] = {{1, 1, 1, false},  {1, 17, 33, true},   {2, 16, 4, false},  {3, 100, 7, true},
                       {5, 64, 64, false}, {8, 300, 129, true}, {257, 67, 45, true}, {1, 4096, 37, false},
                       // The prefill GEMM (M >= 8): several depth blocks of 256, task groups of 64 outputs, edges.
                       {16, 520, 200, false}, {9, 8, 16, true}, {70, 1030, 64, true}};

std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                              const Case& c) {
  std::vector<double> y(static_cast<size_t>(c.M * c.N));
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double s = c.bias ? b[static_cast<size_t>(n)] : 0.0;
      for (int64_t k = 0; k < c.K; ++k)
        s += static_cast<double>(x[static_cast<size_t>(m * c.K + k)]) * w[static_cast<size_t>(n * c.K + k)];
      y[static_cast<size_t>(m * c.N + n)] = s;
    }
  return y;
}

TEST(MatmulTest, F32WeightsMatchDoubleReference) {
  test::for_each_cpu_isa([] {
    uint32_t seed = 1;
    for (const Case& c : kCases) {
      SCOPED_TRACE(testing::Message() << "M=" << c.M << " K=" << c.K << " N=" << c.N);
      const auto x = test::random_floats(static_cast<size_t>(c.M * c.K), seed++);
      const auto w = test::random_floats(static_cast<size_t>(c.N * c.K), seed++);
      const auto b = test::random_floats(static_cast<size_t>(c.N), seed++);
      std::vector<float> y(static_cast<size_t>(c.M * c.N), std::numeric_limits<float>::quiet_NaN());
      matmul_f32_weights(y.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, c.M, c.K, c.N);
      ASSERT_TRUE(test::all_finite(y.data(), y.size()));
      EXPECT_LT(test::relative_error(y.data(), reference(x, w, b, c)), 2e-6);
    }
  });
}

TEST(MatmulTest, Bf16WeightsMatchDoubleReference) {
  test::for_each_cpu_isa([] {
    uint32_t seed = 100;
    for (const Case& c : kCases) {
      SCOPED_TRACE(testing::Message() << "M=" << c.M << " K=" << c.K << " N=" << c.N);
      const auto x = test::random_floats(static_cast<size_t>(c.M * c.K), seed++);
      auto w = test::random_floats(static_cast<size_t>(c.N * c.K), seed++);
      const auto b = test::random_floats(static_cast<size_t>(c.N), seed++);
      std::vector<uint16_t> wb(w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        wb[i] = f32_to_bf16(w[i]);
        w[i] = bf16_to_f32(wb[i]);  // the reference uses the exact bf16 values
      }
      std::vector<float> y(static_cast<size_t>(c.M * c.N), std::numeric_limits<float>::quiet_NaN());
      matmul_bf16_weights(y.data(), x.data(), wb.data(), c.bias ? b.data() : nullptr, c.M, c.K, c.N);
      ASSERT_TRUE(test::all_finite(y.data(), y.size()));
      EXPECT_LT(test::relative_error(y.data(), reference(x, w, b, c)), 2e-6);
    }
  });
}

}  // namespace
}  // namespace omni
