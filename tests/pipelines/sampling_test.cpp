#include "pipelines/sampling.h"

#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/cpu_test_util.h"
#include "core/error.h"

namespace omni {
namespace {

TEST(SamplingTest, GreedyTakesTheLowestIndexOnTies) {
  Sampler greedy({});
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  EXPECT_EQ(greedy.sample(logits), 1);
  const std::vector<float> with_nan = {NAN, -3.0f, -2.0f};
  EXPECT_EQ(greedy.sample(with_nan), 2);
  EXPECT_THROW(greedy.sample(std::vector<float>{}), Error);
}

TEST(SamplingTest, TopKOneIsGreedy) {
  const auto logits = test::random_floats(1000, 5, 4.0f);
  Sampler greedy({});
  Sampler topk1({.temperature = 1.5f, .top_k = 1, .top_p = 1.0f, .seed = 9});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(topk1.sample(logits), greedy.sample(logits));
}

TEST(SamplingTest, SameSeedSameSequenceOtherSeedDiffers) {
  const auto logits = test::random_floats(500, 6, 2.0f);
  const SamplingParams p{.temperature = 0.8f, .top_k = 50, .top_p = 0.95f, .seed = 1234};
  Sampler a(p), b(p), c({.temperature = 0.8f, .top_k = 50, .top_p = 0.95f, .seed = 4321});
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(a.sample(logits));
    sb.push_back(b.sample(logits));
    sc.push_back(c.sample(logits));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

// Empirical frequencies over many draws against the (renormalised) softmax at temperature T.
void expect_frequencies(const std::vector<float>& logits, SamplingParams p, const std::vector<double>& expected) {
  Sampler s(p);
  const int draws = 200000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[static_cast<size_t>(s.sample(logits))];
  for (size_t i = 0; i < logits.size(); ++i) {
    const double freq = static_cast<double>(counts[i]) / draws;
    const double sigma = std::sqrt(expected[i] * (1 - expected[i]) / draws);
    EXPECT_NEAR(freq, expected[i], 5 * sigma + 1e-9) << "token " << i;
  }
}

std::vector<double> softmax(const std::vector<float>& logits, double t, const std::vector<bool>& keep) {
  std::vector<double> p(logits.size(), 0.0);
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i)
    if (keep[i]) sum += (p[i] = std::exp(logits[i] / t));
  for (auto& v : p) v /= sum;
  return p;
}

TEST(SamplingTest, FrequenciesMatchSoftmaxWithTemperature) {
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 1.7f, 0.0f};
  const std::vector<bool> all(logits.size(), true);
  expect_frequencies(logits, {.temperature = 1.0f, .seed = 1}, softmax(logits, 1.0, all));
  expect_frequencies(logits, {.temperature = 0.5f, .seed = 2}, softmax(logits, 0.5, all));
  // top-k = 3 keeps tokens 3, 0, 1.
  expect_frequencies(logits, {.temperature = 1.0f, .top_k = 3, .seed = 3},
                     softmax(logits, 1.0, {true, true, false, true, false}));
}

TEST(SamplingTest, TopPExcludesTheTail) {
  // Probabilities (T = 1) ≈ 0.475, 0.289, 0.175, 0.039, 0.022: p = 0.7 needs tokens 0 and 1 (0.764 ≥ 0.7).
  const std::vector<float> logits = {2.0f, 1.5f, 1.0f, -0.5f, -1.1f};
  expect_frequencies(logits, {.temperature = 1.0f, .top_p = 0.7f, .seed = 4},
                     softmax(logits, 1.0, {true, true, false, false, false}));
  // A p below the top token's probability still keeps that one token.
  Sampler tiny({.temperature = 1.0f, .top_p = 0.01f, .seed = 5});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(tiny.sample(logits), 0);
}

TEST(SamplingTest, RejectsBadParams) {
  EXPECT_THROW(Sampler({.temperature = 1.0f, .top_k = -1}), Error);
  EXPECT_THROW(Sampler({.temperature = 1.0f, .top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler({.temperature = 1.0f, .top_p = 1.5f}), Error);
}

}  // namespace
}  // namespace omni
