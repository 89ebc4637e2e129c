#include "quant/rtn.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/half.h"
#include "quant/grouped_int_weight.h"
#include "quant/pack.h"

namespace omni {
namespace {

// A BF16 weight with a per-row offset so the groups are not symmetric around 0.
Tensor random_bf16_weight(int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::uniform_real_distribution<float> offset(-0.01f, 0.01f);
  Tensor w = Tensor::empty({N, K}, DType::BF16);
  uint16_t* p = w.data<uint16_t>();
  for (int64_t n = 0; n < N; ++n) {
    const float o = offset(rng);
    for (int64_t k = 0; k < K; ++k) p[n * K + k] = f32_to_bf16(nd(rng) + o);
  }
  return w;
}

void expect_bit_equal(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  const float* x = a.data<float>();
  const float* y = b.data<float>();
  int64_t diffs = 0;
  for (int64_t i = 0; i < a.numel(); ++i) diffs += x[i] != y[i];
  EXPECT_EQ(diffs, 0);
}

TEST(Rtn, UnpackThenDequantEqualsQdq) {
  const Tensor w = random_bf16_weight(96, 256, 11);
  for (const QuantScheme s : {QuantScheme{4, 128, true}, QuantScheme{4, 32, false}, QuantScheme{4, -1, true},
                              QuantScheme{2, 64, true}, QuantScheme{8, 128, true}}) {
    const GroupedIntWeight q = quantize_rtn(w, s);
    validate_grouped_int_weight(q, "rtn");
    expect_bit_equal(dequantize_grouped_int_weight(q), fake_quantize_rtn(w, s));
  }
}

TEST(Rtn, SymmetricLayoutAndSigns) {
  const Tensor w = random_bf16_weight(64, 256, 5);
  const GroupedIntWeight q = quantize_rtn(w, QuantScheme{4, 128, true});
  EXPECT_EQ(q.qweight.shape(), (Shape{32, 64}));
  EXPECT_EQ(q.scales.shape(), (Shape{2, 64}));
  EXPECT_EQ(q.scales.dtype(), DType::F16);
  EXPECT_EQ(q.zeros.dtype(), DType::U8);
  int negative = 0, positive = 0;
  for (int64_t i = 0; i < q.zeros.numel(); ++i) {
    EXPECT_EQ(q.zeros.data<uint8_t>()[i], 8);
    (f16_to_f32(q.scales.data<uint16_t>()[i]) < 0 ? negative : positive)++;
  }
  // Full-range symmetric: both signs of scale occur on random data.
  EXPECT_GT(negative, 10);
  EXPECT_GT(positive, 10);
  // Each group uses code 0 (its dominant extreme maps to −8).
  const std::vector<uint8_t> codes = unpack_auto_gptq_int4(q.qweight, 64, 256);
  for (int64_t n = 0; n < 64; ++n)
    for (int64_t g = 0; g < 2; ++g) {
      int lo = 15;
      for (int64_t k = g * 128; k < (g + 1) * 128; ++k) lo = std::min(lo, int(codes[static_cast<size_t>(n * 256 + k)]));
      EXPECT_EQ(lo, 0);
    }
}

TEST(Rtn, AcceptsF32AndF16Inputs) {
  const Tensor w = random_bf16_weight(32, 64, 3);
  const QuantScheme s{4, 32, true};
  expect_bit_equal(dequantize_grouped_int_weight(quantize_rtn(w.to(DType::F32), s)),
                   dequantize_grouped_int_weight(quantize_rtn(w, s)));
  const Tensor h = w.to(DType::F16);
  expect_bit_equal(dequantize_grouped_int_weight(quantize_rtn(h, s)),
                   dequantize_grouped_int_weight(quantize_rtn(h.to(DType::F32), s)));
  EXPECT_THROW(quantize_rtn(Tensor::zeros({4, 4, 4}, DType::F32), s), Error);
}

}  // namespace
}  // namespace omni
