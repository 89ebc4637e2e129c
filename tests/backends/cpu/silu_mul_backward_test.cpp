// SiLU-gated product backward: finite differences in double, and the f32 forward against the inference kernel.
#include <gtest/gtest.h>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/silu_mul_backward.h"

namespace omni {
namespace {

TEST(SiluMulBackward, FiniteDifferencesInDouble) {
  const int64_t n = 50;
  auto g = test::random_doubles(static_cast<size_t>(n), 51, -6.0, 6.0);
  auto u = test::random_doubles(static_cast<size_t>(n), 52, -2.0, 2.0);
  const auto r = test::random_doubles(static_cast<size_t>(n), 53);
  std::vector<double> y(static_cast<size_t>(n));
  auto loss = [&] {
    silu_mul_forward_train(y.data(), g.data(), u.data(), n);
    return test::weighted_sum(r, y.data());
  };
  std::vector<double> dg(static_cast<size_t>(n)), du(static_cast<size_t>(n));
  silu_mul_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  EXPECT_LE(test::rel_err(dg, test::numeric_grad(g, loss)), test::kFdTol);
  EXPECT_LE(test::rel_err(du, test::numeric_grad(u, loss)), test::kFdTol);
  // dgate aliasing dy, as the block trainer calls it.
  std::vector<double> alias = r, du2(static_cast<size_t>(n));
  silu_mul_backward(alias.data(), du2.data(), alias.data(), g.data(), u.data(), n);
  EXPECT_EQ(alias, dg);
  EXPECT_EQ(du2, du);
}

TEST(SiluMulBackward, TrainingForwardMatchesInference) {
  const int64_t n = 1000;
  const auto g = test::to_float(test::random_doubles(static_cast<size_t>(n), 54, -8.0, 8.0));
  const auto u = test::to_float(test::random_doubles(static_cast<size_t>(n), 55));
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  silu_mul_forward_train(a.data(), g.data(), u.data(), n);
  silu_mul_forward(b.data(), g.data(), u.data(), n);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace omni
