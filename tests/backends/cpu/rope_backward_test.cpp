// RoPE backward (the inverse rotation of rope_rows): finite differences in double, the inverse undoing the
// forward, and the shared-table path (training batches, rows repeat positions) agreeing bit for bit with the
// per-row path (decode) that computes each row's cos/sin itself.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/rope.h"

namespace omni {
namespace {

TEST(RopeBackward, FiniteDifferencesInDouble) {
  const int64_t N = 10, H = 3, hd = 8;
  const std::vector<int32_t> pos = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4};  // two samples of 5: the table path
  auto x = test::random_doubles(static_cast<size_t>(N * H * hd), 31);
  const auto r = test::random_doubles(x.size(), 32);
  std::vector<double> y(x.size());
  auto loss = [&] {
    y = x;
    rope_rows(y.data(), pos.data(), N, H, hd, 10000.f, /*inverse=*/false);
    return test::weighted_sum(r, y.data());
  };
  std::vector<double> dx = r;
  rope_rows(dx.data(), pos.data(), N, H, hd, 10000.f, /*inverse=*/true);
  EXPECT_LE(test::rel_err(dx, test::numeric_grad(x, loss)), test::kFdTol);
}

TEST(RopeBackward, TablePathEqualsPerRowPathAndInverseUndoesForward) {
  const int64_t B = 3, T = 17, H = 2, hd = 64;
  const float theta = 1e6f;
  const auto xd = test::random_doubles(static_cast<size_t>(B * T * H * hd), 33);
  std::vector<float> batched = test::to_float(xd), single = batched;
  std::vector<int32_t> pos;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) pos.push_back(static_cast<int32_t>(t));
  rope_rows(batched.data(), pos.data(), B * T, H, hd, theta, false);  // B·T rows > T positions: the table
  for (int64_t b = 0; b < B; ++b)                                     // T rows, T positions: per row
    rope_rows(single.data() + b * T * H * hd, pos.data(), T, H, hd, theta, false);
  EXPECT_EQ(batched, single);
  rope_rows(batched.data(), pos.data(), B * T, H, hd, theta, /*inverse=*/true);  // the rotation is orthogonal
  EXPECT_LE(test::rel_err(batched, xd), 1e-6);
}

}  // namespace
}  // namespace omni
