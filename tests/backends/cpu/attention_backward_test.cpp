// Causal GQA attention backward: finite differences in double for q, k and v at GQA ratios 1, 2 and 3, the f32
// path (tiled, gemm-based) against double, and the training forward against the inference kernel.
#include <gtest/gtest.h>

#include "backends/cpu/attention.h"
#include "backends/cpu/attention_backward.h"
#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/grad_check_util.h"

namespace omni {
namespace {

struct Shape4 {
  int64_t B, T, Hq, Hkv, hd;
};

class AttentionBackward : public ::testing::TestWithParam<Shape4> {};

TEST_P(AttentionBackward, FiniteDifferencesInDouble) {
  const auto [B, T, Hq, Hkv, hd] = GetParam();
  // Scores of O(1) so the softmax is far from uniform and far from one-hot.
  auto q = test::random_doubles(static_cast<size_t>(B * T * Hq * hd), 41, -1.5, 1.5);
  auto k = test::random_doubles(static_cast<size_t>(B * T * Hkv * hd), 42, -1.5, 1.5);
  auto v = test::random_doubles(static_cast<size_t>(B * T * Hkv * hd), 43);
  const auto r = test::random_doubles(q.size(), 44);
  std::vector<double> out(q.size()), lse(static_cast<size_t>(B * T * Hq));
  auto loss = [&] {
    attention_forward_train(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, hd);
    return test::weighted_sum(r, out.data());
  };
  loss();
  std::vector<double> dq(q.size(), 7.0), dk(k.size(), 7.0), dv(v.size(), 7.0);  // overwritten
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), q.data(), k.data(), v.data(), out.data(),
                     lse.data(), B, T, Hq, Hkv, hd);
  EXPECT_LE(test::rel_err(dq, test::numeric_grad(q, loss)), test::kFdTol);
  EXPECT_LE(test::rel_err(dk, test::numeric_grad(k, loss)), test::kFdTol);
  EXPECT_LE(test::rel_err(dv, test::numeric_grad(v, loss)), test::kFdTol);
}

INSTANTIATE_TEST_SUITE_P(GqaRatios, AttentionBackward,
                         ::testing::Values(Shape4{2, 5, 2, 2, 4},    // ratio 1
                                           Shape4{2, 6, 4, 2, 8},    // ratio 2
                                           Shape4{1, 4, 3, 1, 6}));  // ratio 3, one sample

TEST(AttentionBackwardF32, MatchesDoubleAndInference) {
  // T spans two query tiles of the f32 path (96 queries) and ends in a partial one.
  const int64_t B = 2, T = 131, Hq = 4, Hkv = 2, hd = 64;
  const auto q = test::random_doubles(static_cast<size_t>(B * T * Hq * hd), 45, -1.5, 1.5);
  const auto k = test::random_doubles(static_cast<size_t>(B * T * Hkv * hd), 46, -1.5, 1.5);
  const auto v = test::random_doubles(static_cast<size_t>(B * T * Hkv * hd), 47);
  const auto dout = test::random_doubles(q.size(), 48);
  std::vector<double> out(q.size()), lse(static_cast<size_t>(B * T * Hq)), dq(q.size()), dk(k.size()), dv(v.size());
  attention_forward_train(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, hd);
  attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                     lse.data(), B, T, Hq, Hkv, hd);
  const auto qf = test::to_float(q), kf = test::to_float(k), vf = test::to_float(v), df = test::to_float(dout);
  std::vector<float> outf(q.size()), lsef(lse.size()), dqf(q.size()), dkf(k.size()), dvf(v.size()), inf(q.size());
  attention_forward_train(outf.data(), lsef.data(), qf.data(), kf.data(), vf.data(), B, T, Hq, Hkv, hd);
  attention_backward(dqf.data(), dkf.data(), dvf.data(), df.data(), qf.data(), kf.data(), vf.data(), outf.data(),
                     lsef.data(), B, T, Hq, Hkv, hd);
  EXPECT_LE(test::rel_err(outf, out), 1e-6);
  EXPECT_LE(test::rel_err(dqf, dq), 1e-5);
  EXPECT_LE(test::rel_err(dkf, dk), 1e-5);
  EXPECT_LE(test::rel_err(dvf, dv), 1e-5);
  testing_support::attention_forward_batched(inf.data(), qf.data(), kf.data(), vf.data(), B, T, T, Hq, Hkv, hd, 0);
  EXPECT_LE(test::rel_err(inf, out), 1e-6);  // the inference kernel agrees as closely
}

}  // namespace
}  // namespace omni
