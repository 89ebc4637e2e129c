// first_non_finite / require_finite find NaN and ±Inf in every float dtype, at any position (also past the first
// scan block and in the last element), and never flag finite extremes (max, subnormals, −0).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/finite.h"
#include "core/half.h"

namespace omni {
namespace {

Tensor filled(DType dt, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = 0.001f * static_cast<float>((i * 37) % 2001 - 1000) + 0.5f;
  return Tensor::from_f32(v, {n}).to(dt);
}

void set_bits(Tensor& t, int64_t i, float value) {
  if (t.dtype() == DType::F32) {
    t.data<float>()[i] = value;
  } else {
    // Through f32 → 16-bit conversion, which keeps NaN a NaN and Inf an Inf.
    const Tensor one = Tensor::from_f32(std::vector<float>{value}, {1}).to(t.dtype());
    t.data<uint16_t>()[i] = one.data<uint16_t>()[0];
  }
}

TEST(Finite, FindsTheFirstNanOrInfInEveryFloatDtype) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const int64_t n = 10000;  // more than one 4096-element scan block
    for (int64_t at : {int64_t{0}, int64_t{4095}, int64_t{4096}, int64_t{7777}, n - 1}) {
      for (float b : bad) {
        Tensor t = filled(dt, n);
        EXPECT_EQ(first_non_finite(t), -1) << dtype_name(dt);
        set_bits(t, at, b);
        if (at + 5 < n) set_bits(t, at + 5, b);  // a later one does not hide the first
        EXPECT_EQ(first_non_finite(t), at) << dtype_name(dt) << " at " << at << " value " << b;
      }
    }
  }
}

TEST(Finite, FiniteExtremesPass) {
  const float f32_max = std::numeric_limits<float>::max(), tiny = std::numeric_limits<float>::denorm_min();
  Tensor f = Tensor::from_f32(std::vector<float>{f32_max, -f32_max, tiny, -0.0f, 65504.f}, {5});
  EXPECT_EQ(first_non_finite(f), -1);
  EXPECT_EQ(first_non_finite(Tensor::from_f32(std::vector<float>{65504.f, -65504.f, 6e-8f}, {3}).to(DType::F16)), -1);
  EXPECT_EQ(first_non_finite(Tensor::from_f32(std::vector<float>{3e38f, -3e38f}, {2}).to(DType::BF16)), -1);
  EXPECT_EQ(first_non_finite(Tensor::from_i32(std::vector<int32_t>{-1, 0x7f800000}, {2})), -1);  // not floats
}

TEST(Finite, RequireFiniteNamesTheTensorAndElement) {
  Tensor t = filled(DType::BF16, 64);
  require_finite(t, "ok");
  set_bits(t, 9, std::numeric_limits<float>::quiet_NaN());
  try {
    require_finite(t, "tensor \"model.layers.0.self_attn.q_proj.weight\"");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("element 9"), std::string::npos) << m;
    EXPECT_NE(m.find("NaN or Inf"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace omni
