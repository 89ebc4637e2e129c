#include "quant/qdq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/half.h"

namespace omni {
namespace {

QuantScheme w4(int64_t g = 8, bool sym = true) { return QuantScheme{4, g, sym}; }

struct GroupResult {
  GroupScale gs;
  std::vector<uint8_t> codes, in_range;
};

GroupResult quantize_one(const std::vector<float>& w, const QuantScheme& s, float alpha = 1.f, float beta = 1.f,
                         const std::vector<float>& v = {}) {
  GroupResult r;
  float lo, hi;
  group_min_max(w.data(), static_cast<int64_t>(w.size()), &lo, &hi);
  r.gs = compute_group_scale(lo, hi, alpha, beta, s);
  r.codes.resize(w.size());
  r.in_range.resize(w.size());
  quantize_group(w.data(), v.empty() ? nullptr : v.data(), static_cast<int64_t>(w.size()), r.gs, s, r.codes.data(),
                 r.in_range.data());
  return r;
}

// Positive extreme dominates -> negative scale −1/8; w/s are exact so ties are real ties.
TEST(Qdq, NegativeScaleGroupRoundsHalfToEven) {
  const std::vector<float> w = {1.0f, -0.3125f, 0.4375f, 0.0625f, -0.1875f, 0.1875f, -0.5f, 0.3f};
  const GroupResult r = quantize_one(w, w4());
  EXPECT_EQ(r.gs.scale, -0.125f);
  EXPECT_EQ(r.gs.zero, 8);
  EXPECT_TRUE(r.gs.scale_from_max);
  EXPECT_FALSE(r.gs.floored);
  // w/s = -8, 2.5, -3.5, -0.5, 1.5, -1.5, 4, -2.4  ->  q = -8, 2, -4, 0, 2, -2, 4, -2 (half to even; std::round
  // would give 3, -4, -1, 2, -2)
  const std::vector<uint8_t> want = {0, 10, 4, 8, 10, 6, 12, 6};
  EXPECT_EQ(r.codes, want);
  EXPECT_EQ(r.in_range, std::vector<uint8_t>(8, 1));
  EXPECT_EQ(dequantize_code(r.codes[1], r.gs), -0.25f);
}

// Negative extreme dominates -> positive scale; +0.9375/0.125 = 7.5 rounds to 8 and clamps to 7.
TEST(Qdq, PositiveScaleGroupClampsTopCode) {
  const std::vector<float> w = {-1.0f, 0.9375f, 0.5f, -0.0625f, 0.1875f, 0.3125f, -0.4375f, 0.0f};
  const GroupResult r = quantize_one(w, w4());
  EXPECT_EQ(r.gs.scale, 0.125f);
  EXPECT_FALSE(r.gs.scale_from_max);
  const std::vector<uint8_t> want = {0, 15, 12, 8, 10, 10, 4, 8};
  EXPECT_EQ(r.codes, want);
  const std::vector<uint8_t> inside = {1, 0, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(r.in_range, inside);
  EXPECT_EQ(dequantize_code(r.codes[1], r.gs), 0.875f);
}

// |max| == |min|: the positive side wins, the scale is negative and −min lands on +8 -> clamped to 7.
TEST(Qdq, TieGoesToNegativeScale) {
  const GroupResult r = quantize_one({0.5f, -0.5f, 0.25f, 0.125f}, w4(4));
  EXPECT_EQ(r.gs.scale, -0.0625f);
  EXPECT_EQ(r.codes, (std::vector<uint8_t>{0, 15, 4, 6}));
  EXPECT_EQ(r.in_range, (std::vector<uint8_t>{1, 0, 1, 1}));
}

TEST(Qdq, ScaleIsRoundedToF16) {
  const GroupResult r = quantize_one({0.8f, -0.3f, 0.1f, 0.2f}, w4(4));
  EXPECT_EQ(r.gs.scale, -0.0999755859375f);  // f16(−0.1)
  EXPECT_EQ(r.gs.scale, round_to_f16(r.gs.scale));
  // 0.8 / −0.09997559 = −8.002 -> −8; −0.3 -> 3.0007 -> 3
  EXPECT_EQ(r.codes[0], 0);
  EXPECT_EQ(r.codes[1], 11);
}

TEST(Qdq, TinyScalesHitTheFloorKeepingSign) {
  const float floor16 = 1.0013580322265625e-05f;  // f16(1e-5)
  {
    const GroupResult r = quantize_one({4e-5f, -1e-5f, 2e-5f, 0.f}, w4(4));  // s = f16(−5e−6): below the floor
    EXPECT_TRUE(r.gs.floored);
    EXPECT_EQ(r.gs.scale, -floor16);
    EXPECT_EQ(r.codes[0], 8 - 4);  // 4e-5 / −1.00136e-5 = −3.99 -> −4
  }
  {
    const GroupResult r = quantize_one({-4e-5f, 1e-5f, 2e-5f, 0.f}, w4(4));
    EXPECT_TRUE(r.gs.floored);
    EXPECT_EQ(r.gs.scale, floor16);
  }
  {
    const GroupResult r = quantize_one({0.f, 0.f, 0.f, 0.f}, w4(4));  // a zero scale becomes +floor
    EXPECT_TRUE(r.gs.floored);
    EXPECT_EQ(r.gs.scale, floor16);
    EXPECT_EQ(r.codes, std::vector<uint8_t>(4, 8));
  }
  {
    const GroupResult r = quantize_one({1.5e-4f, -1e-4f, 0.f, 0.f}, w4(4));  // 1.5e-4/8 = 1.9e-5: above the floor
    EXPECT_FALSE(r.gs.floored);
    EXPECT_EQ(r.gs.scale, round_to_f16(-1.5e-4f / 8));
  }
}

TEST(Qdq, AlphaBetaShrinkAndClamp) {
  const std::vector<float> w = {1.0f, -0.5f, 0.25f, 0.125f};
  // alpha 0.5: M = 0.5 = m -> tie -> s = −0.5/8
  EXPECT_EQ(quantize_one(w, w4(4), 0.5f, 1.f).gs.scale, -0.0625f);
  // alpha 0.25: M = 0.25 < m = 0.5 -> s = +0.5/8, driven by beta
  const GroupResult r = quantize_one(w, w4(4), 0.25f, 1.f);
  EXPECT_EQ(r.gs.scale, 0.0625f);
  EXPECT_FALSE(r.gs.scale_from_max);
  // beta 0.5 as well: m = 0.25 = M -> negative scale −0.25/8
  EXPECT_EQ(quantize_one(w, w4(4), 0.25f, 0.5f).gs.scale, -0.03125f);
  // alpha/beta outside [0, 1] are clamped first
  EXPECT_EQ(quantize_one(w, w4(4), 1.7f, -3.f).gs.scale, quantize_one(w, w4(4), 1.f, 0.f).gs.scale);
  EXPECT_EQ(quantize_one(w, w4(4), 1.f, 0.f).gs.scale, -0.125f);
}

TEST(Qdq, RoundingOffsetV) {
  const std::vector<float> w = {1.0f, -0.3125f, 0.4375f, 0.0625f};  // w/s = −8, 2.5, −3.5, −0.5
  const GroupResult r = quantize_one(w, w4(4), 1.f, 1.f, {0.f, 0.3f, -0.2f, 0.6f});
  // 2.8 -> 3, −3.7 -> −4, 0.1 -> 0
  EXPECT_EQ(r.codes, (std::vector<uint8_t>{0, 11, 4, 8}));
  const GroupResult pushed = quantize_one(w, w4(4), 1.f, 1.f, {-0.6f, 0.f, 0.f, 0.f});  // −8.6 -> −9: clamped
  EXPECT_EQ(pushed.codes[0], 0);
  EXPECT_EQ(pushed.in_range[0], 0);
}

TEST(Qdq, Asymmetric) {
  const std::vector<float> w = {-0.3f, 1.2f, 0.55f, 0.0f, -0.05f, 0.25f, 0.7f, -0.2f};
  const GroupResult r = quantize_one(w, w4(8, false));
  EXPECT_EQ(r.gs.scale, 0.0999755859375f);  // f16(1.5 / 15)
  EXPECT_EQ(r.gs.zero, 3);                 // round(0.3 / s) = round(3.0007)
  EXPECT_EQ(r.codes, (std::vector<uint8_t>{0, 15, 9, 3, 2, 6, 10, 1}));
  EXPECT_EQ(dequantize_code(r.codes[3], r.gs), 0.f);  // real zero is exact
  // All-zero asym group: scale floors to f16(1e-5), zero point 0.
  const GroupResult z = quantize_one({0.f, 0.f}, w4(2, false));
  EXPECT_TRUE(z.gs.floored);
  EXPECT_EQ(z.gs.zero, 0);
}

TEST(Qdq, OtherBitWidths) {
  // 2-bit: maxq 2, q in [−2, 1]; s = −1/2
  const GroupResult r2 = quantize_one({1.0f, -1.0f, 0.25f, -0.25f}, QuantScheme{2, 4, true});
  EXPECT_EQ(r2.gs.scale, -0.5f);
  EXPECT_EQ(r2.codes, (std::vector<uint8_t>{0, 3, 2, 2}));  // q = −2, 1 (2 clamped), −0.5 -> 0, 0.5 -> 0
  // 8-bit: maxq 128, s = −1/128
  const GroupResult r8 = quantize_one({1.0f, -0.5f, 0.01171875f}, QuantScheme{8, 3, true});
  EXPECT_EQ(r8.gs.scale, -0.0078125f);
  EXPECT_EQ(r8.codes, (std::vector<uint8_t>{0, 128 + 64, 128 - 2}));  // 0.01171875 / s = −1.5 -> −2
}

TEST(Qdq, MatrixGroupsPerChannelAndShortLastGroup) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.1f, 0.05f);
  const int64_t N = 3, K = 40;
  std::vector<float> w(N * K);
  for (float& x : w) x = nd(rng);
  // Per-channel: one group per row.
  const QuantizedMatrix pc = quantize_matrix(w.data(), N, K, QuantScheme{4, -1, true});
  EXPECT_EQ(pc.num_groups, 1);
  EXPECT_EQ(pc.group_size, K);
  // Group 32 of 40 inputs: a short last group of 8, whose scale comes from those 8 elements only.
  const QuantizedMatrix qm = quantize_matrix(w.data(), N, K, QuantScheme{4, 32, true});
  ASSERT_EQ(qm.num_groups, 2);
  for (int64_t r = 0; r < N; ++r) {
    const GroupResult last = quantize_one(std::vector<float>(w.begin() + r * K + 32, w.begin() + r * K + 40), w4(8));
    EXPECT_EQ(qm.group(r, 1).scale, last.gs.scale);
    for (int j = 0; j < 8; ++j) EXPECT_EQ(qm.codes[static_cast<size_t>(r * K + 32 + j)], last.codes[static_cast<size_t>(j)]);
  }
  // fake_quantize = s * (u − zero) element by element.
  const std::vector<float> fq = fake_quantize(w.data(), N, K, QuantScheme{4, 32, true});
  for (int64_t r = 0; r < N; ++r)
    for (int64_t k = 0; k < K; ++k)
      EXPECT_EQ(fq[static_cast<size_t>(r * K + k)],
                qm.group(r, k / 32).scale * float(int(qm.codes[static_cast<size_t>(r * K + k)]) - 8));
}

TEST(Qdq, MatrixWithTuningParameters) {
  const int64_t N = 2, K = 8;
  std::vector<float> w = {1.0f, -0.3125f, 0.4375f, 0.0625f, -0.1875f, 0.1875f, -0.5f, 0.3f,
                          -1.0f, 0.9375f, 0.5f, -0.0625f, 0.1875f, 0.3125f, -0.4375f, 0.0f};
  std::vector<float> v(N * K, 0.f), alpha = {0.5f, 1.f}, beta = {1.f, 0.5f};
  v[1] = 0.3f;
  const QuantizedMatrix qm = quantize_matrix(w.data(), N, K, w4(8), QdqParams{v.data(), alpha.data(), beta.data()});
  EXPECT_EQ(qm.group(0, 0).scale, -0.0625f);  // alpha 0.5: M = 0.5 = m
  EXPECT_EQ(qm.group(1, 0).scale, -0.9375f / 8);  // beta 0.5: m = 0.5 < M = 0.9375
  EXPECT_EQ(qm.codes[1], 8 + 5);  // −0.3125 / −0.0625 + 0.3 = 5.3 -> 5
}

TEST(Qdq, RejectsBadSchemes) {
  std::vector<float> w(8, 0.5f);
  EXPECT_THROW(quantize_matrix(w.data(), 1, 8, QuantScheme{5, 8, true}), Error);
  EXPECT_THROW(quantize_matrix(w.data(), 1, 8, QuantScheme{4, 0, true}), Error);
}

}  // namespace
}  // namespace omni
