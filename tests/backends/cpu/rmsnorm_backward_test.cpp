// RMSNorm backward: finite differences in double (input and weight gradients, accumulation), the f32 path
// against double, and the training forward against the inference kernel.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/rmsnorm.h"
#include "backends/cpu/rmsnorm_backward.h"

namespace omni {
namespace {

TEST(RmsnormBackward, FiniteDifferencesInDouble) {
  const int64_t rows = 4, dim = 9;
  const float eps = 1e-3f;  // large enough to matter in the derivative
  auto x = test::random_doubles(static_cast<size_t>(rows * dim), 21);
  auto w = test::random_doubles(static_cast<size_t>(dim), 22, 0.5, 1.5);
  const auto r = test::random_doubles(x.size(), 23);
  std::vector<double> y(x.size()), rstd(static_cast<size_t>(rows));
  auto loss = [&] {
    rmsnorm_forward_train(y.data(), rstd.data(), x.data(), w.data(), rows, dim, eps);
    return test::weighted_sum(r, y.data());
  };
  loss();
  const auto dx0 = test::random_doubles(x.size(), 24);
  std::vector<double> dx = dx0, dw(w.size(), 0.0);
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), rows, dim, true);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] -= dx0[i];
  EXPECT_LE(test::rel_err(dx, test::numeric_grad(x, loss)), test::kFdTol);
  EXPECT_LE(test::rel_err(dw, test::numeric_grad(w, loss)), test::kFdTol);

  // In place (dx aliasing dy), overwriting.
  std::vector<double> g = r;
  rmsnorm_backward(g.data(), static_cast<double*>(nullptr), g.data(), x.data(), w.data(), rstd.data(), rows, dim,
                   false);
  EXPECT_LE(test::rel_err(g, dx), 1e-14);
}

TEST(RmsnormBackward, FloatPathMatchesDoubleAndInference) {
  const int64_t rows = 33, dim = 64;
  const auto x = test::random_doubles(static_cast<size_t>(rows * dim), 25);
  const auto w = test::random_doubles(static_cast<size_t>(dim), 26, 0.5, 1.5);
  const auto dy = test::random_doubles(x.size(), 27);
  std::vector<double> y(x.size()), rstd(static_cast<size_t>(rows)), dx(x.size());
  rmsnorm_forward_train(y.data(), rstd.data(), x.data(), w.data(), rows, dim, 1e-6f);
  rmsnorm_backward(dx.data(), static_cast<double*>(nullptr), dy.data(), x.data(), w.data(), rstd.data(), rows, dim,
                   false);
  const auto xf = test::to_float(x), wf = test::to_float(w), dyf = test::to_float(dy);
  std::vector<float> yf(x.size()), rf(static_cast<size_t>(rows)), dxf(x.size()), y_inf(x.size());
  rmsnorm_forward_train(yf.data(), rf.data(), xf.data(), wf.data(), rows, dim, 1e-6f);
  rmsnorm_backward(dxf.data(), static_cast<float*>(nullptr), dyf.data(), xf.data(), wf.data(), rf.data(), rows, dim,
                   false);
  EXPECT_LE(test::rel_err(yf, y), 1e-6);
  EXPECT_LE(test::rel_err(dxf, dx), 1e-6);
  rmsnorm_forward(y_inf.data(), xf.data(), wf.data(), nullptr, rows, dim, 1e-6f);
  EXPECT_EQ(y_inf, yf);  // same steps as the inference kernel: bit-identical
}

}  // namespace
}  // namespace omni
