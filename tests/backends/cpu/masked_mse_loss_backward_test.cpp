// The masked MSE loss: its value against a direct sum, finite differences in double, masked rows getting no
// gradient, and an all-masked batch rejected.
#include <gtest/gtest.h>

#include "backends/cpu/grad_check_util.h"
#include "backends/cpu/masked_mse_loss_backward.h"
#include "core/error.h"

namespace omni {
namespace {

TEST(MaskedMseLoss, ValueAndFiniteDifferences) {
  const int64_t B = 3, T = 4, D = 5, rows = B * T;
  auto y = test::random_doubles(static_cast<size_t>(rows * D), 61);
  const auto ref = test::random_doubles(y.size(), 62);
  const std::vector<uint8_t> mask = last_token_mask(B, T);
  ASSERT_EQ(mask.size(), static_cast<size_t>(rows));
  EXPECT_EQ(mask[3], 0);
  EXPECT_EQ(mask[4], 1);
  EXPECT_EQ(mask[11], 0);

  double direct = 0.0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t)
      for (int64_t d = 0; d < D; ++d) {
        const size_t i = static_cast<size_t>((b * T + t) * D + d);
        direct += (y[i] - ref[i]) * (y[i] - ref[i]);
      }
  direct /= static_cast<double>(B * (T - 1) * D);
  auto loss = [&] { return masked_mse_loss_forward(y.data(), ref.data(), mask.data(), rows, D); };
  EXPECT_NEAR(loss(), direct, 1e-15);

  std::vector<double> dy(y.size());
  masked_mse_loss_backward(dy.data(), y.data(), ref.data(), mask.data(), rows, D);
  EXPECT_LE(test::rel_err(dy, test::numeric_grad(y, loss)), test::kFdTol);
  for (int64_t d = 0; d < D; ++d) EXPECT_EQ(dy[static_cast<size_t>((T - 1) * D + d)], 0.0);

  std::vector<double> scaled(y.size());
  masked_mse_loss_backward(scaled.data(), y.data(), ref.data(), mask.data(), rows, D, 1000.0);
  EXPECT_NEAR(scaled[0], 1000.0 * dy[0], 1e-9);

  // The f32 path.
  const auto yf = test::to_float(y), rf = test::to_float(ref);
  std::vector<float> dyf(y.size());
  masked_mse_loss_backward(dyf.data(), yf.data(), rf.data(), mask.data(), rows, D);
  EXPECT_NEAR(masked_mse_loss_forward(yf.data(), rf.data(), mask.data(), rows, D), direct, 1e-6 * direct);
  EXPECT_LE(test::rel_err(dyf, dy), 1e-6);
}

TEST(MaskedMseLoss, AllMaskedIsAnError) {
  const std::vector<uint8_t> mask = last_token_mask(2, 1);  // every sample is a single (last) token
  const std::vector<float> y = {1.f, 2.f}, ref = {0.f, 0.f};
  EXPECT_THROW(masked_mse_loss_forward(y.data(), ref.data(), mask.data(), 2, 1), Error);
}

}  // namespace
}  // namespace omni
