// RoPE backward: finite differences in double, and the training forward against the inference kernel at
// positions 0..T−1 of every sample.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/rope.h"
#include "backends/cpu/rope_backward.h"

namespace omni {
namespace {

TEST(RopeBackward, FiniteDifferencesInDouble) {
  const int64_t B = 2, T = 5, H = 3, hd = 8;
  const RopeTable tab = make_rope_table(T, hd, 10000.f);
  auto x = test::random_doubles(static_cast<size_t>(B * T * H * hd), 31);
  const auto r = test::random_doubles(x.size(), 32);
  std::vector<double> y(x.size());
  auto loss = [&] {
    y = x;
    rope_forward_train(y.data(), tab, B, T, H, hd);
    return test::weighted_sum(r, y.data());
  };
  std::vector<double> dx = r;
  rope_backward(dx.data(), tab, B, T, H, hd);
  EXPECT_LE(test::rel_err(dx, test::numeric_grad(x, loss)), test::kFdTol);
}

TEST(RopeBackward, TrainingForwardMatchesInference) {
  const int64_t B = 3, T = 17, H = 2, hd = 64;
  const float theta = 1e6f;
  const RopeTable tab = make_rope_table(T, hd, theta);
  const auto xd = test::random_doubles(static_cast<size_t>(B * T * H * hd), 33);
  std::vector<float> train = test::to_float(xd), inf = train;
  rope_forward_train(train.data(), tab, B, T, H, hd);
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t);
  for (int64_t b = 0; b < B; ++b) testing_support::rope_forward(inf.data() + b * T * H * hd, pos.data(), T, H, hd, theta);
  double max_diff = 0;
  for (size_t i = 0; i < inf.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(inf[i]) - train[i]));
  EXPECT_LE(max_diff, 1e-6);
  // And the backward inverts the forward (the rotation is orthogonal).
  rope_backward(train.data(), tab, B, T, H, hd);
  EXPECT_LE(test::rel_err(train, xd), 1e-6);
}

}  // namespace
}  // namespace omni
