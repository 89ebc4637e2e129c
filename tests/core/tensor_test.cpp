#include "core/tensor.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/half.h"

namespace omni {
namespace {

TEST(Tensor, ShapeViewAndSlice) {
  std::vector<float> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5f * static_cast<float>(i) - 3.0f;
  Tensor t = Tensor::from_f32(v, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.nbytes(), 96u);
  Tensor rows = t.view({6, 4}).slice_rows(2, 5);
  EXPECT_EQ(rows.shape(), (Shape{3, 4}));
  EXPECT_EQ(rows.data<float>()[0], v[8]);
  EXPECT_THROW(t.view({5, 5}), Error);
  EXPECT_THROW(t.slice_rows(1, 3), Error);
  EXPECT_THROW(t.data<int32_t>(), Error);
  EXPECT_THROW(Tensor::empty({2, -1}, DType::F32), Error);
}

TEST(Tensor, ConvertsBetweenFloatTypes) {
  std::vector<float> v = {1.0f, -2.5f, 3.140625f, 1e-3f, -65504.0f, 0.1f};
  Tensor t = Tensor::from_f32(v, {6});
  Tensor b = t.to(DType::BF16);
  Tensor h = t.to(DType::F16);
  Tensor back_b = b.to(DType::F32);
  Tensor back_h = h.to(DType::F32);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(back_b.data<float>()[i], round_to_bf16(v[i]));
    EXPECT_EQ(back_h.data<float>()[i], round_to_f16(v[i]));
  }
  Tensor i32 = Tensor::from_i32(std::vector<int32_t>{1, 2, 3}, {3});
  EXPECT_THROW(i32.to(DType::F32), Error);
  EXPECT_EQ(i32.clone().data<int32_t>()[2], 3);
}

TEST(Tensor, DTypeNames) {
  EXPECT_EQ(dtype_from_name("BF16"), DType::BF16);
  EXPECT_EQ(dtype_name(DType::Bool), "BOOL");
  EXPECT_FALSE(dtype_from_name("bf16").has_value());
  EXPECT_EQ(dtype_size(DType::F64), 8u);
}

}  // namespace
}  // namespace omni
